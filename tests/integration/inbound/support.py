"""Shared steps of the inbound integration and end-to-end tests: read what landed in queues."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import anyio

from mailflow.aws.clients import AwsClients
from mailflow.engine.message import SqsMessage
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.settings import Settings


async def collect(
    aws: AwsClients, queues: dict[str, str], expect: int, timeout: float
) -> dict[str, list[dict[str, Any]]]:
    """Receive (and delete) from every named queue until `expect` messages arrived in total.

    Keeps queues shallow (moto slows down as a queue grows) by draining as they fill.
    Returns parsed JSON bodies by queue label; raw SQS attributes are kept under "_sqs".
    """
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    urls = {label: await aws.queues.url(name) for label, name in queues.items()}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in found.values()) < expect and time.monotonic() < deadline:
        got_any = False
        for label, url in urls.items():
            response = await aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            for message in response.get("Messages", []):
                got_any = True
                body = json.loads(message["Body"])
                if isinstance(body, dict):
                    body["_sqs"] = message
                found[label].append(body)
                await aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not got_any:
            await anyio.sleep(0.3)
    return dict(found)


async def wait_drained(aws: AwsClients, settings: Settings, timeout: float = 30.0) -> None:
    """Wait until the inbound queue holds nothing, visible or in flight."""
    from tests.helpers import queue_count

    url = await aws.queues.url(settings.inbound_queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await queue_count(aws.sqs, url) == 0:
            return
        await anyio.sleep(0.3)
    raise AssertionError("inbound queue not drained")


async def next_inbound(settings: Settings, aws: AwsClients) -> SqsMessage:
    """Receive one notification from the inbound queue as the consumer would."""
    url = await aws.queues.url(settings.inbound_queue)
    response = await aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=2, AttributeNames=["All"]
    )
    raw: Any = response["Messages"][0]
    await aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=raw["ReceiptHandle"])
    return SqsMessage(
        queue=settings.inbound_queue,
        queue_url=url,
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw["Body"],
        attributes=raw.get("Attributes", {}),
    )


async def handle_next(settings: Settings, aws: AwsClients) -> SqsMessage:
    message = await next_inbound(settings, aws)
    await InboundPipeline(settings, aws).handle(message)
    return message
