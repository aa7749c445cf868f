"""Delivery guarantees through the real worker: once per app, rejects visible, big mail works.

One worker process serves all the scenarios of this module (each asserts only on the
messages of its own SES message id, read from the queues like an app would).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject, store
from mailflow.settings import Settings
from tests.fixtures.eml.make_corpus import big_email, corpus
from tests.helpers import queue_count
from tests.integration.inbound.support import collect, wait_drained

pytestmark = pytest.mark.slow

CORPUS = corpus()
BODY_300_KB = 300 * 1024
ATTACHMENT_30_MB = 30_000_000


def read_with_extended_client(settings: Settings, queue_url: str) -> list[dict[str, Any]]:
    """What an app using amazon-sqs-extended-client sees (sync library: run in a thread)."""
    import boto3
    import sqs_extended_client  # noqa: F401  (patches boto3.Session)

    session = boto3.Session(region_name=settings.aws_region)
    sqs: Any = session.client("sqs", endpoint_url=settings.aws_endpoint_url)
    sqs.large_payload_support = settings.attachments_bucket
    response = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5, MessageAttributeNames=["All"]
    )
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


async def test_duplicates_viruses_and_large_mail(
    make_settings: Callable[..., Settings],
    aws: AwsClients,
    worker_process: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(consumers=["inbound"])
    app1 = await aws.queues.url(settings.app_queue("app1"))
    app2 = await aws.queues.url(settings.app_queue("app2"))
    queues = {"app1": settings.app_queue("app1"), "dlq": settings.dlq}
    with worker_process(settings) as worker:
        worker.wait_ready()

        # 1. The same notification delivered twice yields one app message.
        dup_id, notification = await store(
            settings, aws, CORPUS["plain.eml"], ["_app1@example.com"]
        )
        inbound = await aws.queues.url(settings.inbound_queue)
        for _ in range(2):
            await aws.sqs.send_message(QueueUrl=inbound, MessageBody=notification)
        found = await collect(aws, queues, expect=1, timeout=30)
        await wait_drained(aws, settings)
        found_more = await collect(aws, queues, expect=1, timeout=2)
        app1_messages = found.get("app1", []) + found_more.get("app1", [])
        assert [m["metadata"]["sesMessageId"] for m in app1_messages] == [dup_id]
        assert not found.get("dlq")
        assert not found_more.get("dlq")

        # 2. A virus FAIL reaches no app and leaves exactly one DLQ record.
        virus_id = await inject(
            settings, aws, CORPUS["virus.eml"], ["_app1@example.com", "_app2@example.com"],
            verdicts={"virus": "FAIL"},
        )  # fmt: skip
        found = await collect(aws, queues, expect=1, timeout=30)
        await wait_drained(aws, settings)
        [record] = found["dlq"]
        assert record["direction"] == "inbound"
        assert record["errorCode"] == "virus_detected"
        assert record["details"]["sesMessageId"] == virus_id
        assert not found.get("app1")
        assert await queue_count(aws.sqs, app1) == 0
        assert await queue_count(aws.sqs, app2) == 0
        assert await queue_count(aws.sqs, await aws.queues.url(settings.dlq)) == 0
        status, metrics = worker.get("/metrics")
        assert status == 200
        assert 'mailflow_inbound_rejected_total{reason="virus_detected"} 1.0' in metrics

        # 3. A 300 KB body arrives through the extended-client pointer.
        big_body_id = await inject(
            settings, aws, big_email(body_bytes=BODY_300_KB), ["_app2@example.com"]
        )
        await wait_drained(aws, settings)
        monkeypatch.setenv("AWS_ENDPOINT_URL", settings.aws_endpoint_url or "")
        [message] = await anyio.to_thread.run_sync(read_with_extended_client, settings, app2)
        assert message["metadata"]["sesMessageId"] == big_body_id
        text = message["email"]["body"]["text"]
        assert len(text.encode()) > 262_144
        assert text.count("lazy dog") == BODY_300_KB // 68
        listed = await aws.s3.list_objects_v2(
            Bucket=settings.attachments_bucket, Prefix="payloads/app2/"
        )
        assert [o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"]] == [
            f"{message['messageId']}.json"
        ]

        # 4. A 30 MB attachment is stored whole and its URL serves the same bytes.
        raw = big_email(attachment_bytes=ATTACHMENT_30_MB, to="_app1@example.com")
        big_att_id = await inject(settings, aws, raw, ["_app1@example.com"])
        found = await collect(aws, queues, expect=1, timeout=120)
        [message] = found["app1"]
        assert message["metadata"]["sesMessageId"] == big_att_id
        [attachment] = message["email"]["attachments"]
        assert attachment["status"] == "stored"
        assert attachment["size"] == ATTACHMENT_30_MB
        with urllib.request.urlopen(attachment["presignedUrl"], timeout=60) as response:
            data = response.read()
        assert hashlib.sha256(data).hexdigest() == attachment["checksum"]
        assert len(data) == ATTACHMENT_30_MB
        assert "Traceback" not in worker.logs()
