"""The outbound pipeline: SQS message in, at most one SES send out, a status event back.

    parse -> validate -> scheduled? (defer) -> governor: rate / quota (defer)
      -> claim (source, correlationId) -> fetch attachments -> compose -> send marker
      -> SESv2 SendEmail (raw) -> complete claim -> `email.sent` to the app's queue

Exactly once: the claim is one conditional write; a failure *before* the SES call
releases it (a retry may send); a failure whose outcome is unknown (killed or cut off
during the call) keeps the send marker, so no later attempt sends again. A completed
claim re-emits the stored `email.sent` event instead of sending: the event may thus
arrive twice (apps dedupe on correlationId), but it is never lost.

Waiting never burns delivery attempts: a scheduled send, a busy rate limiter, SES
throttling and an exhausted daily quota return a deferral, which the engine turns into
a re-send with `DelaySeconds` (the message stays queued, its receive count starts afresh).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.budget import ByteBudget
from mailflow.engine.cpu import run_cpu
from mailflow.engine.message import BackgroundJob, Deferral, Direction, Outcome, SqsMessage
from mailflow.errors import (
    MailflowError,
    MissingResource,
    PermanentError,
    PolicyRejected,
    as_mailflow_error,
    describe,
    fate,
)
from mailflow.outbound import metrics
from mailflow.outbound.compose import compose, message_id_for
from mailflow.outbound.governor import SendGovernor
from mailflow.outbound.identity import writer_allowed
from mailflow.outbound.io import (
    StatusEvents,
    attachment_sizes,
    encoded_size,
    fetch_attachments,
    send_email_request,
)
from mailflow.outbound.once import SendLedger
from mailflow.outbound.schedule import defer_seconds
from mailflow.outbound.validation import ValidatedEmail, parse_message, raw_source, validate
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.outbound")

# Errors raised before a request reached SES: nothing can have been sent.
_NOT_SENT_IO = (EndpointConnectionError, ConnectTimeoutError)
# SES's refusals, named for the outbound contract (docs/outbound.md).
SES_CODES = {"aws_bad_request": "ses_bad_request"}


class WriterNotAllowed(PermanentError):
    """The message claims an app its writer may not speak for: refused, never sent.

    Not told to the claimed app (that would hand whoever wrote it a way to fill the
    victim's queue with failure events); recorded, logged as a failure and counted.
    """

    code = "writer_not_allowed"


class SendOutcomeUnknown(PermanentError):
    """An earlier attempt may have sent this email; sending again could duplicate it."""

    code = "send_outcome_unknown"


class _Hold(Exception):
    """Stop here and hand the message back later; `handle` turns it into a deferral."""

    def __init__(self, deferral: Deferral) -> None:
        super().__init__(deferral.reason)
        self.deferral = deferral


class OutboundPipeline:
    """The outbound pipeline, plugged into the consumer engine."""

    direction: Direction = "outbound"

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        budget: ByteBudget | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget or ByteBudget(settings.max_in_flight_bytes)
        self.config = settings.outbound
        self.clients = clients
        self.clock = clock
        self.rand = rand
        table = Table(clients.dynamodb, settings.idempotency_table, clock)
        self.ledger = SendLedger(
            table,
            lease_seconds=settings.visibility_timeout_seconds,
            ttl_seconds=self.config.claim_ttl_seconds,
        )
        self.governor = SendGovernor(self.config, clients.ses, table, clock=clock, rand=rand)
        self.events = StatusEvents(clients, settings)
        _announce_writer_identity(settings)

    def background_jobs(self) -> Sequence[BackgroundJob]:
        return self.governor.background_jobs()

    async def handle(self, message: SqsMessage) -> Outcome:
        self._check_writer(message)
        email = validate(parse_message(message.body, self.settings), self.settings)
        structlog.contextvars.bind_contextvars(app=email.app, correlation_id=email.correlation_id)
        try:
            await self._send_once(email)
        except _Hold as hold:
            return Outcome(app=email.app, deferral=hold.deferral)
        except MailflowError as exc:
            exc.app = exc.app or email.app  # lands in the failure record, picks the event queue
            raise
        return Outcome(app=email.app)

    def _check_writer(self, message: SqsMessage) -> None:
        """Refuse a message whose SQS writer is not the app it claims to come from.

        Checked before validation, so that a forged message cannot even earn the claimed
        app an `email.failed` event.
        """
        if self.config.writer_identity == "off":
            return
        source, _ = raw_source(message.body)
        if source not in self.settings.apps:
            return  # validation refuses it and tells nobody
        producers = (*self.settings.apps[source].producers, *self.config.trusted_writers)
        if writer_allowed(message.sender_id, producers):
            return
        metrics.WRITER_REFUSED.labels(source).inc()
        raise WriterNotAllowed(
            f"the message claims app {source!r} but was written by {message.sender_id!r},"
            f" which is not one of {source!r}'s producers; it is not sent",
            details={"claimedApp": source, "senderId": message.sender_id},
        )

    async def _send_once(self, email: ValidatedEmail) -> None:
        delay = defer_seconds(
            email.scheduled_send_time,
            datetime.fromtimestamp(self.clock(), tz=UTC),
            max_ahead_seconds=self.config.max_schedule_ahead_seconds,
            max_step_seconds=self.config.max_defer_step_seconds,
        )
        if delay:
            metrics.DEFERRED.labels("scheduled").inc()
            raise _Hold(Deferral(delay, f"scheduled send: {delay}s to wait"))
        wait = await self.governor.admit()
        if wait is not None:
            raise _Hold(wait)
        size = await self._message_size(email)
        # Attachments, the composed message and the SES request live until SES answers.
        async with self.budget.held(size):
            await self._claim_and_send(email)

    async def _message_size(self, email: ValidatedEmail) -> int:
        """The composed message's size, known from HEADs; too large is refused unread."""
        bodies = len((email.text or "").encode()) + len((email.html or "").encode())
        sizes = await attachment_sizes(self.clients.s3, email.attachments)
        size = encoded_size(bodies) + sum(encoded_size(n) for n in sizes)
        limit = self.config.max_message_bytes
        if size > limit:
            raise PolicyRejected(
                f"the message would be {size} bytes with its attachments base64-encoded;"
                f" the limit is {limit}",
                code="message_too_large",
            )
        return size

    async def _claim_and_send(self, email: ValidatedEmail) -> None:
        claim = await self.ledger.claim(email)
        if claim.status == "completed":
            metrics.DUPLICATES.labels("completed").inc()
            log.info(
                "outbound.duplicate_already_sent", ses_message_id=claim.result.get("sesMessageId")
            )
            await self.events.sent(email.app, claim.result)
            return
        if claim.status == "mismatch":
            metrics.DUPLICATES.labels("mismatch").inc()
            raise PolicyRejected(
                f"correlationId {email.correlation_id!r} was already used by app {email.app!r}"
                " for a different email within 24 hours; this one is not sent",
                code="idempotency_conflict",
            )
        if claim.status == "in_progress":
            metrics.DUPLICATES.labels("in_progress").inc()
            # Usually a racing duplicate whose twin finishes within a second; if the
            # holder died, its lease lapses. Waiting is not a failed attempt.
            raise _Hold(Deferral(self._short_delay(), "another worker holds the claim"))
        result = await self._send_claimed(email)
        await self.ledger.complete(email, result)
        metrics.SENT.labels(email.app).inc()
        self.governor.sent()
        log.info(
            "outbound.sent", ses_message_id=result["sesMessageId"], recipients=result["recipients"]
        )
        await self.events.sent(email.app, result)

    async def _send_claimed(self, email: ValidatedEmail) -> dict[str, str]:
        """Everything between claim and SES; releases the claim when nothing was sent."""
        try:
            raw, message_id = await self._build(email)
            age = await self.ledger.mark_send(email)
        except BaseException:
            await self.ledger.release(email)
            raise
        if age is not None:
            # Do not release: the holder of the earlier attempt may still complete.
            raise self._marker_found(age)
        sent_at = datetime.fromtimestamp(self.clock(), tz=UTC)
        ses_message_id = await self._call_ses(email, raw)
        return {
            "sesMessageId": ses_message_id,
            "messageId": message_id,
            "sentAt": sent_at.isoformat(),
            "recipients": str(len(email.recipients)),
            "correlationId": email.correlation_id,
        }

    async def _build(self, email: ValidatedEmail) -> tuple[bytes, str]:
        limit = self.config.max_message_bytes
        bodies = len((email.text or "").encode()) + len((email.html or "").encode())
        attachments = await fetch_attachments(
            self.clients.s3, email.attachments, budget_bytes=limit - encoded_size(bodies)
        )
        message_id = message_id_for(email)
        date = datetime.fromtimestamp(self.clock(), tz=UTC)
        build = functools.partial(compose, email, attachments, message_id=message_id, date=date)
        # base64 of a 20 MB file takes ~0.5 s of CPU: the loop must keep turning meanwhile.
        raw = await run_cpu(build, size=bodies + sum(len(a.data) for a in attachments))
        metrics.MESSAGE_BYTES.observe(len(raw))
        if len(raw) > limit:
            raise PolicyRejected(
                f"composed message is {len(raw)} bytes; the limit is {limit}",
                code="message_too_large",
            )
        return raw, message_id

    def _marker_found(self, age: float) -> Exception:
        metrics.DUPLICATES.labels("send_started").inc()
        # A live sender finishes its SendEmail call well within this; an older marker
        # belongs to an attempt that died mid-send.
        if age < self.config.unknown_outcome_after_seconds:
            reason = "an earlier attempt started sending this email; waiting for its outcome"
            return _Hold(Deferral(self._short_delay(), reason))
        metrics.OUTCOME_UNKNOWN.inc()
        return SendOutcomeUnknown(
            f"an attempt {int(age)}s ago was interrupted while SES was sending this email;"
            " it may or may not have gone out, and it is not sent again to avoid a duplicate"
        )

    async def _call_ses(self, email: ValidatedEmail, raw: bytes) -> str:
        request = send_email_request(email, raw, self.config.configuration_set)
        started = time.monotonic()
        try:
            response = await self.clients.ses.send_email(**request)
        except ClientError as exc:
            # SES answered: nothing was sent, so a retry may send.
            await self.ledger.forget(email)
            raise self._refusal(exc) from exc
        except _NOT_SENT_IO:
            await self.ledger.forget(email)
            raise
        except BaseException:
            # Cut off mid-call (timeout, cancelled): the outcome is unknown. Keep the
            # marker and the claim; the lease lapses and a later attempt reports it.
            log.error("outbound.send_interrupted")
            raise
        finally:
            metrics.SEND_SECONDS.observe(time.monotonic() - started)
        return str(response["MessageId"])

    def _refusal(self, exc: ClientError) -> Exception:
        """What SES's refusal means: wait (throttle, quota) or the message's fate."""
        code = fate(exc).code
        if code == "aws_throttled":
            return _Hold(self.governor.throttled(describe(exc)))
        if code == "ses_quota":
            return _Hold(self.governor.quota_exhausted(describe(exc)))
        return as_mailflow_error(exc, "SES refused the email", SES_CODES)

    def _short_delay(self) -> int:
        """A few seconds, jittered so that racing duplicates do not stay in lockstep."""
        return 2 + int(self.rand() * 4)

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        """Tell the app its email will not go out (when the app is known at all)."""
        if isinstance(error, WriterNotAllowed):
            return  # the claimed app did not write it: nothing to tell it
        source, correlation_id = raw_source(message.body)
        app = error.app or (source if source in self.settings.apps else None)
        if app is None:
            log.warning("outbound.failure_without_app", error_code=record.error_code)
            return
        try:
            await self.events.failed(app, correlation_id, record)
        except MissingResource as exc:
            # The app's queue is missing: retrying would loop; the failure record stands.
            log.error("outbound.failure_event_undeliverable", error=str(exc))


def _announce_writer_identity(settings: Settings) -> None:
    """Say loudly at start when an app's identity is not checked, or cannot be proven."""
    if settings.outbound.writer_identity == "off":
        log.warning(
            "outbound.writer_identity_off",
            detail="MAILFLOW_OUTBOUND__WRITER_IDENTITY=off: any writer of the outbound queue"
            " can send as any app; use only where one party writes for every app",
        )
        return
    unprovable = sorted(a for a, cfg in settings.apps.items() if not cfg.producers)
    if unprovable:
        log.error(
            "outbound.apps_without_producers",
            apps=unprovable,
            detail="these apps have no producers configured: their outbound messages are"
            " refused (writer_not_allowed) until MAILFLOW_APPS names who writes them",
        )
