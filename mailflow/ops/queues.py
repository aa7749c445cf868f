"""Operator tools: look into a queue, replay the DLQ. Not used by the worker itself."""

from __future__ import annotations

import json
from typing import Any

import structlog

from mailflow.aws.clients import open_clients
from mailflow.contracts.failure import FailureRecord
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.devtools")


def resolve_queue(settings: Settings, queue: str) -> str:
    """`inbound`, `dlq`, `app1` or `app:app1` -> the configured queue; anything else as is."""
    roles = settings.all_queues()
    if queue in roles:
        return roles[queue]
    if f"app:{queue}" in roles:
        return roles[f"app:{queue}"]
    return queue


def _decode(body: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


async def peek(settings: Settings, queue: str, limit: int) -> list[dict[str, Any]]:
    """Receive with a zero visibility timeout: messages stay available to consumers.

    SQS has no true peek; each look still counts as a receive (ApproximateReceiveCount).
    """
    found: dict[str, dict[str, Any]] = {}
    async with open_clients(settings) as clients:
        url = await clients.queues.url(resolve_queue(settings, queue))
        for _ in range(max(1, limit // 10 + 1) * 2):
            response = await clients.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit),
                VisibilityTimeout=0,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            for raw in response.get("Messages", []):
                found.setdefault(
                    raw["MessageId"],
                    {
                        "messageId": raw["MessageId"],
                        "attributes": raw.get("Attributes", {}),
                        "body": _decode(raw.get("Body", "")),
                    },
                )
            if len(found) >= limit or not response.get("Messages"):
                break
    return list(found.values())[:limit]


async def redrive(settings: Settings, limit: int, dry_run: bool) -> int:
    """Move DLQ records' original bodies back to their source queues, then delete them.

    A record that does not parse stays where it is (it is logged), so a replay never
    loses the evidence.
    """
    moved = 0
    async with open_clients(settings) as clients:
        dlq_url = await clients.queues.url(settings.dlq)
        while moved < limit:
            response = await clients.sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(10, limit - moved),
                WaitTimeSeconds=1,
                VisibilityTimeout=0 if dry_run else 30,
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for raw in messages:
                try:
                    record = FailureRecord.model_validate_json(raw.get("Body", ""))
                except ValueError:
                    log.warning("redrive.unparseable_record", sqs_message_id=raw["MessageId"])
                    continue
                moved += 1
                if dry_run:
                    print(f"{record.sqs_message_id} -> {record.source_queue}: {record.reason}")
                    continue
                target = await clients.queues.url(record.source_queue)
                await clients.sqs.send_message(QueueUrl=target, MessageBody=record.body)
                await clients.sqs.delete_message(
                    QueueUrl=dlq_url, ReceiptHandle=raw["ReceiptHandle"]
                )
            if dry_run:
                break
    return moved
