"""Ambiguous sends, settled by SES's events: never blindly re-sent, never falsely failed.

The handler talks to moto through tests/fault_proxy.py, which can answer SendEmail 500
before forwarding it (nothing sent) or after (sent; the answer says otherwise). moto
publishes no SES events, so mailflow.local.ses_events stands in for SES: it watches
moto's sent-mail store and puts Send and Delivery events on the events queue, which the
events pipeline (the third consumer) reads here message by message.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients, open_clients
from mailflow.engine.message import Outcome, SqsMessage
from mailflow.feedback.pipeline import SesEventsPipeline
from mailflow.local.ses_events import SesEventFeed
from mailflow.ops.provision import provision
from mailflow.outbound.pipeline import OutboundPipeline, SendOutcomeUnknown
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.helpers import receive_all
from tests.integration.outbound.support import abandoned_attempt, message, sent_mail
from tests.integration.outbound.test_pipeline import events, sqs_message

VISIBILITY = 10
SETTLE = VISIBILITY + 1.0  # must outlast the visibility timeout (a held event's return)
WINDOW = 60


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, fault_rate=0.0, seed=11) as running:
        yield running


@pytest.fixture
def settings(make_settings: Callable[..., Settings], proxy: FaultProxy) -> Settings:
    return make_settings(
        aws_endpoint_url=proxy.url,
        visibility_timeout_seconds=VISIBILITY,
        ses_events_queue="mailflow-ses-events",
        outbound={
            "default_send_rate": 500.0,
            "configuration_set": "mailflow",
            "outcome_settle_seconds": SETTLE,
            "unknown_outcome_after_seconds": WINDOW,
        },
    )


@pytest.fixture
async def clients(settings: Settings) -> AsyncIterator[AwsClients]:
    async with open_clients(settings) as opened:
        await provision(settings, opened)
        yield opened


@pytest.fixture
def feed(moto_endpoint: str, settings: Settings, clients: AwsClients) -> Iterator[SesEventFeed]:
    with SesEventFeed(moto_endpoint, settings) as running:
        yield running


async def consume_events(clients: AwsClients, settings: Settings, expect: int) -> int:
    """Run the events pipeline over what the feed published; returns how many it took."""
    assert settings.ses_events_queue
    url = await clients.queues.url(settings.ses_events_queue)
    bodies = await receive_all(clients.sqs, url, expect=expect, timeout=10)
    pipeline = SesEventsPipeline(settings, clients)
    for body in bodies:
        await pipeline.handle(
            SqsMessage("mailflow-ses-events", url, "m", "r", body, {"ApproximateReceiveCount": "1"})
        )
    return len(bodies)


def held(outcome: Outcome) -> str:
    assert outcome.deferral is not None, f"expected a hold, got {outcome}"
    return outcome.deferral.reason


async def test_a_send_answered_500_after_ses_sent_it_is_settled_as_sent_by_its_event(
    settings: Settings, clients: AwsClients, proxy: FaultProxy, feed: SesEventFeed,
    moto_endpoint: str,
) -> None:  # fmt: skip
    handler = OutboundPipeline(settings, clients)
    body = message(subject="answered 500, yet sent")
    proxy.set_ses_faults(after=1.0)
    reason = held(await handler.handle(sqs_message(body)))
    assert "answered HTTP 500 InternalFailure" in reason
    assert "waiting for SES's events" in reason
    proxy.set_ses_faults()
    (mail,) = sent_mail(moto_endpoint)
    assert await consume_events(clients, settings, expect=2) == 2  # Send, Delivery

    outcome = await handler.handle(sqs_message(body))
    assert outcome.deferral is None
    assert len(sent_mail(moto_endpoint)) == 1  # settled, not sent again
    told = {e["type"]: e for e in await events(clients, settings, "app1", 2)}
    assert sorted(told) == ["email.delivered", "email.sent"]  # the Delivery event, told too
    assert told["email.sent"]["sesMessageId"] == mail.ses_id


async def test_a_send_answered_500_before_ses_sent_it_is_proven_unsent_and_sent_once(
    settings: Settings, clients: AwsClients, proxy: FaultProxy, feed: SesEventFeed,
    moto_endpoint: str,
) -> None:  # fmt: skip
    handler = OutboundPipeline(settings, clients)
    body = message(subject="answered 500, not sent")
    proxy.set_ses_faults(error=1.0)
    held(await handler.handle(sqs_message(body)))
    proxy.set_ses_faults()
    assert sent_mail(moto_endpoint) == []
    # No event can name the attempt; until SES's events have come past it, it waits.
    assert "waiting for SES's events" in held(await handler.handle(sqs_message(body)))

    # The settle time passes (the marker is made older than it rather than waited for)
    # and the account is quiet: the worker sends a canary to SES's mailbox simulator,
    # whose events move the watermark past the attempt.
    await age_marker(clients, settings, body["correlationId"], SETTLE + 1)
    held(await handler.handle(sqs_message(body)))
    (canary,) = sent_mail(moto_endpoint)
    assert set(canary.destinations) == {"success@simulator.amazonses.com"}  # moto lists To twice
    await consume_events(clients, settings, expect=2)

    outcome = await handler.handle(sqs_message(body))
    assert outcome.deferral is None
    subjects = [str(m.parsed["Subject"]) for m in sent_mail(moto_endpoint)[1:]]
    assert subjects == ["answered 500, not sent"]
    (event,) = await events(clients, settings, "app1", 1)
    assert (event["type"], event["correlationId"]) == ("email.sent", body["correlationId"])


async def age_marker(
    clients: AwsClients, settings: Settings, correlation_id: str, seconds: float
) -> None:
    await clients.dynamodb.update_item(
        TableName=settings.idempotency_table,
        Key={keys.KEY_ATTRIBUTE: {"S": keys.outbound_email("app1", correlation_id)}},
        UpdateExpression="SET startedAt = startedAt - :s",
        ExpressionAttributeValues={":s": {"N": str(seconds)}},
    )


async def test_an_attempt_no_event_settles_within_the_window_is_reported_unknown(
    settings: Settings, clients: AwsClients, moto_endpoint: str
) -> None:
    """Events flow, but none has come past the attempt (the watermark is behind it)."""
    from mailflow.aws.table import Table

    started = time.time() - WINDOW - 5
    earlier = Table(clients.dynamodb, settings.idempotency_table, clock=lambda: started)
    await abandoned_attempt(earlier, "unique-id-123", "d" * 32)
    await earlier.note_send_cause(
        keys.outbound_email("app1", "unique-id-123"),
        "d" * 32,
        "answered HTTP 503 ServiceUnavailable",
    )
    with pytest.raises(SendOutcomeUnknown) as info:
        await OutboundPipeline(settings, clients).handle(sqs_message(message()))
    text = str(info.value)
    assert "answered HTTP 503 ServiceUnavailable" in text
    assert "SES published no event for that attempt" in text
    assert info.value.details["cause"] == "answered HTTP 503 ServiceUnavailable"
    assert sent_mail(moto_endpoint) == []


async def test_every_email_carries_its_attempt_token_as_header_and_tag(
    settings: Settings, clients: AwsClients, proxy: FaultProxy, moto_endpoint: str
) -> None:
    await OutboundPipeline(settings, clients).handle(sqs_message(message()))
    (mail,) = sent_mail(moto_endpoint)
    (request,) = proxy.send_requests
    (tag,) = request["EmailTags"]
    assert tag["Name"] == "mailflow-send"
    assert mail.parsed["X-Mailflow-Send"] == tag["Value"]
    assert request["ConfigurationSetName"] == "mailflow"


async def test_a_failure_event_reaches_the_app_once_when_the_message_fails_twice(
    settings: Settings, clients: AwsClients
) -> None:
    from mailflow.engine.consumer import build_failure_record
    from mailflow.errors import PolicyRejected

    handler = OutboundPipeline(settings, clients)
    body = json.dumps(message(**{"from": {"address": "_app2@example.com"}}))
    for _ in range(2):  # the first delete was lost: the same message fails again
        msg = sqs_message(body)
        with pytest.raises(PolicyRejected) as info:
            await handler.handle(msg)
        await handler.on_permanent_failure(
            msg, info.value, build_failure_record("outbound", msg, info.value)
        )
    (event,) = await events(clients, settings, "app1", 1)
    assert event["type"] == "email.failed"
    assert event["eventId"]


async def test_a_sent_email_whose_event_cannot_be_sent_is_recorded_and_told_on_the_retry(
    settings: Settings, clients: AwsClients, proxy: FaultProxy, moto_endpoint: str
) -> None:
    """SQS refuses the `email.sent` event: the send is recorded all the same (a retry
    must not send again), the message fails for a retry, and the retry tells the app."""
    body = message()
    proxy.set_sqs_faults(1.0, frozenset({"SendMessage", "SendMessageBatch"}))
    from mailflow.errors import MailflowError

    with pytest.raises(MailflowError) as info:
        await OutboundPipeline(settings, clients).handle(sqs_message(body))
    assert info.value.retryable
    proxy.set_sqs_faults(0.0)
    assert len(sent_mail(moto_endpoint)) == 1
    claim = await clients.dynamodb.get_item(
        TableName=settings.idempotency_table,
        Key={keys.KEY_ATTRIBUTE: {"S": keys.outbound_email("app1", body["correlationId"])}},
        ConsistentRead=True,
    )
    assert claim["Item"]["status"]["S"] == "completed"
    assert claim["Item"]["emitted"]["BOOL"] is False

    outcome = await OutboundPipeline(settings, clients).handle(sqs_message(body))
    assert outcome.deferral is None
    assert len(sent_mail(moto_endpoint)) == 1
    (event,) = await events(clients, settings, "app1", 1)
    assert (event["type"], event["correlationId"]) == ("email.sent", body["correlationId"])
