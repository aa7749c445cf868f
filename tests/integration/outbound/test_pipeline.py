"""The outbound pipeline against the moto server over HTTP: sends, claims, events, failures."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import anyio
import pytest

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.message import SqsMessage
from mailflow.errors import MailflowError, PermanentError, PolicyRejected
from mailflow.outbound.pipeline import OutboundPipeline, SendOutcomeUnknown
from mailflow.settings import Settings
from tests.helpers import receive_all
from tests.integration.outbound.support import (
    abandoned_attempt,
    message,
    sent_mail,
    text_of,
)
from tests.readme_examples import README_CAMEL, README_QUICKSTART


def sqs_message(body: dict[str, Any] | str) -> SqsMessage:
    text = body if isinstance(body, str) else json.dumps(body)
    return SqsMessage(
        queue="mailflow-outbound",
        queue_url="http://unused",
        message_id=str(uuid.uuid4()),
        receipt_handle="unused",
        body=text,
        attributes={"ApproximateReceiveCount": "1"},
    )


async def events(
    aws: AwsClients, settings: Settings, app: str, expect: int
) -> list[dict[str, Any]]:
    url = await aws.queues.url(settings.app_queue(app))
    return [json.loads(b) for b in await receive_all(aws.sqs, url, expect=expect, timeout=5)]


async def test_readme_example_is_sent_with_event(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    await handler.handle(sqs_message(README_CAMEL))
    (mail,) = sent_mail(moto_endpoint)
    msg = mail.parsed
    assert msg["Subject"] == "Response Email"
    assert msg["From"] == "App1 <_app1@example.com>"
    assert mail.source == "_app1@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    assert text_of(msg.get_body(preferencelist=("plain",))).strip() == "Plain text response"  # type: ignore[arg-type]
    (event,) = await events(aws, provisioned, "app1", 1)
    assert event["type"] == "email.sent"
    assert event["correlationId"] == "unique-id-123"
    assert event["sesMessageId"] == mail.ses_id
    assert event["messageId"] == msg["Message-ID"]
    assert event["recipients"] == 1


async def test_duplicate_is_sent_once_and_its_event_is_not_repeated(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    await handler.handle(sqs_message(README_QUICKSTART))
    await handler.handle(sqs_message(README_QUICKSTART))
    # A second handler (another task) sees the same completed claim.
    await OutboundPipeline(provisioned, aws).handle(sqs_message(README_QUICKSTART))
    assert len(sent_mail(moto_endpoint)) == 1
    (sent,) = await events(aws, provisioned, "app1", 1)
    assert sent["type"] == "email.sent"


async def test_a_completed_send_whose_event_was_lost_emits_it_again_with_the_same_id(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    """A crash between `complete` and the event: the repeat emits it, same eventId."""
    await handler.handle(sqs_message(README_QUICKSTART))
    (first,) = await events(aws, provisioned, "app1", 1)
    key = keys.outbound_email("app1", README_QUICKSTART["correlation_id"])
    await aws.dynamodb.update_item(
        TableName=provisioned.idempotency_table,
        Key={keys.KEY_ATTRIBUTE: {"S": key}},
        UpdateExpression="REMOVE emitted",
    )
    await handler.handle(sqs_message(README_QUICKSTART))
    (again,) = await events(aws, provisioned, "app1", 1)
    assert again["eventId"] == first["eventId"]
    assert again["sesMessageId"] == first["sesMessageId"]
    assert len(sent_mail(moto_endpoint)) == 1


async def test_same_correlation_id_different_content_is_reported(
    handler: OutboundPipeline, moto_endpoint: str
) -> None:
    await handler.handle(sqs_message(README_CAMEL))
    with pytest.raises(PolicyRejected) as info:
        await handler.handle(sqs_message(message(subject="Something else")))
    assert info.value.code == "idempotency_conflict"
    assert info.value.app == "app1"
    assert len(sent_mail(moto_endpoint)) == 1


async def test_claim_held_elsewhere_is_retried_later_not_sent(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    from mailflow.outbound.validation import parse_message, validate

    email = validate(parse_message(json.dumps(README_CAMEL), provisioned), provisioned)
    table = Table(aws.dynamodb, provisioned.idempotency_table)
    claim = await table.claim(
        "outbound#app1#unique-id-123",
        payload_hash=email.payload_hash,
        lease_seconds=60,
        ttl_seconds=3600,
    )
    assert claim.status == "acquired"
    outcome = await handler.handle(sqs_message(README_CAMEL))
    assert outcome.deferral is not None
    assert outcome.deferral.reason == "another worker holds the claim"
    assert outcome.deferral.seconds <= 5
    assert outcome.app == "app1"
    assert sent_mail(moto_endpoint) == []


async def test_interrupted_send_is_never_repeated(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    """A worker killed during SendEmail left its marker; its lease has lapsed."""
    earlier = Table(aws.dynamodb, provisioned.idempotency_table, clock=lambda: time.time() - 1000)
    await abandoned_attempt(earlier, "unique-id-123", "a" * 32)
    with pytest.raises(SendOutcomeUnknown) as info:
        await handler.handle(sqs_message(README_CAMEL))
    assert not info.value.retryable
    assert info.value.code == "send_outcome_unknown"
    # No events are configured here: the reason says so, and what became of the attempt.
    assert "whether the email went out is unknown" in str(info.value)
    assert "no SES events are configured" in str(info.value)
    assert sent_mail(moto_endpoint) == []


async def test_young_marker_waits_for_the_first_sender(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    table = Table(aws.dynamodb, provisioned.idempotency_table)
    await abandoned_attempt(table, "unique-id-123", "b" * 32)
    outcome = await handler.handle(sqs_message(README_CAMEL))
    assert outcome.deferral is not None
    assert "waiting for SES's events" in outcome.deferral.reason
    assert sent_mail(moto_endpoint) == []


async def test_expired_marker_does_not_block_a_new_send(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    old = Table(aws.dynamodb, provisioned.idempotency_table, clock=lambda: time.time() - 7200)
    await abandoned_attempt(old, "unique-id-123", "c" * 32)  # expired
    await handler.handle(sqs_message(README_CAMEL))
    assert len(sent_mail(moto_endpoint)) == 1


async def test_foreign_sender_rejected_and_app_told(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    body = message(**{"from": {"address": "_app2@example.com"}})
    with pytest.raises(PolicyRejected) as info:
        await handler.handle(sqs_message(body))
    record = failure_record(body, info.value)
    await handler.on_permanent_failure(sqs_message(body), info.value, record)
    (event,) = await events(aws, provisioned, "app1", 1)
    assert event["type"] == "email.failed"
    assert event["errorCode"] == "sender_not_allowed"
    assert event["correlationId"] == "unique-id-123"
    assert "may not send as email.from" in event["reason"]
    assert "_app2@example.com" not in event["reason"]  # no address in error text
    assert await events(aws, provisioned, "app2", 0) == []
    assert sent_mail(moto_endpoint) == []


async def test_unparseable_message_of_known_app_still_yields_failed_event(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings
) -> None:
    body = json.dumps({"source": "app2", "correlationId": "c-9", "email": {"subject": 1}})
    with pytest.raises(MailflowError) as info:
        await handler.handle(sqs_message(body))
    await handler.on_permanent_failure(
        sqs_message(body), info.value, failure_record(body, info.value)
    )
    (event,) = await events(aws, provisioned, "app2", 1)
    assert (event["errorCode"], event["correlationId"]) == ("invalid_message", "c-9")


async def test_unknown_app_gets_no_event_anywhere(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings
) -> None:
    body = message(**{"from": {"address": "_zzz@example.com"}})
    body["source"] = "zzz"
    with pytest.raises(MailflowError) as info:
        await handler.handle(sqs_message(body))
    await handler.on_permanent_failure(
        sqs_message(body), info.value, failure_record(body, info.value)
    )
    assert await events(aws, provisioned, "app1", 0) == []


def failure_record(body: dict[str, Any] | str, error: MailflowError) -> FailureRecord:
    from datetime import UTC, datetime

    return FailureRecord(
        direction="outbound",
        source_queue="mailflow-outbound",
        sqs_message_id="x",
        error_code=error.code,
        reason=str(error),
        retryable=False,
        attempts=1,
        last_attempt_at=datetime.now(UTC),
        app=error.app,
        body=body if isinstance(body, str) else json.dumps(body),
    )


async def put_object(aws: AwsClients, bucket: str, key: str, data: bytes) -> dict[str, str]:
    await aws.s3.put_object(Bucket=bucket, Key=key, Body=data)
    return {"s3Bucket": bucket, "s3Key": key}


async def test_html_text_and_two_attachments_parse_back(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 50
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 3000
    bucket = provisioned.attachments_bucket
    atts = [
        {
            "filename": "Rechnung März.pdf",
            "contentType": "application/pdf",
            **await put_object(aws, bucket, "outbound/app1/inv.pdf", pdf),
        },
        {
            "filename": "chart.png",
            **await put_object(aws, bucket, "inbound/app1/abc/chart.png", png),
        },
    ]
    body = message(
        subject="Ihre Rechnung – März",
        body={"text": "Grüße,\nIhr Team", "html": "<p>Grüße,<br>Ihr Team</p>"},
        attachments=atts,
        cc=[{"address": "cc@example.net", "name": "Carbon Copy"}],
        bcc=[{"address": "hidden@example.net"}],
        replyTo={"address": "help@example.com"},
        headers={
            "in-reply-to": "orig-123@mail.example.net",
            "references": ["<root@mail.example.net>", "orig-123@mail.example.net"],
        },
    )
    await handler.handle(sqs_message(body))
    (mail,) = sent_mail(moto_endpoint)
    msg = mail.parsed
    assert msg.get_content_type() == "multipart/mixed"
    assert text_of(msg.get_body(preferencelist=("plain",))).strip() == "Grüße,\nIhr Team"  # type: ignore[arg-type]
    assert text_of(msg.get_body(preferencelist=("html",))).strip() == "<p>Grüße,<br>Ihr Team</p>"  # type: ignore[arg-type]
    got = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_attachments()
    ]
    assert got == [("Rechnung März.pdf", "application/pdf", pdf), ("chart.png", "image/png", png)]
    assert msg["Subject"] == "Ihre Rechnung – März"
    assert msg["Cc"] == "Carbon Copy <cc@example.net>"
    assert msg["Reply-To"] == "help@example.com"
    assert msg["Bcc"] is None
    assert "hidden@example.net" not in mail.raw
    assert "hidden@example.net" in mail.destinations  # envelope only
    assert msg["In-Reply-To"] == "<orig-123@mail.example.net>"
    assert msg["References"].split() == ["<root@mail.example.net>", "<orig-123@mail.example.net>"]


async def test_missing_attachment_is_permanent_and_releases_claim(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    att = {
        "filename": "a.pdf",
        "s3Bucket": provisioned.attachments_bucket,
        "s3Key": "outbound/app1/missing.pdf",
    }
    body = message(attachments=[att])
    with pytest.raises(PermanentError) as info:
        await handler.handle(sqs_message(body))
    assert info.value.code == "attachment_not_found"
    assert info.value.app == "app1"  # in the DLQ record, and the app is told
    # The claim was released: once the file exists, a redrive sends.
    await put_object(aws, provisioned.attachments_bucket, "outbound/app1/missing.pdf", b"%PDF")
    await handler.handle(sqs_message(body))
    assert len(sent_mail(moto_endpoint)) == 1


async def test_attachment_over_budget_is_rejected_while_streaming(
    make_settings: Any, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    small = make_settings(outbound={"default_send_rate": 500.0, "max_message_bytes": 200_000})
    handler = OutboundPipeline(small, aws)
    ref = await put_object(
        aws, provisioned.attachments_bucket, "outbound/app1/big.bin", b"x" * 300_000
    )
    with pytest.raises(PolicyRejected) as info:
        await handler.handle(sqs_message(message(attachments=[{"filename": "big.bin", **ref}])))
    assert info.value.code == "message_too_large"
    assert sent_mail(moto_endpoint) == []


async def test_foreign_bucket_attachment_rejected_before_any_read(
    handler: OutboundPipeline, aws: AwsClients, provisioned: Settings, moto_endpoint: str
) -> None:
    ref = await put_object(aws, provisioned.attachments_bucket, "inbound/app2/secret.pdf", b"s")
    with pytest.raises(PolicyRejected) as info:
        await handler.handle(sqs_message(message(attachments=[{"filename": "s.pdf", **ref}])))
    assert info.value.code == "attachment_forbidden"
    assert sent_mail(moto_endpoint) == []


async def test_ses_rejection_is_permanent_and_releases_claim(
    handler: OutboundPipeline, aws: AwsClients, moto_endpoint: str
) -> None:
    await aws.ses.delete_email_identity(EmailIdentity="example.org")
    body = message(**{"from": {"address": "_app1@example.org"}})
    with pytest.raises(PermanentError) as info:
        await handler.handle(sqs_message(body))
    assert info.value.code == "ses_rejected"
    assert info.value.app == "app1"
    await aws.ses.create_email_identity(EmailIdentity="example.org")
    await handler.handle(sqs_message(body))  # claim was released: a redrive sends
    assert len(sent_mail(moto_endpoint)) == 1


async def test_scheduled_message_is_deferred_without_claim(
    handler: OutboundPipeline, moto_endpoint: str
) -> None:
    later = message()
    later["options"] = {"scheduledSendTime": "2999-01-01T00:00:00Z"}
    with pytest.raises(MailflowError) as far:
        await handler.handle(sqs_message(later))
    assert far.value.code == "schedule_too_far"
    from datetime import UTC, datetime, timedelta

    soon = message()
    soon["options"] = {"scheduledSendTime": (datetime.now(UTC) + timedelta(minutes=40)).isoformat()}
    outcome = await handler.handle(sqs_message(soon))
    assert outcome.deferral is not None
    assert outcome.deferral.seconds == 900
    assert sent_mail(moto_endpoint) == []


@pytest.mark.moto_only(
    "LocalStack here serves DynamoDB with moto (the lab's provider override), whose"
    " conditional writes are not atomic under concurrent requests: two racing claims can"
    " both pass. DynamoDB evaluates the condition and writes as one step; the embedded"
    " endpoint does too (mailflow.local.embedded._atomic_moto_writes), so the claim's logic"
    " is tested there."
)
async def test_racing_workers_send_once(
    provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    """Five tasks handle the same message at the same moment: one claim wins."""
    handlers = [OutboundPipeline(provisioned, aws) for _ in range(5)]
    outcomes: list[str] = []

    async def run(handler: OutboundPipeline) -> None:
        outcome = await handler.handle(sqs_message(README_CAMEL))
        outcomes.append(outcome.deferral.reason if outcome.deferral else "ok")

    async with anyio.create_task_group() as tg:
        for handler in handlers:
            tg.start_soon(run, handler)
    assert len(sent_mail(moto_endpoint)) == 1
    assert "ok" in outcomes
    assert set(outcomes) <= {"ok", "another worker holds the claim"}
