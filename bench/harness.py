"""The harness's side of the endpoint: putting work in, watching outputs, reconciling.

It plays SES and the apps: stores raw mail and sends SES's notifications (with
`mailflow.ops.inject`, the same code `mailflow inject` runs, from this checkout), puts
apps' outbound JSON on the outbound queue, and reads what the worker wrote to the app's
queue. It calls AWS with an access key of its own, so the endpoint's call counts tell
its calls from the worker's.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aioboto3
import anyio
from botocore.config import Config

from bench import corpus
from bench.procs import HARNESS_KEY, SECRET

Direction = Literal["inbound", "outbound"]
INBOUND_QUEUE = "mailflow-inbound"
OUTBOUND_QUEUE = "mailflow-outbound"
APP_QUEUE = "mailflow-app1"
DLQ = "mailflow-dlq"
RAW_BUCKET = "mailflow-raw"
ATTACHMENTS_BUCKET = "mailflow-attachments"
_BATCH_BYTES = 200_000  # SendMessageBatch takes 256 KiB in all
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=20, read_timeout=120
)


@dataclass
class Load:
    """N inputs ready to go (raw mail already in S3): bodies for the input queue, and the
    key each one's output will carry (SES message id, or correlationId)."""

    direction: Direction
    bodies: list[str]
    keys: list[str]

    @property
    def queue(self) -> str:
        return INBOUND_QUEUE if self.direction == "inbound" else OUTBOUND_QUEUE


@dataclass
class Reconciled:
    """Every input against the outputs seen: each must have produced exactly one."""

    expected: int
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    failed: int = 0
    unexpected: int = 0
    dlq: int = 0
    failure_codes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.failed or self.unexpected or self.dlq)

    def text(self) -> str:
        extra = f", failed {self.failed}" if self.failed else ""
        extra += f", DLQ {self.dlq}" if self.dlq else ""
        extra += f" ({', '.join(sorted(set(self.failure_codes)))})" if self.failure_codes else ""
        return f"{self.lost} / {self.duplicated}{extra}"


class Harness:
    """The harness's aioboto3 clients and what it does with them."""

    def __init__(self, endpoint_url: str, sqs: Any, s3: Any) -> None:
        self.endpoint_url = endpoint_url
        self.sqs = sqs
        self.s3 = s3
        self._urls: dict[str, str] = {}
        self.seq = 0

    def forget_urls(self) -> None:
        """After an endpoint reset the queues are new: their URLs are looked up again."""
        self._urls.clear()

    async def url(self, queue: str) -> str:
        if queue not in self._urls:
            self._urls[queue] = (await self.sqs.get_queue_url(QueueName=queue))["QueueUrl"]
        return self._urls[queue]

    async def depth(self, queue: str) -> tuple[int, int]:
        """(visible, in flight + delayed) messages of a queue (exact on moto)."""
        attrs = await self.sqs.get_queue_attributes(
            QueueUrl=await self.url(queue),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
        values = attrs["Attributes"]
        hidden = int(values["ApproximateNumberOfMessagesNotVisible"]) + int(
            values["ApproximateNumberOfMessagesDelayed"]
        )
        return int(values["ApproximateNumberOfMessages"]), hidden

    async def send_bodies(self, queue: str, bodies: list[str]) -> None:
        """All bodies onto the queue, batched (10 at most, 200 KB at most per call)."""
        url = await self.url(queue)
        batch: list[str] = []
        size = 0
        for body in bodies:
            if batch and (len(batch) == 10 or size + len(body) > _BATCH_BYTES):
                await self._send_batch(url, batch)
                batch, size = [], 0
            batch.append(body)
            size += len(body)
        if batch:
            await self._send_batch(url, batch)

    async def _send_batch(self, url: str, bodies: list[str]) -> None:
        entries = [{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies)]
        response = await self.sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SendMessageBatch refused entries: {response['Failed']}")

    async def send_one(self, queue: str, body: str) -> None:
        await self.sqs.send_message(QueueUrl=await self.url(queue), MessageBody=body)

    # -- inputs -------------------------------------------------------------------------

    async def prepare_inbound(self, raw: bytes, count: int) -> Load:
        """Store `count` numbered copies as SES would; their notifications are not sent yet."""
        from mailflow.ops.inject import new_ses_message_id, notification_body, ses_stored_email
        from mailflow.settings import load_settings

        settings = load_settings(
            domains=["example.com"],
            apps=["app1", "app2"],
            aws_endpoint_url=self.endpoint_url,
            check_resources=False,
        )
        bodies, keys = [], []
        sender = "dana@sender.example.net"
        recipients = [corpus.APP_ADDRESS]
        verdicts = {name: "PASS" for name in ("spam", "virus", "spf", "dkim", "dmarc")}
        for _ in range(count):
            self.seq += 1
            ses_id = new_ses_message_id()
            now = datetime.now(UTC)
            stored = ses_stored_email(
                corpus.numbered(raw, self.seq),
                ses_message_id=ses_id,
                recipients=recipients,
                sender=sender,
                verdicts=verdicts,
                received_at=now,
                region=settings.aws_region,
            )
            key = f"inbound/{ses_id}"
            await self.s3.put_object(Bucket=settings.raw_bucket, Key=key, Body=stored)
            bodies.append(
                notification_body(
                    settings,
                    "sns",
                    key=key,
                    ses_id=ses_id,
                    recipients=recipients,
                    sender=sender,
                    stored=stored,
                    verdicts=verdicts,
                    now=now,
                )
            )
            keys.append(ses_id)
            del stored
        return Load("inbound", bodies, keys)

    async def prepare_outbound(self, case: corpus.OutboundCase, count: int, run: str) -> Load:
        """Store the case's attachments (once) and build `count` messages referencing them."""
        for index, attachment in enumerate(case.attachments):
            await self.s3.put_object(
                Bucket=ATTACHMENTS_BUCKET,
                Key=corpus.attachment_key(case, index),
                Body=attachment.data,
                ContentType=attachment.content_type,
            )
        bodies, keys = [], []
        for _ in range(count):
            self.seq += 1
            correlation_id = f"{run}-{case.name}-{self.seq}"
            bodies.append(corpus.outbound_json(case, correlation_id, ATTACHMENTS_BUCKET, self.seq))
            keys.append(correlation_id)
        return Load("outbound", bodies, keys)

    # -- outputs ------------------------------------------------------------------------

    async def receive_all(self, queue: str) -> list[dict[str, Any]]:
        """Receive and delete everything visible on a queue, decoded (S3 pointers followed).

        Called once the outputs are all there (or never will be): a short receive that
        finds nothing ends it (moto answers from the whole queue, not a sample).
        """
        url = await self.url(queue)
        found: list[dict[str, Any]] = []
        while True:
            response = await self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=600
            )
            messages = response.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(await self.decode(message["Body"]))
            entries = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ]
            await self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)

    async def decode(self, body: str) -> dict[str, Any]:
        """An app message; an SQS Extended Client pointer is read from S3."""
        value = json.loads(body)
        if isinstance(value, list) and len(value) == 2 and "s3Key" in value[1]:
            response = await self.s3.get_object(
                Bucket=value[1]["s3BucketName"], Key=value[1]["s3Key"]
            )
            async with response["Body"] as stream:
                value = json.loads(await stream.read())
        return value if isinstance(value, dict) else {"unreadable": body[:200]}

    async def reconcile(self, load: Load) -> Reconciled:
        """Drain the app queue and the DLQ; count what each input produced."""
        outputs = await self.receive_all(APP_QUEUE)
        result = Reconciled(expected=len(load.keys))
        seen: Counter[str] = Counter()
        wanted = set(load.keys)
        for output in outputs:
            key, failed, code = output_key(output)
            if failed:
                result.failed += 1
                result.failure_codes.append(code)
            if key in wanted:
                seen[key] += 1
            else:
                result.unexpected += 1
        result.delivered = len(seen)
        result.lost = len(wanted) - len(seen)
        result.duplicated = sum(n - 1 for n in seen.values())
        result.dlq = sum(await self.depth(DLQ))
        return result

    # Polling is the point here: the harness watches another process through the endpoint.
    async def wait_outputs(self, count: int, poll: float, stall: float) -> bool:
        """Until the app queue shows `count` messages (True), or `stall` seconds pass
        without a new one (False: the rest is not coming)."""
        seen, progress = -1, time.monotonic()
        while True:
            visible = (await self.depth(APP_QUEUE))[0]
            if visible >= count:
                return True
            if visible != seen:
                seen, progress = visible, time.monotonic()
            elif time.monotonic() - progress > stall:
                return False
            await anyio.sleep(poll)

    async def wait_empty(self, queue: str, poll: float, limit: float) -> bool:
        """Until nothing is left on `queue`, visible, in flight or delayed (False: `limit`)."""
        with anyio.move_on_after(limit):
            while sum(await self.depth(queue)):  # noqa: ASYNC110
                await anyio.sleep(poll)
            return True
        return False


def output_key(output: dict[str, Any]) -> tuple[str, bool, str]:
    """(the input it answers, whether it is a failure, the failure code)."""
    kind = output.get("type", "")
    if kind == "email.received":
        return str(output.get("metadata", {}).get("sesMessageId", "")), False, ""
    if kind == "email.failed":
        return str(output.get("correlationId", "")), True, str(output.get("errorCode", ""))
    return str(output.get("correlationId", "")), False, ""


@asynccontextmanager
async def harness(endpoint_url: str) -> AsyncIterator[Harness]:
    session = aioboto3.Session(
        aws_access_key_id=HARNESS_KEY, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    s3_config = _CONFIG.merge(Config(signature_version="s3v4"))
    async with (
        session.client("sqs", endpoint_url=endpoint_url, config=_CONFIG) as sqs,
        session.client("s3", endpoint_url=endpoint_url, config=s3_config) as s3,
    ):
        yield Harness(endpoint_url, sqs, s3)
