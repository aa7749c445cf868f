"""S3 and SQS I/O of the inbound pipeline: the thin shell around the pure core.

What an AWS error means for the message is decided by `mailflow.errors.fate`; this module
only names the operation and, for a missing raw object, the contract's code.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import anyio

from mailflow.aws.clients import AwsClients
from mailflow.engine.budget import ByteBudget
from mailflow.engine.memory import release_free_memory
from mailflow.errors import PolicyRejected, aws_errors
from mailflow.inbound.pointer import DEFAULT_MAX_MESSAGE_SIZE, needs_offload, pointer

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageAttributeValueTypeDef

_CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024
RAW_EMAIL_CODES = {"object_not_found": "raw_email_missing"}


@asynccontextmanager
async def download_raw(
    clients: AwsClients, bucket: str, key: str, max_bytes: int, budget: ByteBudget
) -> AsyncIterator[IO[bytes]]:
    """Stream the raw email into memory (up to 8 MB) or else a temporary file on disk.

    The email's size is held in the byte budget for as long as the block runs (the
    caller parses and delivers inside it). GetObject's answer tells the size; when the
    budget has no room, the stream is closed while waiting and opened again after, so
    no connection idles. The size limit is checked against Content-Length first and
    again while reading. Writes past the in-memory part go through a worker thread:
    disk I/O never blocks the event loop. A large email is a real file so that the
    parsed email can read its large parts back from it instead of holding them in
    memory (see `mailflow.inbound.parse.parse_file`).
    """
    where = f"s3://{bucket}/{key}"
    response = await _get_raw(clients, bucket, key)
    length = int(response.get("ContentLength") or 0)
    if length > max_bytes:
        response["Body"].close()
        raise _too_large(length, max_bytes)
    if not budget.try_take(length):
        response["Body"].close()
        await budget.take(length)
        try:
            response = await _get_raw(clients, bucket, key)
        except BaseException:
            await budget.give(length)
            raise
    try:
        async with _spooled(response["Body"], where, max_bytes, length) as spool:
            yield spool
    finally:
        await budget.give(length)
        if length > SPOOL_IN_MEMORY:  # what a large email freed goes back to the system
            release_free_memory()


async def _get_raw(clients: AwsClients, bucket: str, key: str) -> Any:
    with aws_errors(f"GetObject s3://{bucket}/{key}", RAW_EMAIL_CODES):
        return await clients.s3.get_object(Bucket=bucket, Key=key)


@asynccontextmanager
async def _spooled(body: Any, where: str, max_bytes: int, length: int) -> AsyncIterator[IO[bytes]]:
    """The body in a BytesIO, or in a temporary file when it is (or turns out) larger
    than SPOOL_IN_MEMORY; the file is written from a worker thread."""
    # Closed in the `finally` below: its life spans the `yield`. Made inside the error
    # context, so that a task without a usable temporary directory says where it was.
    spool: IO[bytes] | None = None
    try:
        try:
            total = 0
            with aws_errors(f"reading {where}", RAW_EMAIL_CODES):
                spool = (
                    io.BytesIO()
                    if length <= SPOOL_IN_MEMORY
                    else await anyio.to_thread.run_sync(tempfile.TemporaryFile)
                )
                while chunk := await body.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise _too_large(total, max_bytes)
                    if isinstance(spool, io.BytesIO) and total > SPOOL_IN_MEMORY:
                        spool = await anyio.to_thread.run_sync(_to_file, spool)
                    if isinstance(spool, io.BytesIO):
                        spool.write(chunk)
                    else:
                        await anyio.to_thread.run_sync(spool.write, chunk)
        finally:
            body.close()
        spool.seek(0)
        yield spool
    finally:
        if spool is not None:
            spool.close()


def _to_file(memory: io.BytesIO) -> IO[bytes]:
    """A temporary file holding what `memory` held (a body longer than announced)."""
    file = tempfile.TemporaryFile()  # noqa: SIM115  (returned open; the caller closes it)
    try:
        with memory.getbuffer() as view:
            file.write(view)
    except BaseException:
        file.close()
        raise
    memory.close()
    return file


def _too_large(size: int, limit: int) -> PolicyRejected:
    return PolicyRejected(
        f"email is {size}+ bytes; MAILFLOW_INBOUND__MAX_EMAIL_BYTES is {limit}",
        code="email_too_large",
    )


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    presigned_url: str
    expires_at: datetime


async def store_attachment(
    clients: AwsClients,
    *,
    bucket: str,
    key: str,
    data: bytes,
    content_type: str,
    filename: str,
    original_filename: str | None,
    ttl_seconds: int,
) -> StoredObject:
    """PutObject with the real type and name, then a presigned GET URL.

    S3 user metadata must be ASCII, so the original name is percent-encoded there and
    in an RFC 6266 Content-Disposition, which browsers honour on the presigned URL.
    """
    quoted = quote(filename, safe="")
    with aws_errors(f"PutObject s3://{bucket}/{key}"):
        await clients.s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ContentDisposition=f"attachment; filename*=UTF-8''{quoted}",
            Metadata={
                "original-filename": quote(original_filename or filename, safe=""),
                "filename": quoted,
            },
        )
        url = await clients.s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_seconds
        )
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
    return StoredObject(bucket, key, url, expires)


class QueueSender:
    """Sends app messages, offloading to S3 in the extended-client format when too big."""

    def __init__(self, clients: AwsClients, payload_bucket: str) -> None:
        self.clients = clients
        self.payload_bucket = payload_bucket
        self._max_sizes: dict[str, int] = {}

    async def max_size(self, queue_url: str) -> int:
        """The queue's MaximumMessageSize, asked once per queue."""
        if queue_url not in self._max_sizes:
            with aws_errors(f"GetQueueAttributes {queue_url}"):
                response = await self.clients.sqs.get_queue_attributes(
                    QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"]
                )
            value = response.get("Attributes", {}).get("MaximumMessageSize")
            self._max_sizes[queue_url] = int(value) if value else DEFAULT_MAX_MESSAGE_SIZE
        return self._max_sizes[queue_url]

    async def send(
        self, queue: str, body: str, *, payload_key: str, group: str, dedup_id: str
    ) -> bool:
        """Send `body` (or a pointer to it); True when it was offloaded to S3."""
        queue_url = await self.clients.queues.url(queue)
        attributes: dict[str, MessageAttributeValueTypeDef] = {}
        offloaded = needs_offload(body, {}, await self.max_size(queue_url))
        if offloaded:
            await self._put_payload(payload_key, body)
            body, pointer_attributes = pointer(self.payload_bucket, payload_key, body)
            attributes.update(pointer_attributes)
        kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        if queue_url.endswith(".fifo"):
            kwargs["MessageGroupId"] = group
            kwargs["MessageDeduplicationId"] = dedup_id
        with aws_errors(f"SendMessage {queue}"):
            await self.clients.outbox.send_message(**kwargs)
        return offloaded

    async def _put_payload(self, key: str, body: str) -> None:
        with aws_errors(f"PutObject s3://{self.payload_bucket}/{key}"):
            await self.clients.s3.put_object(
                Bucket=self.payload_bucket,
                Key=key,
                Body=body.encode("utf-8"),
                ContentType="application/json",
            )
