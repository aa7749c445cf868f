"""Fetch outbound attachments from S3: streamed, with the size budget checked as bytes arrive.

The allowed (bucket, prefix) check happened during validation; this module only reads.
An object that grows past the budget is abandoned mid-stream instead of being buffered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mailflow.aws import error_code
from mailflow.errors import PermanentError, PolicyRejected
from mailflow.outbound.compose import LoadedAttachment
from mailflow.outbound.validation import AttachmentPlan

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

CHUNK_BYTES = 1024 * 1024
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden"})


def encoded_size(raw_bytes: int) -> int:
    """Bytes a part of `raw_bytes` takes in the message: base64 (4/3) in 76-char lines + CRLF."""
    b64 = -(-raw_bytes // 3) * 4
    return b64 + -(-b64 // 76) * 2


def _too_large(limit: int) -> PolicyRejected:
    return PolicyRejected(
        f"attachments exceed the message size limit of {limit} bytes (after base64 encoding)",
        code="message_too_large",
    )


async def fetch_attachments(
    s3: S3Client, plans: tuple[AttachmentPlan, ...], *, budget_bytes: int
) -> list[LoadedAttachment]:
    """Read every attachment; `budget_bytes` is what the encoded parts may use in total."""
    loaded: list[LoadedAttachment] = []
    used = 0
    for plan in plans:
        data = await _fetch_one(s3, plan, budget_bytes - used, budget_bytes)
        used += encoded_size(len(data))
        loaded.append(LoadedAttachment(plan.filename, plan.content_type, data))
    return loaded


async def _fetch_one(s3: S3Client, plan: AttachmentPlan, room: int, limit: int) -> bytes:
    try:
        response = await s3.get_object(Bucket=plan.bucket, Key=plan.key)
    except ClientError as exc:
        code = error_code(exc)
        if code in _MISSING:
            raise PermanentError(
                f"attachment s3://{plan.bucket}/{plan.key} does not exist",
                code="attachment_not_found",
            ) from exc
        if code in _DENIED:
            raise PermanentError(
                f"attachment s3://{plan.bucket}/{plan.key} is not readable by mailflow",
                code="attachment_unreadable",
            ) from exc
        raise
    body = response["Body"]
    try:
        # ContentLength first (no download at all), then the bytes as they arrive (an
        # object can be replaced between the header and the read).
        if encoded_size(int(response.get("ContentLength", 0))) > room:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in body.iter_chunks(CHUNK_BYTES):
            size += len(chunk)
            if encoded_size(size) > room:
                raise _too_large(limit)
            chunks.append(chunk)
    finally:
        body.close()
    return b"".join(chunks)
