"""The inbound pipeline: notification -> raw email -> parse -> policy -> one message per app.

    decode notification ─ fetch raw (streamed, size-capped) ─ parse + sanitize (a thread)
      ─ verdict + sender policy ─ route by envelope ─ rate limit (optional)
      ─ for each destination: claim ─ store attachments ─ send JSON (or pointer) ─ complete

Exactly once per app: each (SES message, destination) is claimed in the table before its
side effects and marked complete after; a redelivered notification finds `completed`
and sends nothing. Destinations are independent: when one fails the others still go
out, and the retry only redoes what is missing. A crash between the send and the
completion can repeat one message; its `messageId` is the same, so apps can deduplicate
(at-least-once is the floor SQS gives anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import anyio
import structlog

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.contracts.failure import FailureRecord
from mailflow.contracts.inbound import Attachment, EmailBody, RawEmailLocation, Verdicts
from mailflow.engine.budget import ByteBudget
from mailflow.engine.cpu import run_cpu
from mailflow.engine.message import BackgroundJob, Direction, Outcome, SqsMessage
from mailflow.errors import (
    MailflowError,
    PolicyRejected,
    RetryableError,
    ValidationFailed,
    as_mailflow_error,
    aws_errors,
)
from mailflow.inbound import attachments, message, metrics, policy
from mailflow.inbound.io import QueueSender, download_raw, store_attachment
from mailflow.inbound.notification import Notification, check_source, decode
from mailflow.inbound.parse import ParsedAttachment, ParsedEmail, parse_file
from mailflow.inbound.routing import DEFAULT_ROUTE, Destination, RoutingPlan, route
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.inbound")

_RATE_WINDOW_TTL_SECONDS = 2 * 3600
# How long the outbound side can recognise a reply to automated mail (mail loop safety).
_AUTOMATED_MARKER_TTL_SECONDS = 7 * 24 * 3600
# DynamoDB refuses partition keys over 2 KiB; a Message-ID that long is no real one.
_MAX_MARKER_KEY_BYTES = 1024


@dataclass(frozen=True)
class Received:
    """One email with everything every destination shares, computed once."""

    notification: Notification
    parsed: ParsedEmail
    body: EmailBody
    verdicts: Verdicts
    recipients: tuple[str, ...]
    recipient_source: str

    @property
    def raw(self) -> RawEmailLocation:
        return RawEmailLocation(s3_bucket=self.notification.bucket, s3_key=self.notification.key)


class InboundPipeline:
    """Plugged into the consumer engine for the inbound notifications queue."""

    direction: Direction = "inbound"

    def __init__(
        self, settings: Settings, clients: AwsClients, budget: ByteBudget | None = None
    ) -> None:
        self.settings = settings
        self.config = settings.inbound
        self.clients = clients
        self.budget = budget or ByteBudget(settings.max_in_flight_bytes)
        self.table = Table(clients.dynamodb, settings.idempotency_table)
        self.sender = QueueSender(clients, settings.attachments_bucket)

    def background_jobs(self) -> Sequence[BackgroundJob]:
        return ()

    async def handle(self, message: SqsMessage) -> Outcome:
        notification = decode(message.body)
        if notification is None:
            log.info("inbound.s3_test_event")
            metrics.EMAILS.labels("test_event").inc()
            return Outcome()
        structlog.contextvars.bind_contextvars(ses_message_id=notification.ses_message_id)
        check_source(notification, self.settings.raw_bucket, self.config.raw_key_prefix)
        try:
            # The email's bytes are held in the budget until every app has its message.
            async with download_raw(
                self.clients,
                notification.bucket,
                notification.key,
                self.config.max_email_bytes,
                self.budget,
            ) as stream:
                received = await self._receive(notification, stream)
                plan = route(received.recipients, self.settings)
                await self._deliver_all(received, plan)
        except MailflowError as exc:
            # Lands in the failure record: which email, without opening the notification.
            exc.details.setdefault("sesMessageId", notification.ses_message_id)
            if isinstance(exc, PolicyRejected):
                metrics.EMAILS.labels("rejected").inc()
                metrics.REJECTED.labels(exc.code).inc()
            raise
        # The per-app metric label: one destination names it; several or none do not.
        only = next(iter(plan.destinations)) if len(plan.destinations) == 1 else None
        return Outcome(app=only)

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        """Nothing to tell: a rejected email reaches no app; the failure record is the trace."""

    # -- steps ----------------------------------------------------------------------------

    async def _receive(self, notification: Notification, stream: IO[bytes]) -> Received:
        # Parsing and sanitizing are the CPU-heavy part of a big email: off the loop.
        parsed, body = await anyio.to_thread.run_sync(self._parse, stream)
        if notification.recipients is not None:
            recipients, source = notification.recipients, "envelope"
            verdicts = notification.verdicts
        else:
            recipients, source = _recipients_from_headers(parsed)
            verdicts = parsed.ses_verdicts
        policy.check_verdicts(verdicts, self.config)
        from_address = parsed.from_.address if parsed.from_ else None
        policy.check_sender(from_address, notification.envelope_sender, self.config)
        if parsed.charset_fallbacks:
            metrics.CHARSET_FALLBACKS.inc(len(parsed.charset_fallbacks))
        return Received(notification, parsed, body, verdicts, tuple(recipients), source)

    def _parse(self, stream: IO[bytes]) -> tuple[ParsedEmail, EmailBody]:
        parsed = parse_file(stream)
        return parsed, message.readable_body(parsed, sanitize=self.config.sanitize_html)

    async def _deliver_all(self, received: Received, plan: RoutingPlan) -> None:
        ses_id = received.notification.ses_message_id
        if not plan.destinations and not plan.rejected:
            log.info("inbound.ignored", ses_message_id=ses_id, recipients=len(plan.ignored))
            metrics.EMAILS.labels("ignored").inc()
            return
        if plan.destinations and self.config.rate_limit_per_hour:
            await self._rate_limit(received)
        if plan.destinations:
            await self._remember_automated(received.parsed)
        failures: list[MailflowError] = []
        for destination in plan.destinations.values():
            try:
                await self._deliver(received, destination)
            except Exception as raised:
                exc = as_mailflow_error(raised, f"delivering to {destination.key}")
                exc.app = exc.app or _app_of(destination)
                log.warning("inbound.delivery_failed", app=destination.key, code=exc.code)
                failures.append(exc)
        if failures:
            # Retryable first: the retry redoes only the destinations not yet completed.
            raise next((f for f in failures if f.retryable), failures[0])
        if plan.rejected:
            # The addresses go to the failure record's details, not into the message.
            raise PolicyRejected(
                f"{len(plan.rejected)} recipient(s) name no configured app"
                " (MAILFLOW_INBOUND__UNKNOWN_APP=reject)",
                code="unknown_app",
                details={"rejected": plan.rejected},
            )
        metrics.EMAILS.labels("delivered").inc()

    async def _rate_limit(self, received: Received) -> None:
        parsed = received.parsed
        sender = (parsed.from_.address if parsed.from_ else None) or (
            received.notification.envelope_sender or "<>"
        )
        limit = self.config.rate_limit_per_hour
        counted = await self.table.count_in_window(
            keys.sender_window(sender, datetime.now(UTC)),
            received.notification.ses_message_id,
            limit=limit,
            ttl_seconds=_RATE_WINDOW_TTL_SECONDS,
        )
        if not counted:
            raise PolicyRejected(f"sender exceeded {limit} emails per hour", code="rate_limited")

    async def _remember_automated(self, parsed: ParsedEmail) -> None:
        """Mark an automated email (once per email, before any app has it): its Message-ID,
        so that the outbound side refuses an automatic reply to it, and its senders (From,
        Reply-To), so that automatic mail back to them counts toward the loop limit. Two
        auto-responders answering each other are stopped either way.

        A failed write fails the email for a retry: an app could otherwise answer
        automatically before the markers exist.
        """
        if not parsed.is_auto_reply:
            return
        senders = [a.address for a in (parsed.from_, *parsed.reply_to) if a and a.address]
        markers = [keys.automated_sender(a) for a in senders]
        if parsed.message_id:
            markers.append(keys.automated_message(parsed.message_id))
        fitting = [k for k in markers if len(k.encode()) <= _MAX_MARKER_KEY_BYTES]
        if len(fitting) < len(markers):
            log.warning("inbound.automated_marker_skipped", reason="key too long")
        if fitting:
            with aws_errors("BatchWriteItem automated-mail markers"):
                await self.table.put_markers(fitting, ttl_seconds=_AUTOMATED_MARKER_TTL_SECONDS)

    async def _deliver(self, received: Received, destination: Destination) -> None:
        ses_id = received.notification.ses_message_id
        key = keys.inbound_delivery(ses_id, destination.key)
        raw = received.raw
        claim = await self.table.claim(
            key,
            payload_hash=hashlib.sha256(f"{raw.s3_bucket}/{raw.s3_key}".encode()).hexdigest(),
            lease_seconds=self.settings.visibility_timeout_seconds,
            ttl_seconds=self.config.idempotency_ttl_seconds,
        )
        if claim.status == "completed":
            metrics.DELIVERIES.labels(destination.key, "duplicate").inc()
            log.info("inbound.duplicate", app=destination.key, ses_message_id=ses_id)
            return
        if claim.status == "in_progress":
            raise RetryableError("another worker is delivering this email", code="in_progress")
        if claim.status == "mismatch":
            raise ValidationFailed(
                f"SES message id {ses_id} was already seen with a different raw email",
                code="idempotency_mismatch",
            )
        try:
            message_id = await self._send(received, destination)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(key)
            raise
        await self.table.complete(key, {"messageId": message_id})

    async def _release(self, key: str) -> None:
        try:
            await self.table.release(key)
        except Exception:  # the lease expires on its own; the original error matters more
            log.warning("inbound.release_failed", key=key, exc_info=True)

    async def _send(self, received: Received, destination: Destination) -> str:
        stored = await self._store_attachments(received, destination)
        notification = received.notification

        def build() -> tuple[str, str]:
            built = message.build_message(
                parsed=received.parsed,
                body=received.body,
                destination=destination,
                ses_message_id=notification.ses_message_id,
                raw=received.raw,
                received_at=notification.received_at,
                verdicts=received.verdicts,
                attachments=stored,
                recipient_source=received.recipient_source,
                now=datetime.now(UTC),
            )
            return built.message_id, built.to_wire()

        body_size = len(received.body.text or "") + len(received.body.html or "")
        message_id, wire = await run_cpu(build, size=body_size)
        queue = (
            self.settings.default_queue
            if destination.key == DEFAULT_ROUTE
            else self.settings.app_queue(destination.key)
        )
        offloaded = await self.sender.send(
            queue,
            wire,
            payload_key=message.payload_key(
                self.config.payload_prefix,
                destination.key,
                notification.received_at,
                message_id,
            ),
            group=destination.key,
            dedup_id=message_id,
        )
        metrics.DELIVERIES.labels(destination.key, "offloaded" if offloaded else "sent").inc()
        log.info(
            "inbound.delivered",
            app=destination.key,
            message_id=message_id,
            ses_message_id=notification.ses_message_id,
            attachments=len(stored),
            offloaded=offloaded,
        )
        return message_id

    async def _store_attachments(
        self, received: Received, destination: Destination
    ) -> list[Attachment]:
        names = attachments.attachment_names(received.parsed)
        stored: list[Attachment] = []
        for index, (part, name) in enumerate(zip(received.parsed.attachments, names, strict=True)):
            attachment = await self._store_one(received, destination, index, part, name)
            metrics.ATTACHMENTS.labels(attachment.status).inc()
            stored.append(attachment)
        return stored

    async def _store_one(
        self,
        received: Received,
        destination: Destination,
        index: int,
        part: ParsedAttachment,
        filename: str,
    ) -> Attachment:
        received_at = received.notification.received_at
        identifier = message.attachment_id(
            received.notification.ses_message_id, destination.key, index
        )
        base = Attachment(
            id=identifier,
            filename=filename,
            original_filename=part.filename,
            content_type=part.content_type,
            size=0,
            checksum="",
            content_id=part.content_id,
            disposition=part.disposition,
        )
        try:
            found = await anyio.to_thread.run_sync(attachments.inspect, part, filename, self.config)
        except Exception as exc:  # a part whose transfer encoding is beyond repair
            reason = f"undecodable: {type(exc).__name__}"
            return base.model_copy(update={"status": "failed", "reason": reason})
        verdict = found.verdict
        base = base.model_copy(
            update={
                "size": len(found.data),
                "checksum": found.checksum,
                "detected_content_type": verdict.detected_type,
            }
        )
        if not verdict.allowed:
            log.info("inbound.attachment_blocked", app=destination.key, reason=verdict.reason)
            return base.model_copy(update={"status": "blocked", "reason": verdict.reason})
        content_type = part.content_type
        if content_type == "application/octet-stream" and verdict.detected_type:
            content_type = verdict.detected_type
        obj = await store_attachment(
            self.clients,
            bucket=self.settings.attachments_bucket,
            key=message.attachment_key(destination.key, received_at, identifier),
            data=found.data,
            content_type=content_type,
            filename=filename,
            original_filename=part.filename,
            ttl_seconds=self.config.presigned_url_ttl_seconds,
        )
        return base.model_copy(
            update={
                "content_type": content_type,
                "s3_bucket": obj.bucket,
                "s3_key": obj.key,
                "presigned_url": obj.presigned_url,
                "presigned_url_expires_at": obj.expires_at,
            }
        )


def _recipients_from_headers(parsed: ParsedEmail) -> tuple[tuple[str, ...], str]:
    """S3 events carry no envelope: SES's Received header, else To/Cc (less trusted)."""
    if parsed.ses_recipient:
        return (parsed.ses_recipient,), "received-header"
    return tuple(a.address for a in [*parsed.to, *parsed.cc]), "headers"


def _app_of(destination: Destination) -> str | None:
    return None if destination.key == DEFAULT_ROUTE else destination.key
