"""The inbound handler against a real AWS-protocol endpoint (moto server over HTTP)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.engine.message import SqsMessage
from mailflow.errors import MailflowError, PermanentError, PolicyRejected
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.fixtures.eml.make_corpus import PDF_SMALL, corpus
from tests.helpers import queue_count, receive_all, within_one_clock_hour
from tests.integration.inbound.support import handle_next, next_inbound

CORPUS = corpus()


async def app_messages(
    aws: AwsClients, settings: Settings, app: str, expect: int = 1
) -> list[dict[str, Any]]:
    url = await aws.queues.url(
        settings.app_queue(app) if app != "default" else settings.default_queue
    )
    return [json.loads(b) for b in await receive_all(aws.sqs, url, expect=expect, timeout=5)]


async def test_plain_email_reaches_its_app(provisioned: Settings, aws: AwsClients) -> None:
    ses_id = await inject(provisioned, aws, CORPUS["plain.eml"], ["_app1@example.com"])
    await handle_next(provisioned, aws)
    [message] = await app_messages(aws, provisioned, "app1")
    assert message["email"]["subject"] == "Plain text hello"
    assert message["metadata"]["sesMessageId"] == ses_id
    assert message["metadata"]["rawEmail"]["s3Bucket"] == provisioned.raw_bucket


async def test_attachments_are_stored_with_type_name_and_working_url(
    provisioned: Settings, aws: AwsClients
) -> None:
    await inject(provisioned, aws, CORPUS["attachments.eml"], ["_app1@example.com"])
    await handle_next(provisioned, aws)
    [message] = await app_messages(aws, provisioned, "app1")
    pdf, png = message["email"]["attachments"]
    assert pdf["filename"] == "report.pdf"
    assert pdf["contentType"] == "application/pdf"
    assert pdf["status"] == "stored"
    assert pdf["size"] == len(PDF_SMALL)
    assert pdf["s3Bucket"] == provisioned.attachments_bucket
    assert pdf["s3Key"].startswith("inbound/app1/")
    assert pdf["s3Key"].endswith(pdf["id"])
    head = await aws.s3.head_object(Bucket=pdf["s3Bucket"], Key=pdf["s3Key"])
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"]["original-filename"] == "report.pdf"
    with urllib.request.urlopen(pdf["presignedUrl"], timeout=5) as response:
        assert response.read() == PDF_SMALL
    # SigV4 query signing: S3 refuses SigV2 URLs for SSE-KMS objects (moto accepts both).
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(pdf["presignedUrl"]).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert {"X-Amz-Credential", "X-Amz-Signature", "X-Amz-Expires"} <= set(query)
    assert "AWSAccessKeyId" not in query
    assert "Signature" not in query
    assert png["contentType"] == "image/png"
    assert png["detectedContentType"] == "image/png"


async def test_duplicate_notification_sends_once(provisioned: Settings, aws: AwsClients) -> None:
    await inject(provisioned, aws, CORPUS["plain.eml"], ["_app1@example.com"])
    message = await next_inbound(provisioned, aws)
    handler = InboundPipeline(provisioned, aws)
    await handler.handle(message)
    await handler.handle(message)  # redelivery
    # handle() returns after its sends: the queue holds everything it will ever get.
    assert await queue_count(aws.sqs, await aws.queues.url(provisioned.app_queue("app1"))) == 1


async def test_failure_after_one_app_retries_only_the_missing_one(
    make_settings: Any, provisioned: Settings, aws: AwsClients
) -> None:
    # app2's queue does not exist yet: app1 is served, app2 fails.
    await aws.sqs.delete_queue(QueueUrl=await aws.queues.url(provisioned.app_queue("app2")))
    await inject(
        provisioned, aws, CORPUS["multiple-apps.eml"], ["_app1@example.com", "_app2@example.com"]
    )
    message = await next_inbound(provisioned, aws)
    with pytest.raises(MailflowError) as info:
        await InboundPipeline(provisioned, aws).handle(message)
    assert info.value.app == "app2"
    assert len(await app_messages(aws, provisioned, "app1")) == 1
    await aws.sqs.create_queue(QueueName=provisioned.app_queue("app2"))
    aws.queues._cache.clear()
    await InboundPipeline(provisioned, aws).handle(message)
    assert len(await app_messages(aws, provisioned, "app2")) == 1
    assert await queue_count(aws.sqs, await aws.queues.url(provisioned.app_queue("app1"))) == 0


async def test_missing_raw_object_is_permanent(provisioned: Settings, aws: AwsClients) -> None:
    await inject(provisioned, aws, CORPUS["plain.eml"], ["_app1@example.com"], key="gone")
    await aws.s3.delete_object(Bucket=provisioned.raw_bucket, Key="gone")
    with pytest.raises(PermanentError) as info:
        await handle_next(provisioned, aws)
    assert info.value.code == "raw_email_missing"


async def test_too_large_email_is_rejected_before_parsing(
    make_settings: Any, aws: AwsClients
) -> None:
    settings = make_settings(inbound={"max_email_bytes": 1000})
    await inject(settings, aws, CORPUS["attachments.eml"], ["_app1@example.com"])
    with pytest.raises(PolicyRejected) as info:
        await handle_next(settings, aws)
    assert info.value.code == "email_too_large"


async def test_s3_event_reads_recipient_and_verdicts_from_ses_headers(
    provisioned: Settings, aws: AwsClients
) -> None:
    await inject(
        provisioned, aws, CORPUS["bcc-only.eml"], ["_app2@example.com"], shape="s3",
        key="inbound-raw/with space+plus/abc",
    )  # fmt: skip
    await handle_next(provisioned, aws)
    [message] = await app_messages(aws, provisioned, "app2")
    assert message["metadata"]["recipientSource"] == "received-header"
    assert message["metadata"]["rawEmail"]["s3Key"] == "inbound-raw/with space+plus/abc"
    assert message["metadata"]["verdicts"]["virus"] == "PASS"


async def test_rate_limit_counts_each_email_once(make_settings: Any, aws: AwsClients) -> None:
    settings = make_settings(inbound={"rate_limit_per_hour": 2})
    await within_one_clock_hour(30)  # the limit is per clock hour
    handler = InboundPipeline(settings, aws)
    messages: list[SqsMessage] = []
    for _ in range(3):
        await inject(settings, aws, CORPUS["plain.eml"], ["_app1@example.com"])
        messages.append(await next_inbound(settings, aws))
    await handler.handle(messages[0])
    await handler.handle(messages[0])  # a redelivery does not count again
    await handler.handle(messages[1])
    with pytest.raises(PolicyRejected) as info:
        await handler.handle(messages[2])
    assert info.value.code == "rate_limited"
    assert await queue_count(aws.sqs, await aws.queues.url(settings.app_queue("app1"))) == 2


async def test_queue_maximum_size_is_what_moto_enforces(
    provisioned: Settings, aws: AwsClients
) -> None:
    url = await aws.queues.url(provisioned.app_queue("app1"))
    attrs = await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])
    assert attrs["Attributes"]["MaximumMessageSize"] == "262144"


async def test_rejected_unknown_app_still_serves_the_other_apps(
    make_settings: Any, aws: AwsClients
) -> None:
    settings = make_settings(inbound={"unknown_app": "reject"})
    ses_id = await inject(
        settings, aws, CORPUS["plain.eml"], ["_nosuch@example.com", "_app2@example.com"]
    )
    with pytest.raises(PolicyRejected) as info:
        await handle_next(settings, aws)
    assert info.value.code == "unknown_app"
    assert info.value.details == {
        "rejected": {"_nosuch@example.com": "no app named 'nosuch'"},
        "sesMessageId": ses_id,
    }
    [message] = await app_messages(aws, settings, "app2")
    assert message["metadata"]["recipients"] == ["_app2@example.com"]
    assert await queue_count(aws.sqs, await aws.queues.url(settings.default_queue)) == 0


async def test_blocked_sender_and_spam_policy_reject_before_any_delivery(
    make_settings: Any, aws: AwsClients
) -> None:
    settings = make_settings(
        inbound={"allowed_sender_domains": ["partner.test"], "reject_spam": True}
    )
    await inject(settings, aws, CORPUS["plain.eml"], ["_app1@example.com"])
    with pytest.raises(PolicyRejected) as info:
        await handle_next(settings, aws)
    assert info.value.code == "sender_not_allowed"
    await inject(
        settings, aws, CORPUS["plain.eml"], ["_app1@example.com"], verdicts={"spam": "FAIL"}
    )
    with pytest.raises(PolicyRejected) as info:
        await handle_next(settings, aws)
    assert info.value.code == "spam_detected"
    assert await queue_count(aws.sqs, await aws.queues.url(settings.app_queue("app1"))) == 0


async def test_s3_event_virus_header_rejects(provisioned: Settings, aws: AwsClients) -> None:
    await inject(
        provisioned, aws, CORPUS["virus.eml"], ["_app1@example.com"], shape="s3",
        verdicts={"virus": "FAIL"},
    )  # fmt: skip
    with pytest.raises(PolicyRejected) as info:
        await handle_next(provisioned, aws)
    assert info.value.code == "virus_detected"


def forged(settings: Settings, *, bucket: str, key: str) -> SqsMessage:
    """An SES notification as an attacker with write access to the inbound queue makes it."""
    from datetime import UTC, datetime

    from mailflow.ops.inject import ses_notification, sns_envelope

    now = datetime.now(UTC)
    verdicts = dict.fromkeys(("spam", "virus", "spf", "dkim", "dmarc"), "PASS")
    body = ses_notification(
        bucket=bucket,
        key=key,
        ses_message_id="forged0000000000000000000000",
        recipients=["_app1@example.com"],
        sender="attacker@evil.example",
        stored=CORPUS["plain.eml"],
        verdicts=verdicts,
        received_at=now,
        region="us-east-1",
    )
    return SqsMessage(
        queue=settings.inbound_queue,
        queue_url="http://unused",
        message_id="m-forged",
        receipt_handle="r",
        body=json.dumps(sns_envelope(body, region="us-east-1", timestamp=now)),
    )


async def test_a_notification_naming_another_bucket_reads_nothing(
    provisioned: Settings, aws: AwsClients
) -> None:
    """app2's outbound object, named in a forged notification to _app1: never delivered."""
    key = "outbound/app2/secret.eml"
    await aws.s3.put_object(Bucket=provisioned.attachments_bucket, Key=key, Body=b"secret")
    message = forged(provisioned, bucket=provisioned.attachments_bucket, key=key)
    with pytest.raises(PermanentError) as info:
        await InboundPipeline(provisioned, aws).handle(message)
    assert info.value.code == "untrusted_notification"
    assert not info.value.retryable
    assert await queue_count(aws.sqs, await aws.queues.url(provisioned.app_queue("app1"))) == 0


@pytest.mark.parametrize("key", ["elsewhere/abc", "inbound/../elsewhere/abc", "inbound"])
async def test_a_key_outside_the_receipt_rules_prefix_reads_nothing(
    make_settings: Any, aws: AwsClients, key: str
) -> None:
    settings = make_settings(inbound={"raw_key_prefix": "inbound/"})
    await aws.s3.put_object(Bucket=settings.raw_bucket, Key=key, Body=CORPUS["plain.eml"])
    with pytest.raises(PermanentError) as info:
        await InboundPipeline(settings, aws).handle(
            forged(settings, bucket=settings.raw_bucket, key=key)
        )
    assert info.value.code == "untrusted_notification"
    assert await queue_count(aws.sqs, await aws.queues.url(settings.app_queue("app1"))) == 0


async def test_a_key_under_the_prefix_is_read(make_settings: Any, aws: AwsClients) -> None:
    settings = make_settings(inbound={"raw_key_prefix": "inbound/"})
    key = "inbound/abc"
    await aws.s3.put_object(Bucket=settings.raw_bucket, Key=key, Body=CORPUS["plain.eml"])
    await InboundPipeline(settings, aws).handle(
        forged(settings, bucket=settings.raw_bucket, key=key)
    )
    assert len(await app_messages(aws, settings, "app1")) == 1


async def test_a_pathological_header_is_delivered_with_its_defect(
    provisioned: Settings, aws: AwsClients
) -> None:
    """5,000 `(` before the From address used to raise RecursionError: a retry loop."""
    raw = (
        b"From: " + b"(" * 5000 + b"alice@sender.test\r\nTo: _app1@example.com\r\n"
        b"Subject: parens\r\nMessage-ID: <p@sender.test>\r\n\r\nhello\r\n"
    )
    await inject(provisioned, aws, raw, ["_app1@example.com"])
    await handle_next(provisioned, aws)  # returns: delivered, not raised for a retry
    [message] = await app_messages(aws, provisioned, "app1")
    assert message["email"]["subject"] == "parens"
    assert message["metadata"]["parseDefects"]
    assert any("From" in d for d in message["metadata"]["parseDefects"])


async def automated_marker_exists(aws: AwsClients, settings: Settings, message_id: str) -> bool:
    return await Table(aws.dynamodb, settings.idempotency_table).exists(
        keys.automated_message(message_id)
    )


async def test_an_auto_reply_leaves_a_marker_for_the_outbound_side(
    provisioned: Settings, aws: AwsClients
) -> None:
    await inject(provisioned, aws, CORPUS["auto-reply.eml"], ["_app1@example.com"])
    await inject(provisioned, aws, CORPUS["plain.eml"], ["_app1@example.com"])
    await handle_next(provisioned, aws)
    await handle_next(provisioned, aws)
    messages = await app_messages(aws, provisioned, "app1", expect=2)
    assert sorted(m["metadata"]["isAutoReply"] for m in messages) == [False, True]
    assert await automated_marker_exists(aws, provisioned, "<ooo@sender.test>")
    assert not await automated_marker_exists(aws, provisioned, "plain-1@sender.test")


async def test_a_failed_marker_write_retries_the_email_before_any_app_has_it(
    provisioned: Settings, aws: AwsClients
) -> None:
    await inject(provisioned, aws, CORPUS["auto-reply.eml"], ["_app1@example.com"])
    message = await next_inbound(provisioned, aws)
    # The table cannot be written (here: a name the endpoint does not know).
    broken = provisioned.model_copy(update={"idempotency_table": "no-such-table"})
    with pytest.raises(MailflowError) as failed:
        await InboundPipeline(broken, aws).handle(message)
    assert "automated-mail markers" in str(failed.value)
    assert await queue_count(aws.sqs, await aws.queues.url(provisioned.app_queue("app1"))) == 0
    await InboundPipeline(provisioned, aws).handle(message)  # the redelivery
    assert await automated_marker_exists(aws, provisioned, "ooo@sender.test")
    assert await Table(aws.dynamodb, provisioned.idempotency_table).exists(
        keys.automated_sender("Yara@Sender.test")  # its From: automatic mail to it counts
    )
    assert len(await app_messages(aws, provisioned, "app1")) == 1
