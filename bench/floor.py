"""The endpoint floor: the same AWS calls per email as the worker, and nothing else.

A bare asyncio loop (aioboto3, as the worker uses) reads N trivial messages from a queue
of its own with the worker's concurrency, and for each one makes the calls the worker
was measured to make per email: same operations, same counts (fractional averages are
spread over the emails so the totals match), trivial payloads (a 16-byte object, a
one-attribute item, a tiny raw email). No parsing, no JSON, no policy: what is left is
the endpoint's and the SDK's cost of the calls themselves. Its throughput is the most a
worker could reach against this endpoint on this machine with that call pattern; the
report gives the worker's throughput as a percentage of it.

Operations it does not know how to replay are listed as such (never silently dropped).
ReceiveMessage is not replayed from the plan: the loop receives like the consumer
engine (batches of up to 10, never more than the free slots), so its own count shows.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import anyio
from botocore.config import Config
from botocore.exceptions import ClientError

FLOOR_KEY = "benchfloor"
IN_QUEUE = "bench-floor-in"
OUT_QUEUE = "bench-floor-out"
BUCKET = "bench-floor"
TABLE = "bench-floor"
TINY_KEY = "tiny"
RAW = b"From: _app1@example.com\r\nTo: floor@example.net\r\nSubject: floor\r\n\r\nfloor\r\n"
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=50)
_SES_CONFIG = _CONFIG.merge(Config(retries={"total_max_attempts": 1, "mode": "standard"}))
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4", s3={"payload_signing_enabled": False}))


@dataclass
class FloorResult:
    """What the floor loop did: seconds of wall clock and CPU, and what it skipped."""

    emails: int
    seconds: float
    cpu_seconds: float
    skipped: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.emails / self.seconds if self.seconds else 0.0


def spread(average: float, index: int) -> int:
    """How many calls email `index` makes so that N emails make round(N * average)."""
    return math.floor(average * (index + 1) + 1e-9) - math.floor(average * index + 1e-9)


class Floor:
    """Holds the floor's clients and resources on one endpoint."""

    def __init__(self, clients: dict[str, Any], concurrency: int) -> None:
        self.c = clients
        self.concurrency = concurrency
        self.in_url = ""
        self.out_url = ""
        self.ops: dict[str, Callable[[int, int, str], Awaitable[Any]]] = {
            "sqs:SendMessage": self._send,
            "sqs:SendMessageBatch": self._send_batch,
            "sqs:DeleteMessage": self._delete,
            "sqs:DeleteMessageBatch": self._delete_batch,
            "sqs:ChangeMessageVisibility": self._visibility,
            "sqs:ChangeMessageVisibilityBatch": self._visibility_batch,
            "sqs:GetQueueAttributes": self._queue_attributes,
            "sqs:GetQueueUrl": lambda i, k, h: self.c["sqs"].get_queue_url(
                QueueName=self.in_url.rsplit("/", 1)[-1]
            ),
            "s3:GetObject": self._get_object,
            "s3:PutObject": lambda i, k, h: self.c["s3"].put_object(
                Bucket=BUCKET, Key=f"floor/{i}/{k}", Body=b"x" * 16
            ),
            "s3:HeadObject": lambda i, k, h: self.c["s3"].head_object(Bucket=BUCKET, Key=TINY_KEY),
            "s3:DeleteObject": lambda i, k, h: self.c["s3"].delete_object(
                Bucket=BUCKET, Key=f"floor/{i}/{k}"
            ),
            "dynamodb:PutItem": lambda i, k, h: self.c["dynamodb"].put_item(
                TableName=TABLE, Item=_item(i, k)
            ),
            "dynamodb:UpdateItem": self._update_item,
            "dynamodb:GetItem": lambda i, k, h: self.c["dynamodb"].get_item(
                TableName=TABLE, Key=_key(i, k)
            ),
            "dynamodb:DeleteItem": lambda i, k, h: self.c["dynamodb"].delete_item(
                TableName=TABLE, Key=_key(i, k)
            ),
            "dynamodb:BatchGetItem": lambda i, k, h: self.c["dynamodb"].batch_get_item(
                RequestItems={TABLE: {"Keys": [_key(i, k)]}}
            ),
            "dynamodb:BatchWriteItem": lambda i, k, h: self.c["dynamodb"].batch_write_item(
                RequestItems={TABLE: [{"PutRequest": {"Item": _item(i, k)}}]}
            ),
            "dynamodb:TransactWriteItems": lambda i, k, h: self.c["dynamodb"].transact_write_items(
                TransactItems=[{"Put": {"TableName": TABLE, "Item": _item(i, k)}}]
            ),
            "sesv2:SendEmail": lambda i, k, h: self.c["ses"].send_email(
                FromEmailAddress="_app1@example.com",
                Destination={"ToAddresses": ["floor@example.net"]},
                Content={"Raw": {"Data": RAW}},
            ),
            "sesv2:GetAccount": lambda i, k, h: self.c["ses"].get_account(),
        }

    async def setup(self, emails: int) -> None:
        """Create the floor's own queues, bucket, table and identity; queue N messages."""
        sqs, s3, ddb = self.c["sqs"], self.c["s3"], self.c["dynamodb"]
        run = uuid.uuid4().hex[:8]  # fresh queues: nothing left over from an earlier run
        self.in_url = (await sqs.create_queue(QueueName=f"{IN_QUEUE}-{run}"))["QueueUrl"]
        self.out_url = (await sqs.create_queue(QueueName=f"{OUT_QUEUE}-{run}"))["QueueUrl"]
        with contextlib.suppress(ClientError):  # exists from an earlier floor run
            await s3.create_bucket(Bucket=BUCKET)
        await s3.put_object(Bucket=BUCKET, Key=TINY_KEY, Body=b"x" * 16)
        with contextlib.suppress(ClientError):  # exists from an earlier floor run
            await ddb.create_table(
                TableName=TABLE,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        with contextlib.suppress(ClientError):  # provisioned already
            await self.c["ses"].create_email_identity(EmailIdentity="example.com")
        for start in range(0, emails, 10):
            entries = [
                {"Id": str(n), "MessageBody": f"floor {n}"}
                for n in range(start, min(emails, start + 10))
            ]
            await sqs.send_message_batch(QueueUrl=self.in_url, Entries=entries)

    async def run(self, plan: dict[str, float], emails: int) -> FloorResult:
        """Consume N messages, making `plan`'s calls for each; timed from the first receive."""
        replay = {op: n for op, n in plan.items() if op != "sqs:ReceiveMessage" and n > 0}
        skipped = sorted(op for op in replay if op not in self.ops)
        replay = {op: n for op, n in replay.items() if op in self.ops}
        slots = anyio.Semaphore(self.concurrency)
        counter = iter(range(emails))
        received = 0

        async def handle(index: int, handle: str) -> None:
            try:
                for op, average in replay.items():
                    for k in range(spread(average, index)):
                        await _tolerant(self.ops[op](index, k, handle))
            finally:
                slots.release()

        cpu, started = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            while received < emails:
                await slots.acquire()
                free = 1
                while free < 10 and slots.value > 0:
                    slots.acquire_nowait()
                    free += 1
                response = await self.c["sqs"].receive_message(
                    QueueUrl=self.in_url,
                    MaxNumberOfMessages=free,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=300,
                )
                messages = response.get("Messages", [])
                for message in messages:
                    tg.start_soon(handle, next(counter), message["ReceiptHandle"])
                received += len(messages)
                for _ in range(free - len(messages)):
                    slots.release()
        return FloorResult(
            emails, time.perf_counter() - started, time.process_time() - cpu, skipped
        )

    # -- calls that need more than one line ------------------------------------------------

    async def _send(self, i: int, k: int, handle: str) -> Any:
        return await self.c["sqs"].send_message(QueueUrl=self.out_url, MessageBody=f"o{i}")

    async def _send_batch(self, i: int, k: int, handle: str) -> Any:
        entries = [{"Id": "0", "MessageBody": f"o{i}"}]
        return await self.c["sqs"].send_message_batch(QueueUrl=self.out_url, Entries=entries)

    async def _delete(self, i: int, k: int, handle: str) -> Any:
        return await self.c["sqs"].delete_message(QueueUrl=self.in_url, ReceiptHandle=handle)

    async def _delete_batch(self, i: int, k: int, handle: str) -> Any:
        entries = [{"Id": "0", "ReceiptHandle": handle}]
        return await self.c["sqs"].delete_message_batch(QueueUrl=self.in_url, Entries=entries)

    async def _visibility(self, i: int, k: int, handle: str) -> Any:
        return await self.c["sqs"].change_message_visibility(
            QueueUrl=self.in_url, ReceiptHandle=handle, VisibilityTimeout=300
        )

    async def _visibility_batch(self, i: int, k: int, handle: str) -> Any:
        entries = [{"Id": "0", "ReceiptHandle": handle, "VisibilityTimeout": 300}]
        return await self.c["sqs"].change_message_visibility_batch(
            QueueUrl=self.in_url, Entries=entries
        )

    async def _queue_attributes(self, i: int, k: int, handle: str) -> Any:
        return await self.c["sqs"].get_queue_attributes(
            QueueUrl=self.in_url, AttributeNames=["ApproximateNumberOfMessages"]
        )

    async def _get_object(self, i: int, k: int, handle: str) -> Any:
        response = await self.c["s3"].get_object(Bucket=BUCKET, Key=TINY_KEY)
        async with response["Body"] as body:
            return await body.read()

    async def _update_item(self, i: int, k: int, handle: str) -> Any:
        return await self.c["dynamodb"].update_item(
            TableName=TABLE,
            Key=_key(i, k),
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"N": str(i)}},
        )


def _key(i: int, k: int) -> dict[str, Any]:
    return {"pk": {"S": f"floor#{i}#{k}"}}


def _item(i: int, k: int) -> dict[str, Any]:
    return {**_key(i, k), "v": {"N": str(i)}}


async def _tolerant(call: Awaitable[Any]) -> None:
    """An error answer is still a call the endpoint served (GetAccount is a 404 on moto)."""
    with contextlib.suppress(ClientError):
        await call


async def run_floor(
    endpoint: str,
    plan: dict[str, float],
    emails: int,
    concurrency: int,
    on_ready: Callable[[], object] = lambda: None,
) -> FloorResult:
    """Set up the floor's resources on `endpoint` and run it once (its own access key).

    `on_ready` runs between the set-up and the timed run (the caller snapshots counts).
    """
    session = aioboto3.Session(
        aws_access_key_id=FLOOR_KEY,
        aws_secret_access_key="bench",  # noqa: S106  (moto checks nothing)
        region_name="us-east-1",
    )
    clients: dict[str, Any] = {}
    async with (
        session.client("sqs", endpoint_url=endpoint, config=_CONFIG) as clients["sqs"],
        session.client("s3", endpoint_url=endpoint, config=_S3_CONFIG) as clients["s3"],
        session.client("dynamodb", endpoint_url=endpoint, config=_CONFIG) as clients["dynamodb"],
        session.client("sesv2", endpoint_url=endpoint, config=_SES_CONFIG) as clients["ses"],
    ):
        floor = Floor(clients, concurrency)
        await floor.setup(emails)
        await anyio.to_thread.run_sync(on_ready)
        return await floor.run(plan, emails)
