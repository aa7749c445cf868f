"""The outbound I/O shell: SQS message in, at most one SES send out, a status event back.

    parse -> validate -> scheduled? (Defer) -> paused? (Defer) -> rate token
      -> claim (source, correlationId) -> fetch attachments -> compose -> send marker
      -> SESv2 SendEmail (raw) -> complete claim -> `email.sent` to the app's queue

Exactly once: the claim is one conditional write; a failure *before* the SES call
releases it (a retry may send); a failure whose outcome is unknown (killed or cut off
during the call) keeps the send marker, so no later attempt sends again (markers.py).
A completed claim re-emits the stored `email.sent` event instead of sending: the event
may thus arrive twice (apps dedupe on correlationId), but it is never lost.

Waiting never burns delivery attempts: scheduled sends, an exhausted daily quota and
SES throttling raise `Defer`, which the consumer engine turns into a re-send with
`DelaySeconds` (the message stays queued, its receive count starts afresh).
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from mailflow.aws import AwsClients, error_code
from mailflow.contracts.failure import FailureRecord
from mailflow.contracts.outbound import EmailFailedEvent, EmailSentEvent, OutboundMessage
from mailflow.errors import (
    Defer,
    MailflowError,
    MissingResource,
    PermanentError,
    PolicyRejected,
    RetryableError,
)
from mailflow.handler import Direction, SqsMessage
from mailflow.idempotency import IdempotencyStore
from mailflow.outbound import metrics
from mailflow.outbound.attachments import encoded_size, fetch_attachments
from mailflow.outbound.compose import compose, message_id_for
from mailflow.outbound.markers import SendMarkers, marker_key
from mailflow.outbound.ratelimit import TokenBucket, backoff_with_jitter, task_send_rate
from mailflow.outbound.schedule import defer_seconds
from mailflow.outbound.ses_errors import classify_ses_error, permanent_code
from mailflow.outbound.validation import ValidatedEmail, parse_message, raw_source, validate
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.outbound")

# Errors raised before a request reached SES: nothing can have been sent.
_NOT_SENT_IO = (EndpointConnectionError, ConnectTimeoutError)
_THROTTLE_STREAK_RESET_SECONDS = 60.0
_THREAD_COMPOSE_BYTES = 256 * 1024


class SendOutcomeUnknown(PermanentError):
    """An earlier attempt may have sent this email; sending again could duplicate it."""

    code = "send_outcome_unknown"


class OutboundHandler:
    """The outbound pipeline, plugged into the consumer engine."""

    direction: Direction = "outbound"

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.config = settings.outbound
        self.clients = clients
        self.clock = clock
        self.rand = rand
        self.claims = IdempotencyStore(clients.dynamodb, settings.idempotency_table)
        self.markers = SendMarkers(clients.dynamodb, settings.idempotency_table, clock)
        self.bucket = TokenBucket.start(self._task_rate(self.config.default_send_rate), clock())
        self._throttle_streak = 0
        self._last_throttle = 0.0
        metrics.SEND_RATE_LIMIT.set(self.bucket.rate)
        metrics.QUOTA_EXHAUSTED.set(0)

    # --- the pipeline -------------------------------------------------------------

    async def handle(self, message: SqsMessage) -> None:
        model = parse_message(message.body, self.settings)
        email = validate(model, self.settings)
        structlog.contextvars.bind_contextvars(app=email.app, correlation_id=email.correlation_id)
        try:
            await self._handle_valid(model, email)
        except MailflowError as exc:
            exc.app = exc.app or email.app  # lands in the DLQ record and picks the event queue
            raise

    async def _handle_valid(self, model: OutboundMessage, email: ValidatedEmail) -> None:
        delay = defer_seconds(
            model.options.scheduled_send_time,
            datetime.fromtimestamp(self.clock(), tz=UTC),
            max_ahead_seconds=self.config.max_schedule_ahead_seconds,
            max_step_seconds=self.config.max_defer_step_seconds,
        )
        if delay:
            metrics.DEFERRED.labels("scheduled").inc()
            raise Defer(f"scheduled send: {delay}s to wait", delay_seconds=delay, app=email.app)
        await self._take_token(email.app)
        key = f"outbound#{email.app}#{email.correlation_id}"
        claim = await self.claims.claim(
            key,
            payload_hash=email.payload_hash,
            lease_seconds=self.settings.visibility_timeout_seconds,
            ttl_seconds=self.config.claim_ttl_seconds,
        )
        if claim.status == "completed":
            metrics.DUPLICATES.labels("completed").inc()
            log.info(
                "outbound.duplicate_already_sent", ses_message_id=claim.result.get("sesMessageId")
            )
            await self._emit_sent(email.app, claim.result)
            return
        if claim.status == "mismatch":
            metrics.DUPLICATES.labels("mismatch").inc()
            raise PolicyRejected(
                f"correlationId {email.correlation_id!r} was already used by app {email.app!r}"
                " for a different email within 24 hours; this one is not sent",
                code="idempotency_conflict",
                app=email.app,
            )
        if claim.status == "in_progress":
            metrics.DUPLICATES.labels("in_progress").inc()
            # Usually a racing duplicate whose twin finishes within a second; if the
            # holder died, its lease lapses. Defer: waiting is not a failed attempt.
            raise Defer(
                "another worker holds the claim on this email",
                code="claim_in_progress",
                app=email.app,
                delay_seconds=self._short_delay(),
            )
        result = await self._send_claimed(email, key)
        await self._complete(key, result)
        metrics.SENT.labels(email.app).inc()
        self._throttle_streak = 0
        log.info(
            "outbound.sent", ses_message_id=result["sesMessageId"], recipients=result["recipients"]
        )
        await self._emit_sent(email.app, result)

    async def _send_claimed(self, email: ValidatedEmail, key: str) -> dict[str, str]:
        """Everything between claim and SES; releases the claim when nothing was sent."""
        mkey = marker_key(email.app, email.correlation_id)
        try:
            raw, message_id = await self._build(email)
            age = await self.markers.start(mkey, self.config.claim_ttl_seconds)
        except BaseException:
            await self._release(key)
            raise
        if age is not None:
            # Do not release: the holder of the earlier attempt may still complete.
            raise self._marker_found(email, age)
        sent_at = datetime.fromtimestamp(self.clock(), tz=UTC)
        ses_message_id = await self._call_ses(email, raw, key, mkey)
        return {
            "sesMessageId": ses_message_id,
            "messageId": message_id,
            "sentAt": sent_at.isoformat(),
            "recipients": str(len(email.recipients)),
            "correlationId": email.correlation_id,
        }

    async def _build(self, email: ValidatedEmail) -> tuple[bytes, str]:
        limit = self.config.max_message_bytes
        bodies = encoded_size(len((email.text or "").encode()) + len((email.html or "").encode()))
        attachments = await fetch_attachments(
            self.clients.s3, email.attachments, budget_bytes=limit - bodies
        )
        message_id = message_id_for(email)
        date = datetime.fromtimestamp(self.clock(), tz=UTC)
        if sum(len(a.data) for a in attachments) > _THREAD_COMPOSE_BYTES:
            # base64 of a 20 MB file takes ~0.5 s of CPU: keep the event loop (other
            # messages' heartbeats) responsive by encoding in a worker thread.
            raw = await anyio.to_thread.run_sync(
                functools.partial(compose, email, attachments, message_id=message_id, date=date)
            )
        else:
            raw = compose(email, attachments, message_id=message_id, date=date)
        metrics.MESSAGE_BYTES.observe(len(raw))
        if len(raw) > limit:
            raise PolicyRejected(
                f"composed message is {len(raw)} bytes; the limit is {limit}",
                code="message_too_large",
                app=email.app,
            )
        return raw, message_id

    def _marker_found(self, email: ValidatedEmail, age: float) -> MailflowError:
        metrics.DUPLICATES.labels("send_started").inc()
        # A live sender finishes its SendEmail call well within this; an older marker
        # belongs to an attempt that died mid-send.
        if age < self.config.unknown_outcome_after_seconds:
            return Defer(
                "an earlier attempt started sending this email; waiting for its outcome",
                code="send_in_progress",
                app=email.app,
                delay_seconds=self._short_delay(),
            )
        metrics.OUTCOME_UNKNOWN.inc()
        return SendOutcomeUnknown(
            f"an attempt {int(age)}s ago was interrupted while SES was sending this email;"
            " it may or may not have gone out, and it is not sent again to avoid a duplicate",
            app=email.app,
        )

    async def _call_ses(self, email: ValidatedEmail, raw: bytes, key: str, mkey: str) -> str:
        kwargs: dict[str, Any] = {
            "FromEmailAddress": email.sender.address,
            "Destination": {
                "ToAddresses": [m.address for m in email.to],
                "CcAddresses": [m.address for m in email.cc],
                "BccAddresses": [m.address for m in email.bcc],
            },
            "Content": {"Raw": {"Data": raw}},
        }
        if self.config.configuration_set:
            kwargs["ConfigurationSetName"] = self.config.configuration_set
        started = time.monotonic()
        try:
            response = await self.clients.ses.send_email(**kwargs)
        except ClientError as exc:
            # SES answered: nothing was sent, so a retry may send.
            await self._forget(key, mkey)
            raise self._ses_failure(email, exc) from exc
        except _NOT_SENT_IO:
            await self._forget(key, mkey)
            raise
        except BaseException:
            # Cut off mid-call (timeout, cancelled): the outcome is unknown. Keep the
            # marker and the claim; the lease lapses and a later attempt reports it.
            log.error("outbound.send_interrupted")
            raise
        finally:
            metrics.SEND_SECONDS.observe(time.monotonic() - started)
        return str(response["MessageId"])

    def _ses_failure(self, email: ValidatedEmail, exc: ClientError) -> MailflowError:
        code = error_code(exc)
        text = str(exc.response.get("Error", {}).get("Message", ""))
        kind = classify_ses_error(code, text)
        now = self.clock()
        if kind == "throttled":
            metrics.THROTTLED.inc()
            metrics.DEFERRED.labels("throttled").inc()
            if now - self._last_throttle > _THROTTLE_STREAK_RESET_SECONDS:
                self._throttle_streak = 0
            self._throttle_streak += 1
            self._last_throttle = now
            delay = backoff_with_jitter(
                self._throttle_streak,
                base=self.config.throttle_backoff_base_seconds,
                cap=self.config.throttle_backoff_max_seconds,
                rand=self.rand,
            )
            log.warning("outbound.ses_throttled", error_code=code, delay_seconds=delay)
            return Defer(f"SES throttled ({code}): {text}", delay_seconds=delay, app=email.app)
        if kind == "quota":
            self._pause_for_quota(now, f"{code}: {text}")
            metrics.DEFERRED.labels("quota").inc()
            return Defer(
                f"SES sending stopped ({code}): {text}",
                delay_seconds=self.config.quota_pause_seconds,
                app=email.app,
            )
        if kind == "permanent":
            return PermanentError(
                f"SES refused the email ({code}): {text}", code=permanent_code(code), app=email.app
            )
        return RetryableError(f"SES error ({code}): {text}", code="ses_error", app=email.app)

    def _short_delay(self) -> int:
        """A few seconds, jittered so that racing duplicates do not stay in lockstep."""
        return 2 + int(self.rand() * 4)

    def _pause_for_quota(self, now: float, reason: str) -> None:
        self.bucket.pause(now + self.config.quota_pause_seconds)
        metrics.QUOTA_EXHAUSTED.set(1)
        log.error(
            "outbound.ses_quota_exhausted",
            reason=reason,
            paused_seconds=self.config.quota_pause_seconds,
        )

    async def _take_token(self, app: str) -> None:
        """Wait for the rate limiter, or hand the message back if the wait is long."""
        waited = 0.0
        while True:
            now = self.clock()
            wait = self.bucket.take(now)
            if wait <= 0:
                return
            if self.bucket.paused(now):
                metrics.DEFERRED.labels("quota").inc()
                raise Defer(
                    "sending is paused (SES daily quota)",
                    delay_seconds=min(900, math.ceil(wait)),
                    app=app,
                )
            if waited + wait > self.config.max_rate_wait_seconds:
                metrics.DEFERRED.labels("rate_limited").inc()
                raise Defer(
                    "send rate limit: too many messages waiting",
                    delay_seconds=max(1, math.ceil(wait + self.rand() * 5)),
                    app=app,
                )
            await anyio.sleep(wait)
            waited += wait

    # --- idempotency bookkeeping ------------------------------------------------

    async def _release(self, key: str) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.claims.release(key)
            except (ClientError, BotoCoreError) as exc:
                # The lease lapses by itself; the retry is only delayed.
                log.warning("outbound.release_failed", error=str(exc))

    async def _forget(self, key: str, mkey: str) -> None:
        """Nothing was sent: drop the marker, then the claim (in that order)."""
        with anyio.CancelScope(shield=True):
            try:
                await self.markers.clear(mkey)
            except (ClientError, BotoCoreError) as exc:
                # Keeping the claim makes the retry wait for the lease, then see the
                # marker; better a reported unknown outcome than a possible duplicate.
                log.warning("outbound.marker_clear_failed", error=str(exc))
                return
            await self._release(key)

    async def _complete(self, key: str, result: dict[str, str]) -> None:
        """Record the send; retried in place, because SES already sent the email."""
        with anyio.CancelScope(shield=True):
            for attempt in range(3):
                try:
                    await self.claims.complete(key, result)
                    return
                except (ClientError, BotoCoreError) as exc:
                    log.warning("outbound.complete_failed", error=str(exc), attempt=attempt + 1)
                    await anyio.sleep(0.2 * 2**attempt)
        # The marker still stops any re-send; the app still gets its event below.
        log.error("outbound.complete_abandoned", key=key)

    # --- status events ----------------------------------------------------------

    async def _emit_sent(self, app: str, result: dict[str, str]) -> None:
        event = EmailSentEvent(
            correlation_id=result.get("correlationId", ""),
            source=app,
            ses_message_id=result.get("sesMessageId", ""),
            message_id=result.get("messageId", ""),
            sent_at=datetime.fromisoformat(result["sentAt"])
            if "sentAt" in result
            else datetime.now(UTC),
            recipients=int(result.get("recipients", "0")),
        )
        await self._emit(app, event.type, event.model_dump_json(by_alias=True))

    async def _emit(self, app: str, event_type: str, body: str) -> None:
        url = await self.clients.queues.url(self.settings.app_queue(app))
        await self.clients.sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
        )

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        """Tell the app its email will not go out (when the app is known at all)."""
        source, correlation_id = raw_source(message.body)
        app = error.app or (source if source in self.settings.apps else None)
        if app is None:
            log.warning("outbound.failure_without_app", error_code=record.error_code)
            return
        event = EmailFailedEvent(
            correlation_id=correlation_id,
            source=app,
            error_code=record.error_code,
            reason=record.reason,
            failed_at=datetime.now(UTC),
            retryable=record.retryable,
        )
        try:
            await self._emit(app, event.type, event.model_dump_json(by_alias=True))
        except MissingResource as exc:
            # The app's queue is missing: retrying would loop; the DLQ record stands.
            log.error("outbound.failure_event_undeliverable", error=str(exc))

    # --- SES account refresh ----------------------------------------------------

    def _task_rate(self, account_rate: float) -> float:
        return task_send_rate(
            account_rate,
            fraction=self.config.send_rate_fraction,
            task_count=self.config.task_count,
            cap=self.config.max_send_rate,
        )

    async def refresh_account(self) -> None:
        """Read MaxSendRate and the daily quota from SES GetAccount; keep going on failure."""
        try:
            account = await self.clients.ses.get_account()
        except (ClientError, BotoCoreError) as exc:
            metrics.GET_ACCOUNT_ERRORS.inc()
            reason = (error_code(exc) if isinstance(exc, ClientError) else "") or type(exc).__name__
            log.warning("outbound.get_account_failed", error=reason, rate=self.bucket.rate)
            return
        quota: Any = account.get("SendQuota", {})
        now = self.clock()
        max_rate = float(quota.get("MaxSendRate", self.config.default_send_rate) or 0)
        if max_rate > 0:
            metrics.ACCOUNT_MAX_SEND_RATE.set(max_rate)
            self.bucket.set_rate(self._task_rate(max_rate), now)
            metrics.SEND_RATE_LIMIT.set(self.bucket.rate)
        max_24h = float(quota.get("Max24HourSend", -1))
        sent_24h = float(quota.get("SentLast24Hours", 0))
        if max_24h >= 0:
            metrics.QUOTA_REMAINING.set(max_24h - sent_24h)
        exhausted = (0 <= max_24h <= sent_24h) or account.get("SendingEnabled") is False
        if exhausted:
            self._pause_for_quota(now, "GetAccount: quota used up or sending disabled")
        elif self.bucket.paused(now):
            log.info("outbound.sending_resumed")
            self.bucket.resume()
            metrics.QUOTA_EXHAUSTED.set(0)

    async def background(self) -> None:
        """Run for the worker's lifetime: refresh the send rate and quota periodically."""
        while True:
            await self.refresh_account()
            await anyio.sleep(self.config.rate_refresh_seconds)
