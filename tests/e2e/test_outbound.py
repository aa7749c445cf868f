"""The outbound pipeline end to end: the real worker process, observed only through AWS.

Apps' view: put JSON on `mailflow-outbound`, read status events from the app queue; the
mail itself is read back from what SES (the moto server) accepted, via
`/moto-api/data.json` (`ses.RawMessage[]`: `id`, `source`, `destinations`, `raw_data`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.helpers import WorkerProcess, queue_count, receive_all
from tests.integration.outbound.support import (
    SentMail,
    message,
    sent_mail,
    text_of,
)
from tests.readme_examples import README_CAMEL, README_QUICKSTART

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Only the outbound consumer: these tests must not depend on the inbound pipeline.
    return make_settings(consumers=["outbound"], outbound={"default_send_rate": 500.0})


@pytest.fixture
def worker(provisioned: Settings, worker_process: Callable[..., Any]) -> Callable[..., Any]:
    @contextmanager
    def start(**extra_env: str) -> Iterator[WorkerProcess]:
        with worker_process(provisioned, extra_env=extra_env) as proc:
            proc.wait_ready()
            yield proc

    return start


async def put(aws: AwsClients, settings: Settings, *bodies: dict[str, Any] | str) -> None:
    url = await aws.queues.url(settings.outbound_queue)
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        await aws.sqs.send_message(QueueUrl=url, MessageBody=text)


async def wait_sent(endpoint: str, count: int, timeout: float = 30.0) -> list[SentMail]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = sent_mail(endpoint)
        if len(mails) >= count:
            return mails
        await anyio.sleep(0.3)
    return sent_mail(endpoint)


async def settled(aws: AwsClients, settings: Settings, timeout: float = 30.0) -> None:
    """Wait until the outbound queue holds nothing (visible, in flight or delayed)."""
    url = await aws.queues.url(settings.outbound_queue)
    with anyio.fail_after(timeout):
        while await queue_count(aws.sqs, url):
            await anyio.sleep(0.2)


async def app_events(
    aws: AwsClients, settings: Settings, app: str, expect: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    url = await aws.queues.url(settings.app_queue(app))
    bodies = await receive_all(aws.sqs, url, expect=expect, timeout=timeout)
    return [json.loads(b) for b in bodies]


async def test_both_readme_examples_are_sent(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    with worker():
        await put(aws, provisioned, README_CAMEL, README_QUICKSTART)
        mails = await wait_sent(moto_endpoint, 2)
        events = await app_events(aws, provisioned, "app1", 2)
    assert len(mails) == 2
    by_subject = {m.parsed["Subject"]: m for m in mails}
    camel = by_subject["Response Email"].parsed
    assert camel["From"] == "App1 <_app1@example.com>"
    assert camel["To"] == "recipient@example.net"
    assert camel["Auto-Submitted"] == "auto-generated"
    assert camel["Message-ID"].endswith("@example.com>")
    assert camel.get_content_type() == "multipart/alternative"
    assert text_of(camel.get_body(("plain",))).strip() == "Plain text response"  # type: ignore[arg-type]
    assert text_of(camel.get_body(("html",))).strip() == "<p>HTML response</p>"  # type: ignore[arg-type]
    quick = by_subject["Test Response"].parsed
    assert quick.get_content_type() == "text/plain"
    assert text_of(quick).strip() == "This is a test response from Mailflow"
    assert by_subject["Test Response"].destinations[0] == "recipient@example.net"
    assert {e["type"] for e in events} == {"email.sent"}
    assert {e["correlationId"]: e["sesMessageId"] for e in events} == {
        "unique-id-123": by_subject["Response Email"].ses_id,
        "test-1700000000": by_subject["Test Response"].ses_id,
    }


async def test_duplicate_message_is_sent_once(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    with worker():
        await put(aws, provisioned, README_CAMEL, README_CAMEL, README_CAMEL)  # racing duplicates
        events = await app_events(aws, provisioned, "app1", 1)
        await put(aws, provisioned, README_CAMEL)  # a late redelivery
        await settled(aws, provisioned)  # every copy deleted: none can send any more
    assert len(sent_mail(moto_endpoint)) == 1
    # The event is on the queue once: the copies find the claim completed and told.
    app1 = await aws.queues.url(provisioned.app_queue("app1"))
    assert await queue_count(aws.sqs, app1) == 0
    assert [e["sesMessageId"] for e in events] == [sent_mail(moto_endpoint)[0].ses_id]


async def failure_outcome(
    aws: AwsClients, settings: Settings, body: dict[str, Any] | str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(email.failed event on app1's queue, DLQ record) for one bad message."""
    await put(aws, settings, body)
    (event,) = await app_events(aws, settings, "app1", 1)
    dlq = await aws.queues.url(settings.dlq)
    (record,) = [json.loads(b) for b in await receive_all(aws.sqs, dlq, expect=1, timeout=10)]
    return event, record


async def test_app1_claiming_app2_address_is_rejected_with_email_failed(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    with worker():
        event, record = await failure_outcome(
            aws, provisioned, message(**{"from": {"address": "_app2@example.com"}})
        )
        assert await app_events(aws, provisioned, "app2", 1, timeout=2) == []
    assert event["type"] == "email.failed"
    assert event["errorCode"] == "sender_not_allowed"
    assert event["correlationId"] == "unique-id-123"
    assert record["errorCode"] == "sender_not_allowed"
    assert record["app"] == "app1"
    assert json.loads(record["body"])["email"]["from"]["address"] == "_app2@example.com"
    assert sent_mail(moto_endpoint) == []


async def test_attachment_from_foreign_bucket_is_rejected(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    await aws.s3.create_bucket(Bucket="someone-elses-bucket")
    await aws.s3.put_object(Bucket="someone-elses-bucket", Key="outbound/app1/x.pdf", Body=b"x")
    await aws.s3.put_object(
        Bucket=provisioned.attachments_bucket, Key="inbound/app2/m/secret.pdf", Body=b"secret"
    )
    foreign = [
        {"filename": "x.pdf", "s3Bucket": "someone-elses-bucket", "s3Key": "outbound/app1/x.pdf"}
    ]
    other_app = [
        {
            "filename": "s.pdf",
            "s3Bucket": provisioned.attachments_bucket,
            "s3Key": "inbound/app2/m/secret.pdf",
        }
    ]
    with worker():
        event1, _ = await failure_outcome(aws, provisioned, message(attachments=foreign))
        second = message(attachments=other_app)
        second["correlationId"] = "other-app-files"
        event2, _ = await failure_outcome(aws, provisioned, second)
    assert event1["errorCode"] == event2["errorCode"] == "attachment_forbidden"
    assert "someone-elses-bucket" in event1["reason"]
    assert sent_mail(moto_endpoint) == []


async def test_header_injection_in_subject_is_rejected(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    with worker():
        event, record = await failure_outcome(
            aws, provisioned, message(subject="Hello\r\nBcc: victim@example.net")
        )
    assert event["errorCode"] == "header_injection"
    assert "email.subject" in event["reason"]
    assert record["errorCode"] == "header_injection"
    assert sent_mail(moto_endpoint) == []


async def test_html_text_and_two_attachments_parse_back_to_the_same_parts(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    files = {
        "outbound/app1/report.pdf": (
            b"%PDF-1.7\n" + os.urandom(50_000),
            "application/pdf",
            "Bericht Q3 – Übersicht.pdf",
        ),
        "outbound/app1/data.csv": ("id,name\n1,Zoë\n".encode(), "text/csv", "data.csv"),
    }
    for key, (data, _, _) in files.items():
        await aws.s3.put_object(Bucket=provisioned.attachments_bucket, Key=key, Body=data)
    body = message(
        body={"text": "Hallo Zoë,\nanbei.", "html": "<p>Hallo Zoë,<br>anbei.</p>"},
        attachments=[
            {
                "filename": name,
                "contentType": ctype,
                "s3Bucket": provisioned.attachments_bucket,
                "s3Key": key,
            }
            for key, (_, ctype, name) in files.items()
        ],
    )
    with worker():
        await put(aws, provisioned, body)
        (mail,) = await wait_sent(moto_endpoint, 1)
    msg = mail.parsed
    assert msg.get_content_type() == "multipart/mixed"
    assert text_of(msg.get_body(("plain",))).strip() == "Hallo Zoë,\nanbei."  # type: ignore[arg-type]
    assert text_of(msg.get_body(("html",))).strip() == "<p>Hallo Zoë,<br>anbei.</p>"  # type: ignore[arg-type]
    parts = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_attachments()
    ]
    assert parts == [(name, ctype, data) for data, ctype, name in files.values()]


async def test_20_mb_attachment_goes_out(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    data = os.urandom(20 * 1024 * 1024)
    key = "outbound/app1/big.bin"
    await aws.s3.put_object(Bucket=provisioned.attachments_bucket, Key=key, Body=data)
    body = message(
        attachments=[
            {"filename": "big.bin", "s3Bucket": provisioned.attachments_bucket, "s3Key": key}
        ]
    )
    with worker():
        await put(aws, provisioned, body)
        (event,) = await app_events(aws, provisioned, "app1", 1, timeout=90)
    assert event["type"] == "email.sent", event
    (mail,) = sent_mail(moto_endpoint)
    (part,) = list(mail.parsed.iter_attachments())
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert hashlib.sha256(payload).digest() == hashlib.sha256(data).digest()
    assert len(mail.raw) > 27_000_000  # base64 on the wire


async def test_scheduled_send_waits_for_its_time(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    """Real time, short horizon: held in 2-second hops, sent right after its time."""
    scheduled = datetime.now(UTC) + timedelta(seconds=12)
    body = message()
    body["options"] = {"scheduledSendTime": scheduled.isoformat()}
    with worker(MAILFLOW_OUTBOUND__MAX_DEFER_STEP_SECONDS="2"):
        await put(aws, provisioned, body)
        while datetime.now(UTC) < scheduled - timedelta(seconds=1):
            assert sent_mail(moto_endpoint) == [], "sent before its time"
            await anyio.sleep(0.5)
        (event,) = await app_events(aws, provisioned, "app1", 1, timeout=20)
    sent_at = datetime.fromisoformat(event["sentAt"])
    assert scheduled <= sent_at < scheduled + timedelta(seconds=10)
    assert len(sent_mail(moto_endpoint)) == 1


async def test_worker_killed_during_the_send_never_sends_twice(
    provisioned: Settings,
    aws: AwsClients,
    worker_process: Callable[..., Any],
    moto_endpoint: str,
) -> None:
    """SIGKILL after SES accepted the email but before the worker heard back.

    The fault proxy forwards SendEmail and holds the answer; the worker is killed in that
    window. No SES events are configured here, so nothing can tell whether it went out:
    the redelivered message finds the send marker and, after the window, is reported to
    the app as `send_outcome_unknown` instead of being sent a second time. (With events,
    the same kill ends as `email.sent`: tests/e2e/test_chaos.py.)
    """
    env = {
        "MAILFLOW_VISIBILITY_TIMEOUT_SECONDS": "10",
        "MAILFLOW_OUTBOUND__UNKNOWN_OUTCOME_AFTER_SECONDS": "15",
    }
    with FaultProxy(moto_endpoint, fault_rate=0.0, hold_send_seconds=8) as proxy:
        env["AWS_ENDPOINT_URL"] = proxy.url
        with worker_process(provisioned, extra_env=env) as first:
            first.wait_ready()
            await put(aws, provisioned, README_CAMEL)
            assert len(await wait_sent(moto_endpoint, 1, timeout=20)) == 1
            first.proc.kill()  # SES has the email; the worker never learns its id
            first.proc.wait()
        proxy.hold_send_seconds = 0
        with worker_process(provisioned, extra_env=env) as second:
            second.wait_ready()
            (event,) = await app_events(aws, provisioned, "app1", 1, timeout=60)
    assert event["type"] == "email.failed"
    assert event["errorCode"] == "send_outcome_unknown"
    assert event["correlationId"] == "unique-id-123"
    assert len(sent_mail(moto_endpoint)) == 1
