"""The outbound pipeline's I/O: attachments from S3, the SES call, status events to apps.

What an AWS error means for the message is `mailflow.errors.fate`'s decision; this module
names the operation and the contract's codes. The allowed (bucket, prefix) check of an
attachment happened during validation; here it is only read, streamed, and abandoned
mid-stream once it outgrows the size budget instead of being buffered whole.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.contracts.failure import FailureRecord
from mailflow.contracts.outbound import (
    EmailFailedEvent,
    EmailSentEvent,
    SkippedRecipient,
    event_id,
)
from mailflow.errors import PolicyRejected, aws_errors, describe
from mailflow.feedback.event import SEND_TOKEN_TAG
from mailflow.outbound.compose import LoadedAttachment, base64_size
from mailflow.outbound.config import OutboundSettings
from mailflow.outbound.validation import AttachmentPlan, Mailbox, ValidatedEmail
from mailflow.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("mailflow.outbound")

CHUNK_BYTES = 1024 * 1024
NOTICE_TTL_SECONDS = 3 * 24 * 3600  # a failed message does not come back after that
ATTACHMENT_CODES = {
    "object_not_found": "attachment_not_found",
    "access_denied": "attachment_unreadable",
}


def encoded_size(raw_bytes: int) -> int:
    """Bytes a part of `raw_bytes` takes in the message: base64 (4/3) in 76-char lines + CRLF.

    Exactly what `compose` writes for an attachment (the composer's own arithmetic). For
    a text body of `raw_bytes` in CRLF-terminated lines it is an upper bound: such a body
    goes as it is (7bit), or quoted-printable only when that is no longer than base64.
    """
    return base64_size(raw_bytes)


def _too_large(limit: int) -> PolicyRejected:
    return PolicyRejected(
        f"attachments exceed the message size limit of {limit} bytes (after base64 encoding)",
        code="message_too_large",
    )


async def attachment_sizes(s3: S3Client, plans: tuple[AttachmentPlan, ...]) -> list[int]:
    """Each attachment's size from a HEAD: the email's size is known before any download."""
    sizes: list[int] = []
    for plan in plans:
        with aws_errors(f"reading attachment s3://{plan.bucket}/{plan.key}", ATTACHMENT_CODES):
            head = await s3.head_object(Bucket=plan.bucket, Key=plan.key)
        sizes.append(int(head.get("ContentLength", 0)))
    return sizes


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
    where = f"attachment s3://{plan.bucket}/{plan.key}"
    with aws_errors(f"reading {where}", ATTACHMENT_CODES):
        response = await s3.get_object(Bucket=plan.bucket, Key=plan.key)
        body = response["Body"]
        try:
            # ContentLength first (no download at all), then the bytes as they arrive (an
            # object can be replaced between the header and the read).
            expected = int(response.get("ContentLength", 0))
            if encoded_size(expected) > room:
                raise _too_large(limit)
            # Each chunk is copied once, into a buffer of the announced size that becomes
            # the attachment's bytes (`_preallocated`); a list of chunks joined at the end
            # held every byte twice (20 MB for a 10 MB file).
            data = _preallocated(expected)
            async for chunk in body.iter_chunks(CHUNK_BYTES):
                if encoded_size(data.tell() + len(chunk)) > room:
                    raise _too_large(limit)
                data.write(chunk)
        finally:
            body.close()
    data.truncate()  # an object shorter than announced: drop the unwritten room
    return data.getvalue()


def _preallocated(size: int) -> io.BytesIO:
    """A buffer whose `getvalue()` is, once `size` bytes are written, that very buffer.

    `BytesIO` over a fresh `bytes` object writes into it in place while nothing else
    refers to it, and `getvalue()` returns it without a copy when it is exactly full
    (CPython's copy-on-write `BytesIO`). Writing fewer or more bytes is still exact
    (`truncate()`, growth), at the cost of the copy that was avoided.
    """
    return io.BytesIO(bytes(size))


def send_email_request(
    email: ValidatedEmail,
    raw: bytes,
    configuration_set: str | None,
    token: str,
    skip: set[str] | None = None,
) -> dict[str, Any]:
    """SESv2 SendEmail arguments: the envelope (Bcc only here), the raw MIME, the attempt's
    token as a message tag (SES returns it in every event about this email).

    `skip` (lower-cased addresses: suppressed, over the loop limit) leaves the envelope
    only: the headers still show every recipient the app addressed, as a person would
    have written them, but SES delivers only to the envelope.
    """
    skip = skip or set()

    def envelope(mailboxes: tuple[Mailbox, ...]) -> list[str]:
        return [m.address for m in mailboxes if m.address.lower() not in skip]

    request: dict[str, Any] = {
        "FromEmailAddress": email.sender.address,
        "Destination": {
            "ToAddresses": envelope(email.to),
            "CcAddresses": envelope(email.cc),
            "BccAddresses": envelope(email.bcc),
        },
        "Content": {"Raw": {"Data": raw}},
        "EmailTags": [{"Name": SEND_TOKEN_TAG, "Value": token}],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return request


def canary_request(
    email: ValidatedEmail, recipient: str, config: OutboundSettings
) -> dict[str, Any]:
    """A minimal email from the same (verified) sender, through the configuration set."""
    request: dict[str, Any] = {
        "FromEmailAddress": email.sender.address,
        "Destination": {"ToAddresses": [recipient]},
        "Content": {"Raw": {"Data": _canary_mime(email.sender.address, recipient)}},
        "EmailTags": [{"Name": "mailflow-canary", "Value": "1"}],
    }
    if config.configuration_set:
        request["ConfigurationSetName"] = config.configuration_set
    return request


def _canary_mime(sender: str, recipient: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: mailflow events canary\r\n"
        "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Sent to move SES's event stream forward; not for a person.\r\n"
    ).encode("ascii")


@dataclass
class StatusEvents:
    """Puts status events on an app's queue (the queue its inbound mail arrives on)."""

    clients: AwsClients
    settings: Settings
    table: Table

    async def sent(self, app: str, result: dict[str, str]) -> None:
        """`email.sent`, from the result stored with the claim (so a repeat says the same)."""
        correlation_id = result.get("correlationId", "")
        ses_message_id = result.get("sesMessageId", "")
        event = EmailSentEvent(
            event_id=event_id("email.sent", app, correlation_id, ses_message_id),
            correlation_id=correlation_id,
            source=app,
            ses_message_id=ses_message_id,
            message_id=result.get("messageId", ""),
            sent_at=datetime.fromisoformat(result["sentAt"])
            if "sentAt" in result
            else datetime.now(UTC),
            recipients=int(result.get("recipients", "0")),
            skipped=[SkippedRecipient.model_validate(s) for s in json.loads(result["skipped"])]
            if "skipped" in result
            else None,
        )
        await self._emit(app, event.type, event.to_wire())

    async def failed(
        self, app: str, correlation_id: str | None, record: FailureRecord, body: str
    ) -> None:
        """`email.failed`, with the failure record's code and reason, once per outcome.

        The same message failing the same way again (its delete was lost, and it came
        back) is the same outcome: a notice in the table keeps the app from hearing it
        twice; if the notice cannot be read or written, the event goes (same eventId).
        """
        digest = hashlib.sha256(body.encode()).hexdigest()
        identity = event_id("email.failed", app, correlation_id or "", record.error_code, digest)
        notice = keys.status_notice(identity)
        if await self._noticed(notice):
            log.info("outbound.failure_event_already_sent", event_id=identity)
            return
        event = EmailFailedEvent(
            event_id=identity,
            correlation_id=correlation_id,
            source=app,
            error_code=record.error_code,
            reason=record.reason,
            failed_at=datetime.now(UTC),
            retryable=record.retryable,
        )
        await self._emit(app, event.type, event.model_dump_json(by_alias=True))
        try:
            await self.table.put_marker(notice, NOTICE_TTL_SECONDS)
        except Exception as exc:
            log.warning("outbound.notice_not_recorded", error=describe(exc))

    async def feedback(self, app: str, event_type: str, body: str) -> None:
        """An event from SES's feedback (`email.bounced`, ...): repeats carry its eventId."""
        await self._emit(app, event_type, body)

    async def _noticed(self, notice: str) -> bool:
        try:
            return await self.table.exists(notice)
        except Exception as exc:
            log.warning("outbound.notice_unreadable", error=describe(exc))
            return False

    async def _emit(self, app: str, event_type: str, body: str) -> None:
        queue = self.settings.app_queue(app)
        with aws_errors(f"SendMessage {event_type} to {queue}"):
            url = await self.clients.queues.url(queue)
            await self.clients.outbox.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
            )
