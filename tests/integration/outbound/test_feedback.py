"""SES's feedback, through the real pipelines against the moto server: bounces and
complaints reach the app that sent the email and keep the suppression list; suppressed
addresses and mail loops are refused before SES is called.

moto publishes no SES events: mailflow.local.ses_events stands in for SES, with what
SES's mailbox simulator reports (bounce@ a permanent bounce, complaint@ a complaint).
A soft bounce has no simulator address, so those tests write the event as SES documents
it (tests/fixtures/ses-events) about an email moto really sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients, open_clients
from mailflow.aws.table import Table
from mailflow.engine.message import SqsMessage
from mailflow.errors import PolicyRejected
from mailflow.feedback.pipeline import SesEventsPipeline
from mailflow.local.ses_events import SesEventFeed, bounce_detail, ses_event, sns_envelope
from mailflow.ops import suppression
from mailflow.ops.provision import provision
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings
from tests.helpers import receive_all, within_one_clock_hour
from tests.integration.outbound.support import SentMail, message, sent_mail
from tests.integration.outbound.test_pipeline import events, failure_record, sqs_message

BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        ses_events_queue="mailflow-ses-events",
        outbound={
            "default_send_rate": 500.0,
            "configuration_set": "mailflow",
            "loop_limit_per_hour": 3,
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


@pytest.fixture
def outbound(settings: Settings, clients: AwsClients) -> OutboundPipeline:
    return OutboundPipeline(settings, clients)


def to(*addresses: str, correlation_id: str | None = None, **options: Any) -> dict[str, Any]:
    body = message(to=[{"address": a} for a in addresses])
    body["correlationId"] = correlation_id or f"c-{uuid.uuid4().hex[:8]}"
    body["options"] = options
    return body


async def consume(clients: AwsClients, settings: Settings, expect: int) -> None:
    """The events consumer, over what the feed (SES) published."""
    assert settings.ses_events_queue
    url = await clients.queues.url(settings.ses_events_queue)
    bodies = await receive_all(clients.sqs, url, expect=expect, timeout=10)
    assert len(bodies) == expect, f"SES published {len(bodies)} events, expected {expect}"
    pipeline = SesEventsPipeline(settings, clients)
    for body in bodies:
        await pipeline.handle(event_message(body))


def event_message(body: str) -> SqsMessage:
    return SqsMessage("mailflow-ses-events", "u", str(uuid.uuid4()), "r", body, {})


async def refused(outbound: OutboundPipeline, body: dict[str, Any]) -> PolicyRejected:
    """Handle `body` as the engine would: the refusal, and its email.failed to the app."""
    with pytest.raises(PolicyRejected) as info:
        await outbound.handle(sqs_message(body))
    record = failure_record(body, info.value)
    await outbound.on_permanent_failure(sqs_message(body), info.value, record)
    return info.value


def by_type(told: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["type"]: e for e in told}


async def test_a_hard_bounce_reaches_the_app_suppresses_and_remove_lets_mail_through(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings,
    feed: SesEventFeed, moto_endpoint: str,
) -> None:  # fmt: skip
    await outbound.handle(sqs_message(to(BOUNCE, correlation_id="order-1")))
    (mail,) = sent_mail(moto_endpoint)
    await consume(clients, settings, expect=2)  # Send, Bounce

    told = by_type(await events(clients, settings, "app1", 2))
    assert sorted(told) == ["email.bounced", "email.sent"]
    bounced = told["email.bounced"]
    assert (bounced["correlationId"], bounced["sesMessageId"]) == ("order-1", mail.ses_id)
    assert (bounced["bounceType"], bounced["bounceSubType"]) == ("Permanent", "General")
    assert bounced["recipients"][0]["address"] == BOUNCE
    assert bounced["recipients"][0]["diagnosticCode"] == "smtp; 550 5.1.1 user unknown"
    assert bounced["suppressed"] == [BOUNCE]
    entry = await suppression.check(settings, BOUNCE.upper())
    assert entry is not None
    assert (entry.reason, entry.app) == ("bounce", "app1")

    error = await refused(outbound, to(BOUNCE, correlation_id="order-2"))
    assert error.code == "suppressed"
    (failed,) = await events(clients, settings, "app1", 1)
    assert (failed["type"], failed["errorCode"]) == ("email.failed", "suppressed")
    assert BOUNCE in failed["reason"]
    assert "permanent bounce" in failed["reason"]
    assert len(sent_mail(moto_endpoint)) == 1

    removed = await suppression.remove(settings, BOUNCE)
    assert removed is not None
    await outbound.handle(sqs_message(to(BOUNCE, correlation_id="order-2")))
    assert len(sent_mail(moto_endpoint)) == 2


async def test_a_repeated_bounce_event_tells_the_app_the_same_event_id(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings,
    feed: SesEventFeed,
) -> None:  # fmt: skip
    await outbound.handle(sqs_message(to(BOUNCE)))
    assert settings.ses_events_queue
    url = await clients.queues.url(settings.ses_events_queue)
    bodies = await receive_all(clients.sqs, url, expect=2, timeout=10)
    pipeline = SesEventsPipeline(settings, clients)
    for body in [*bodies, *bodies]:  # SQS delivers at least once
        await pipeline.handle(event_message(body))
    told = [e for e in await events(clients, settings, "app1", 3) if e["type"] == "email.bounced"]
    assert len(told) == 2
    assert told[0]["eventId"] == told[1]["eventId"]


async def test_a_complaint_suppresses_the_address(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings,
    feed: SesEventFeed,
) -> None:  # fmt: skip
    await outbound.handle(sqs_message(to(COMPLAINT, correlation_id="news-1")))
    await consume(clients, settings, expect=3)  # Send, Delivery, Complaint
    told = by_type(await events(clients, settings, "app1", 3))
    assert sorted(told) == ["email.complained", "email.delivered", "email.sent"]
    complained = told["email.complained"]
    assert complained["correlationId"] == "news-1"
    assert complained["recipients"] == [COMPLAINT]
    assert complained["complaintFeedbackType"] == "abuse"
    assert complained["suppressed"] == [COMPLAINT]
    assert told["email.delivered"]["recipients"] == [COMPLAINT]
    error = await refused(outbound, to(COMPLAINT))
    assert error.code == "suppressed"


def soft_bounce(mail: SentMail, settings: Settings) -> str:
    """A Transient bounce of `mail`, as SES publishes it (with the email's own headers)."""
    now = datetime.now(UTC)
    event = ses_event(
        "Bounce",
        ses_message_id=mail.ses_id,
        source=mail.source,
        destinations=mail.destinations,
        raw_mime=mail.raw,
        sent_at=now,
        configuration_set="mailflow",
        detail=bounce_detail(mail.destinations, now, "Transient", "MailboxFull"),
    )
    return json.dumps(sns_envelope(event, "arn:aws:sns:us-east-1:123456789012:events"))


async def test_soft_bounces_suppress_only_once_they_reach_the_limit(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings, moto_endpoint: str
) -> None:
    pipeline = SesEventsPipeline(settings, clients)
    address = "full@example.net"
    for n in range(1, 4):
        await outbound.handle(sqs_message(to(address)))
        mail = sent_mail(moto_endpoint)[-1]
        event = soft_bounce(mail, settings)
        await pipeline.handle(event_message(event))
        await pipeline.handle(event_message(event))  # a repeat counts once
        told = await events(clients, settings, "app1", 3)  # sent, bounced, bounced again
        bounced = [e for e in told if e["type"] == "email.bounced"]
        assert bounced[-1]["bounceType"] == "Transient"
        if n < 3:
            assert bounced[-1]["suppressed"] == []
            assert await suppression.check(settings, address) is None
    entry = await suppression.check(settings, address)
    assert entry is not None
    assert (entry.reason, entry.detail) == ("soft_bounces", "3 soft bounces within 72 h")


async def test_a_suppressed_bcc_is_skipped_and_the_others_get_the_email(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings, moto_endpoint: str
) -> None:
    await suppression.add(settings, "gone@example.net", "asked to stop")
    body = to("someone@example.net")
    body["email"]["bcc"] = [{"address": "Gone@Example.net"}, {"address": "also@example.net"}]
    await outbound.handle(sqs_message(body))
    (mail,) = sent_mail(moto_endpoint)
    # moto lists the request's Destination, then the To header's addresses again.
    assert mail.destinations == ["someone@example.net", "also@example.net", "someone@example.net"]
    (sent,) = await events(clients, settings, "app1", 1)
    assert sent["recipients"] == 2
    (skipped,) = sent["skipped"]
    assert (skipped["address"], skipped["reason"]) == ("gone@example.net", "suppressed")
    assert "asked to stop" in skipped["detail"]


async def test_the_loop_limit_stops_automatic_mail_to_an_automated_sender(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings, moto_endpoint: str
) -> None:
    await within_one_clock_hour(30)  # the limit is per clock hour
    # What the inbound side wrote when an auto-reply from this address came in.
    table = Table(clients.dynamodb, settings.idempotency_table)
    await table.put_markers([keys.automated_sender("Responder@example.net")], 3600)
    for _ in range(3):
        await outbound.handle(sqs_message(to("responder@example.net")))
    error = await refused(outbound, to("responder@example.net"))
    assert error.code == "loop_suspected"
    assert len(sent_mail(moto_endpoint)) == 3
    # A person's email is not automatic: it is not counted, and goes.
    await outbound.handle(sqs_message(to("responder@example.net", autoSubmitted="no")))
    assert len(sent_mail(moto_endpoint)) == 4
    told = [e["type"] for e in await events(clients, settings, "app1", 5)]
    assert sorted(told) == ["email.failed"] + ["email.sent"] * 4


async def test_automatic_mail_to_a_person_is_never_counted(
    outbound: OutboundPipeline, moto_endpoint: str
) -> None:
    """Notifications to someone who sends no automated mail: past the limit, all sent."""
    for _ in range(5):
        await outbound.handle(sqs_message(to("person@example.net")))
    assert len(sent_mail(moto_endpoint)) == 5


async def test_an_automatic_reply_to_an_auto_reply_is_refused(
    outbound: OutboundPipeline, clients: AwsClients, settings: Settings, moto_endpoint: str
) -> None:
    table = Table(clients.dynamodb, settings.idempotency_table)
    await table.put_marker(keys.automated_message("<ooo-1@mail.example.net>"), 3600)
    body = to("someone@example.net")
    body["email"]["headers"] = {"in-reply-to": "<ooo-1@mail.example.net>"}
    error = await refused(outbound, body)
    assert error.code == "loop_suspected"
    assert "automated mail" in str(error)
    assert sent_mail(moto_endpoint) == []
    # The same reply, written by a person, goes.
    body["correlationId"] = "person-1"
    body["options"] = {"autoSubmitted": "no"}
    await outbound.handle(sqs_message(body))
    assert len(sent_mail(moto_endpoint)) == 1


async def test_whose_email_it_was_is_remembered_for_the_feedback_window(
    make_settings: Callable[..., Settings], moto_endpoint: str
) -> None:
    settings = make_settings(outbound={"default_send_rate": 500.0}, feedback={"window_days": 2})
    async with open_clients(settings) as clients:
        await provision(settings, clients)
        await OutboundPipeline(settings, clients).handle(sqs_message(to("a@example.net")))
        (mail,) = sent_mail(moto_endpoint)
        token = mail.parsed["X-Mailflow-Send"]
        item = (
            await clients.dynamodb.get_item(
                TableName=settings.idempotency_table, Key={"pk": {"S": keys.send_token(token)}}
            )
        )["Item"]
    assert item["app"]["S"] == "app1"
    assert item["correlationId"]["S"].startswith("c-")
    expires_in = int(item["expiresAt"]["N"]) - time.time()
    assert 2 * 86400 - 60 < expires_in <= 2 * 86400


def open_event(mail: SentMail) -> str:
    """An Open of `mail`, as SES publishes it for a tracked email."""
    now = datetime.now(UTC)
    event = ses_event(
        "Open",
        ses_message_id=mail.ses_id,
        source=mail.source,
        destinations=["reader@example.net"],
        raw_mime=mail.raw,
        sent_at=now,
        configuration_set="mailflow-tracking",
        detail={"ipAddress": "198.51.100.7", "timestamp": now.isoformat(), "userAgent": "UA"},
    )
    return json.dumps(sns_envelope(event, "arn:aws:sns:us-east-1:123456789012:events"))


@pytest.mark.parametrize(("asked", "told_types"), [(True, ["email.opened"]), (False, [])])
async def test_opens_reach_the_app_only_for_emails_that_asked_for_tracking(
    make_settings: Callable[..., Settings], moto_endpoint: str, asked: bool,
    told_types: list[str],
) -> None:  # fmt: skip
    settings = make_settings(
        ses_events_queue="mailflow-ses-events",
        outbound={
            "default_send_rate": 500.0,
            "configuration_set": "mailflow",
            "tracking_configuration_set": "mailflow-tracking",
        },
    )
    async with open_clients(settings) as clients:
        await provision(settings, clients)
        body = to("reader@example.net", tracking=asked)
        await OutboundPipeline(settings, clients).handle(sqs_message(body))
        (mail,) = sent_mail(moto_endpoint)
        await SesEventsPipeline(settings, clients).handle(event_message(open_event(mail)))
        told = await events(clients, settings, "app1", 1 + len(told_types))
    assert sorted(e["type"] for e in told) == sorted(["email.sent", *told_types])
    for opened in (e for e in told if e["type"] == "email.opened"):
        assert (opened["correlationId"], opened["ipAddress"]) == (
            body["correlationId"],
            "198.51.100.7",
        )
