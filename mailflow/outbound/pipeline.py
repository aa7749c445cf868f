"""The outbound pipeline: SQS message in, at most one SES send out, a status event back.

    parse -> validate -> scheduled? (defer) -> governor: rate / quota (defer)
      -> recipients screen -> fetch attachments -> compose
      -> claim (source, correlationId) + send marker, one write -> SESv2 SendEmail (raw)
      -> `email.sent` to the app's queue -> complete claim

Exactly once (`mailflow.outbound.once`): the claim is one conditional write; a failure
*before* the SES call releases it (a retry may send); an SES answer that does not prove
the email unsent (5xx, no answer, a worker killed mid-call) keeps the send marker, and
SES's own events later settle whether that attempt went out. A completed claim whose
`email.sent` event did not reach the app's queue emits it (same `eventId`) instead of
sending; one whose event did stays silent.

Waiting never burns delivery attempts: a scheduled send, a busy rate limiter, SES
throttling and an exhausted daily quota return a deferral, which the engine turns into
a re-send with `DelaySeconds` (the message stays queued, its receive count starts afresh).
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Claim, SendMark, Table
from mailflow.contracts.failure import FailureRecord
from mailflow.contracts.outbound import SkippedRecipient
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
    canary_request,
    encoded_size,
    fetch_attachments,
    send_email_request,
)
from mailflow.outbound.once import SendLedger, new_token
from mailflow.outbound.schedule import defer_seconds
from mailflow.outbound.screen import RecipientScreen
from mailflow.outbound.validation import ValidatedEmail, parse_message, raw_source, validate
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.outbound")

# Errors raised before a request reached SES: nothing can have been sent.
_NOT_SENT_IO = (EndpointConnectionError, ConnectTimeoutError)
# How long telling the app `email.sent` may take before the send is recorded without it.
_TELL_TIMEOUT_SECONDS = 20.0
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
            events_flow=bool(settings.ses_events_queue and self.config.configuration_set),
            settle_seconds=settings.outcome_settle_seconds,
            window_seconds=self.config.unknown_outcome_after_seconds,
            feedback_ttl_seconds=settings.feedback.window_seconds,
            clock=clock,
        )
        self.governor = SendGovernor(self.config, clients.ses, table, clock=clock, rand=rand)
        self.events = StatusEvents(clients, settings, table)
        self.screen = RecipientScreen(table, self.config, settings.feedback.suppression, clock)
        self._canary_sent_at = float("-inf")
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
        token = new_token()
        tracked = email.tracking and bool(self.config.tracking_configuration_set)
        try:
            skipped = await self.screen.skipped(email)
        except PolicyRejected as refused:
            await self._refuse_unless_sent(email, refused)
            return
        # Built before the claim: the claim and the marker are one write, made just
        # before SendEmail (a repeat of a sent email builds for nothing, and stays silent).
        raw, message_id = await self._build(email, token)
        configuration_set = (
            self.config.tracking_configuration_set if tracked else self.config.configuration_set
        )
        request = send_email_request(email, raw, configuration_set, token, skip=set(skipped))
        del raw  # the request holds the bytes now
        # Before the marker: SES's events about this attempt must find its app.
        await self.ledger.remember(email, token, tracked)
        claim, earlier = await self.ledger.claim_send(email, token)
        if claim.status != "acquired":
            await self._not_acquired(email, claim)
            return
        result = None
        if earlier is not None:
            try:
                result = await self._settle_earlier(email, earlier, token, message_id)
            except BaseException:
                await self.ledger.release(email)
                raise
        if result is None:
            sent_at = datetime.fromtimestamp(self.clock(), tz=UTC)
            ses_message_id = await self._call_ses(email, request, token)
            self.governor.sent()
            result = self._result(email, ses_message_id, message_id, sent_at, skipped)
        await self._finish(email, result)

    async def _not_acquired(self, email: ValidatedEmail, claim: Claim) -> None:
        """A repeat (silent, or telling the app what it missed), a conflict, or a twin."""
        if claim.status == "completed":
            metrics.DUPLICATES.labels("completed").inc()
            log.info(
                "outbound.duplicate_already_sent",
                ses_message_id=claim.result.get("sesMessageId"),
                event_on_queue=claim.emitted,
            )
            if not claim.emitted:
                await self._tell_sent(email, claim.result)
            return
        if claim.status == "mismatch":
            metrics.DUPLICATES.labels("mismatch").inc()
            raise PolicyRejected(
                f"correlationId {email.correlation_id!r} was already used by app {email.app!r}"
                " for a different email within 24 hours; this one is not sent",
                code="idempotency_conflict",
            )
        metrics.DUPLICATES.labels("in_progress").inc()
        # Usually a racing duplicate whose twin finishes within a second; if the holder
        # died, its lease lapses. Waiting is not a failed attempt.
        raise _Hold(Deferral(self._short_delay(), "another worker holds the claim"))

    async def _refuse_unless_sent(self, email: ValidatedEmail, refused: PolicyRejected) -> None:
        """No recipient may receive the email: refuse it, unless it was already sent (a
        repeat stays silent, whatever happened to its recipients since). Nothing is
        claimed, so the record can be replayed once the recipients are allowed."""
        claim = await self.ledger.read_claim(email)
        if claim is not None and claim.status == "completed":
            await self._not_acquired(email, claim)
            return
        raise refused

    async def _finish(self, email: ValidatedEmail, result: dict[str, str]) -> None:
        """SES sent it: tell the app, then record the send and that the app knows, in one
        write. Shielded: a worker stopping now must still record the send. If the event
        cannot be sent, the send is recorded all the same and the message is retried: the
        repeat finds the claim completed and tells the app then (same eventId)."""
        metrics.SENT.labels(email.app).inc()
        log.info(
            "outbound.sent",
            ses_message_id=result["sesMessageId"],
            recipients=result["recipients"],
            settled_by=result.get("settledBy", "answer"),
        )
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(_TELL_TIMEOUT_SECONDS):
                    await self.events.sent(email.app, result)
            except Exception:
                await self.ledger.complete(email, result, emitted=False)
                raise
            await self.ledger.complete(email, result, emitted=True)

    async def _tell_sent(self, email: ValidatedEmail, result: dict[str, str]) -> None:
        await self.events.sent(email.app, result)
        await self.ledger.emitted(email)

    def _result(
        self,
        email: ValidatedEmail,
        ses_message_id: str,
        message_id: str,
        sent_at: datetime,
        skipped: dict[str, SkippedRecipient] | None = None,
    ) -> dict[str, str]:
        result = {
            "sesMessageId": ses_message_id,
            "messageId": message_id,
            "sentAt": sent_at.isoformat(),
            "recipients": str(len(email.recipients) - len(skipped or {})),
            "correlationId": email.correlation_id,
        }
        if skipped:
            result["skipped"] = json.dumps([s.model_dump(mode="json") for s in skipped.values()])
        return result

    async def _settle_earlier(
        self, email: ValidatedEmail, earlier: SendMark, token: str, message_id: str
    ) -> dict[str, str] | None:
        """An earlier attempt's marker is there: its result if it was sent, None if this
        attempt may send instead (it took the marker over), else raise (hold or unknown)."""
        metrics.DUPLICATES.labels("send_started").inc()
        resolution = await self.ledger.resolve(earlier)
        metrics.RESOLUTIONS.labels(resolution.verdict).inc()
        log.info(
            "outbound.earlier_attempt",
            verdict=resolution.verdict,
            age_seconds=round(self.clock() - earlier.started_at, 1),
            cause=earlier.cause or "interrupted",
        )
        if resolution.verdict == "sent":
            sent_at = datetime.fromtimestamp(earlier.started_at, tz=UTC)
            ses_message_id = resolution.evidence.get("sesMessageId", "")
            result = self._result(email, ses_message_id, message_id, sent_at)
            return {**result, "settledBy": resolution.evidence.get("eventType", "event")}
        if resolution.verdict == "not_sent":
            if await self.ledger.take_over(email, earlier, token):
                return None
            raise _Hold(Deferral(self._short_delay(), "another attempt took the send over"))
        if resolution.verdict == "pending":
            if resolution.quiet:
                await self._send_canary(email)
            raise _Hold(
                Deferral(
                    self._outcome_wait(earlier.started_at),
                    "an earlier attempt's outcome is unknown; waiting for SES's events",
                )
            )
        metrics.OUTCOME_UNKNOWN.inc()
        raise self._unknown(earlier)

    async def _send_canary(self, email: ValidatedEmail) -> None:
        """Send one email of our own to SES's mailbox simulator, through the configuration
        set: its events move the watermark, which settles an attempt that left none.

        Only when the account is quiet (no mail since the attempt has had its events), at
        most one per `outcome_settle_seconds` per task. The simulator's mail counts toward
        the sending quota, not toward bounce or complaint rates.
        """
        now = self.clock()
        recipient = self.config.canary_recipient
        if not recipient or now - self._canary_sent_at < self.ledger.settle_seconds:
            return
        self._canary_sent_at = now
        try:
            await self.clients.ses.send_email(**canary_request(email, recipient, self.config))
        except Exception as exc:
            log.warning("outbound.canary_failed", error=describe(exc))
            return
        metrics.CANARIES.inc()
        log.info("outbound.canary_sent", detail="to move SES's events past a cut-off attempt")

    def _unknown(self, earlier: SendMark) -> SendOutcomeUnknown:
        age = int(self.clock() - earlier.started_at)
        cause = earlier.cause or "was cut off (the worker stopped or lost the connection)"
        events = (
            "SES published no event for that attempt"
            if self.ledger.events_flow
            else "no SES events are configured to tell (MAILFLOW_SES_EVENTS_QUEUE)"
        )
        return SendOutcomeUnknown(
            f"SES SendEmail {age}s ago {cause}; {events} within"
            f" {int(self.ledger.window_seconds)}s, so whether the email went out is unknown."
            " It is not sent again, to avoid a duplicate.",
            details={
                "attemptStartedAt": datetime.fromtimestamp(earlier.started_at, tz=UTC).isoformat(),
                "cause": earlier.cause or "interrupted",
            },
        )

    async def _build(self, email: ValidatedEmail, token: str) -> tuple[bytes, str]:
        limit = self.config.max_message_bytes
        bodies = len((email.text or "").encode()) + len((email.html or "").encode())
        attachments = await fetch_attachments(
            self.clients.s3, email.attachments, budget_bytes=limit - encoded_size(bodies)
        )
        message_id = message_id_for(email)
        date = datetime.fromtimestamp(self.clock(), tz=UTC)
        build = functools.partial(
            compose, email, attachments, message_id=message_id, date=date, send_token=token
        )
        # base64 of a 20 MB file takes ~0.5 s of CPU: the loop must keep turning meanwhile.
        raw = await run_cpu(build, size=bodies + sum(len(a.data) for a in attachments))
        metrics.MESSAGE_BYTES.observe(len(raw))
        if len(raw) > limit:
            raise PolicyRejected(
                f"composed message is {len(raw)} bytes; the limit is {limit}",
                code="message_too_large",
            )
        return raw, message_id

    async def _call_ses(self, email: ValidatedEmail, request: dict[str, Any], token: str) -> str:
        started = time.monotonic()
        try:
            response = await self.clients.ses.send_email(**request)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status and status < 500:
                # SES answered and refused: nothing was sent, so a retry may send.
                await self.ledger.forget(email, token)
                raise self._refusal(exc) from exc
            cause = f"answered HTTP {status} {describe(exc)}"
            raise await self._ambiguous(email, token, cause) from exc
        except _NOT_SENT_IO:
            await self.ledger.forget(email, token)
            raise
        except Exception as exc:
            raise await self._ambiguous(email, token, f"got no answer ({describe(exc)})") from exc
        except BaseException:
            # Cancelled mid-call (shutdown): the marker and the claim stay; the next
            # attempt asks SES's events what became of this one.
            log.error("outbound.send_interrupted")
            raise
        finally:
            metrics.SEND_SECONDS.observe(time.monotonic() - started)
        return str(response["MessageId"])

    async def _ambiguous(self, email: ValidatedEmail, token: str, cause: str) -> _Hold:
        """SES may or may not have sent it: never send blindly again; hold and find out."""
        log.warning("outbound.send_ambiguous", cause=cause)
        metrics.AMBIGUOUS.inc()
        await self.ledger.note_unknown(email, token, cause)
        await self.ledger.release(email)
        reason = f"SES {cause}: waiting for SES's events to tell whether it was sent"
        return _Hold(Deferral(self._outcome_wait(self.clock()), reason))

    def _outcome_wait(self, started_at: float) -> int:
        """How long to hold a message whose attempt (begun at `started_at`) is unsettled:
        half the settle time, but never past the end of the window."""
        left = self.ledger.window_seconds - (self.clock() - started_at)
        wait = max(1.0, min(self.ledger.settle_seconds / 2, left))
        return min(900, int(wait) + self._short_delay())

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
            await self.events.failed(app, correlation_id, record, message.body)
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
