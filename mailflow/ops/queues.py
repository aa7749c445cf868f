"""Operator tools: look into a queue (replaying the DLQ is `mailflow.ops.redrive`).

Not used by the worker itself.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.contracts.base import wire_time
from mailflow.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = structlog.get_logger("mailflow.devtools")


# How long peek holds what it has received, so that each message is received once per
# call; visibility is given back (set to 0) as soon as the look is over.
PEEK_HOLD_SECONDS = 30


def resolve_queue(settings: Settings, queue: str) -> str:
    """`inbound`, `dlq`, `app1`, `app:app1` or `app1-dlq` -> the queue; anything else as is."""
    roles = settings.all_queues()
    base, dlq = (queue[: -len("-dlq")], True) if queue.endswith("-dlq") else (queue, False)
    for key in (base, f"app:{base}"):
        if key in roles and not (dlq and key == "dlq"):
            return roles[key] + ("-dlq" if dlq else "")
    return queue


@dataclass
class Peek:
    """What one look at a queue found, and what that look cost."""

    queue: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    # The queue's redrive: after this many receives SQS moves a message to `dead_letters`.
    max_receives: int | None = None
    dead_letters: str | None = None
    dead_letter_count: int = 0
    # Messages whose visibility could not be given back: hidden until PEEK_HOLD_SECONDS pass.
    still_hidden: int = 0

    def at_limit(self) -> list[str]:
        """Ids of messages whose next receive, by anyone, moves them to the dead letters."""
        if self.max_receives is None:
            return []
        return [m["messageId"] for m in self.messages if m["receiveCount"] >= self.max_receives]


def _decode(body: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


def _shown(raw: MessageTypeDef) -> dict[str, Any]:
    system = raw.get("Attributes", {})
    sent = int(system.get("SentTimestamp", "0")) / 1000
    return {
        "messageId": raw["MessageId"],
        "receiveCount": int(system.get("ApproximateReceiveCount", "0")),
        "sentAt": wire_time(datetime.fromtimestamp(sent, UTC)),
        "messageAttributes": {
            name: value.get("StringValue", value.get("BinaryValue"))
            for name, value in raw.get("MessageAttributes", {}).items()
        },
        "body": _decode(raw.get("Body", "")),
    }


async def _redrive_of(clients: AwsClients, url: str, found: Peek) -> None:
    attrs = await clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = attrs.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return
    redrive_policy = json.loads(policy)
    found.max_receives = int(redrive_policy["maxReceiveCount"])
    found.dead_letters = str(redrive_policy["deadLetterTargetArn"]).rsplit(":", 1)[-1]
    with contextlib.suppress(ClientError):
        dlq_url = await clients.queues.url(found.dead_letters)
        found.dead_letter_count = await visible_count(clients, dlq_url)


async def visible_count(clients: AwsClients, url: str) -> int:
    """ApproximateNumberOfMessages: how many a scan of the queue can expect to see."""
    counts = await clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(counts["Attributes"]["ApproximateNumberOfMessages"])


async def give_back(clients: AwsClients, url: str, handles: list[str]) -> int:
    """Make what a look (peek, redrive) held visible again at once.

    Returns how many stay hidden: their hold lapses on its own, so nothing is lost.
    """
    hidden = 0
    for start in range(0, len(handles), 10):
        batch = handles[start : start + 10]
        try:
            response = await clients.sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(batch)
                ],
            )
            hidden += len(response.get("Failed", []))
        except (ClientError, BotoCoreError):
            hidden += len(batch)
    return hidden


async def peek(settings: Settings, queue: str, limit: int) -> Peek:
    """Show up to `limit` waiting messages, each received once, and give them back.

    SQS has no true peek: every look is a receive and counts toward the queue's
    maxReceiveCount. Holding each message for the length of the look (instead of
    receiving with visibility 0, which returns the same messages again and again) makes
    that cost exactly one receive per message shown. The queue's redrive is reported
    beside the counts, so an operator sees which message a further receive would move
    to its dead-letter queue.
    """
    async with open_clients(settings) as clients:
        url = await clients.queues.url(resolve_queue(settings, queue))
        found = Peek(queue=url.rstrip("/").rsplit("/", 1)[-1])
        await _redrive_of(clients, url, found)
        waiting = await visible_count(clients, url)
        handles: list[str] = []
        try:
            while len(found.messages) < limit:
                response = await clients.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, limit - len(found.messages)),
                    VisibilityTimeout=PEEK_HOLD_SECONDS,
                    # Long-poll while the queue's count says more are waiting; once
                    # that many are seen, one short poll picks up any it missed.
                    WaitTimeSeconds=1 if len(found.messages) < waiting else 0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                batch = response.get("Messages", [])
                if not batch:
                    break
                handles.extend(m["ReceiptHandle"] for m in batch)
                found.messages.extend(_shown(m) for m in batch)
        finally:
            with anyio.CancelScope(shield=True):
                found.still_hidden = await give_back(clients, url, handles)
    return found
