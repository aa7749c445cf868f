"""The SQS consumer engine, one implementation for every queue the worker reads.

Long poll, batches of up to 10, bounded concurrency, each message on its own (one poison
message never touches its neighbours), a visibility heartbeat while a pipeline works,
delete only on success. What the pipeline returns or raises decides the message's fate:

- an `Outcome`                 -> DeleteMessage (batched with its neighbours' deletes)
- an `Outcome` with a deferral -> re-send with DelaySeconds<=900, delete (not an attempt)
- an AWS outage (5xx, no answer, throttling) -> re-send with a growing delay, delete:
  waiting out an outage is not an attempt, for up to `outage_patience_seconds`
- retryable, attempts left     -> ChangeMessageVisibility(backoff): SQS redelivers later
- permanent, or out of tries   -> FailureRecord to MAILFLOW_DLQ, tell the pipeline, delete

`mailflow.errors.fate` is the only place that knows which exception is which.

Settling never raises. Every step after the pipeline returns is an AWS call that can
fail like any other, and a worker that dies there takes every message in flight with
it. So each step has a fallback that loses nothing: a failed re-send falls back to a
visibility change, a failed delete or visibility change is logged and left to SQS (the
message comes back and the pipelines' idempotency absorbs the repeat), a failure record
that cannot be written keeps the message for another judgement.
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from mailflow.aws.clients import AwsClients
from mailflow.contracts.failure import FailureRecord, is_replayable
from mailflow.engine.message import Deferral, Direction, Handler, Outcome, SqsMessage
from mailflow.errors import MailflowError, Rejection, as_mailflow_error, describe, fate
from mailflow.observability import metrics
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.consumer")

MAX_VISIBILITY_SECONDS = 43_200  # SQS cap: 12 hours
MAX_DELAY_SECONDS = 900  # SQS cap on DelaySeconds: 15 minutes
# Fates that say a dependency is down or overloaded, not that the message is bad.
OUTAGE_CODES = frozenset({"aws_unavailable", "aws_throttled"})
# "<waits> <epoch seconds of the first>": how long this message has waited out outages.
OUTAGE_ATTRIBUTE = "mailflow-outage"
_TRACEBACK_FRAMES = 6


@dataclass(frozen=True)
class EngineConfig:
    """The knobs of one consumer, taken from settings (kept apart for tests)."""

    concurrency: int = 10
    wait_time_seconds: int = 20
    outage_patience_seconds: int = 6 * 3600
    visibility_timeout_seconds: int = 60
    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    retry_max_seconds: int = 900

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        return cls(
            concurrency=settings.concurrency,
            wait_time_seconds=settings.wait_time_seconds,
            visibility_timeout_seconds=settings.visibility_timeout_seconds,
            max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            outage_patience_seconds=settings.outage_patience_seconds,
        )


def backoff_seconds(
    attempt: int, base: float, cap: int, rand: Callable[[], float] = random.random
) -> int:
    """Exponential backoff with "equal jitter": half fixed, half random, capped.

    `attempt` is ApproximateReceiveCount (1 for the first delivery), so the delay grows
    across redeliveries even though each delivery may land on another worker.
    """
    ceiling = min(float(cap), base * 2 ** max(0, attempt - 1))
    return max(1, min(MAX_VISIBILITY_SECONDS, int(ceiling / 2 + rand() * ceiling / 2)))


def outage_deferral(
    message: SqsMessage, code: str, config: EngineConfig, now: float
) -> Deferral | None:
    """Hold a message through an AWS outage without spending its attempts (None: don't).

    Each hold re-sends the message with a growing delay and counts itself in a message
    attribute; once the first hold is `outage_patience_seconds` old, the message's
    attempts count again, so a message that fails like an outage for ever still ends in
    the DLQ, not in an endless loop.
    """
    if code not in OUTAGE_CODES:
        return None
    waits, since = 0, now
    value = message.message_attributes.get(OUTAGE_ATTRIBUTE, {}).get("StringValue", "")
    with contextlib.suppress(ValueError):
        waits_text, since_text = value.split()
        waits, since = int(waits_text), float(since_text)
    if now - since >= config.outage_patience_seconds:
        return None
    delay = backoff_seconds(waits + 1, config.retry_base_seconds, MAX_DELAY_SECONDS)
    return Deferral(
        delay,
        f"waiting out an AWS outage ({code}), hold {waits + 1}",
        attributes={OUTAGE_ATTRIBUTE: f"{waits + 1} {since:.0f}"},
    )


def last_frames(exc: BaseException, limit: int = _TRACEBACK_FRAMES) -> list[str]:
    """The innermost frames of `exc` as `path:line in function` (no source, no locals)."""
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    return [f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in frames]


def _short(path: str) -> str:
    marker = path.rfind("/mailflow/")
    return path[marker + 1 :] if marker >= 0 else "/".join(path.rsplit("/", 2)[-2:])


def unexpected(exc: BaseException) -> BaseException | None:
    """The bug behind an `unexpected_error` (possibly wrapped by a pipeline), else None."""
    if fate(exc).code != "unexpected_error":
        return None
    return exc.__cause__ if isinstance(exc, MailflowError) and exc.__cause__ else exc


def build_failure_record(
    direction: Direction, message: SqsMessage, exc: BaseException
) -> FailureRecord:
    """The one record shape for the DLQ; unexpected errors carry their type and frames."""
    retryable, code = fate(exc)
    error = as_mailflow_error(exc, "unexpected error")
    details = dict(error.details)
    bug = unexpected(exc)
    if bug is not None:
        details["exception"] = type(bug).__name__
        details["traceback"] = last_frames(bug)
    return FailureRecord(
        direction=direction,
        source_queue=message.queue,
        sqs_message_id=message.message_id,
        error_code=f"retries_exhausted:{code}" if retryable else code,
        reason=str(exc) or type(exc).__name__,
        retryable=retryable,
        replayable=is_replayable(code),
        attempts=message.receive_count,
        first_attempt_at=message.first_received_at,
        last_attempt_at=datetime.now(UTC),
        app=error.app,
        details=details,
        body=message.body,
    )


def _to_message(queue: str, queue_url: str, raw: Any) -> SqsMessage:
    return SqsMessage(
        queue=queue,
        queue_url=queue_url,
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        attributes=raw.get("Attributes", {}),
        message_attributes=raw.get("MessageAttributes", {}),
    )


class Consumer:
    """Polls one queue and feeds its messages to one pipeline until asked to stop."""

    def __init__(
        self,
        *,
        queue: str,
        handler: Handler,
        clients: AwsClients,
        dlq: str,
        config: EngineConfig,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.direction = handler.direction
        self.clients = clients
        self.dlq = dlq
        self.config = config
        self.polling = False
        self._in_flight = 0
        self._slot_freed = anyio.Event()
        self._started: dict[int, float] = {}  # id(message) -> when its handling began
        self._settlers: anyio.abc.TaskGroup | None = None
        metrics.OLDEST_IN_FLIGHT.labels(self.direction).set_function(self.oldest_in_flight)

    def oldest_in_flight(self) -> float:
        """Seconds the longest-running message has been in hand (0 with none)."""
        return time.monotonic() - min(self._started.values()) if self._started else 0.0

    async def run(self, stop: anyio.Event, grace_seconds: float) -> None:
        """Consume until `stop` is set, then let in-flight messages finish within the grace.

        Work still running when the grace ends is cancelled; its messages are not
        deleted and reappear when their visibility lapses, so nothing is lost.
        """
        # Deletes of handled messages run here, after their slots are free (below): they
        # wait to share a DeleteMessageBatch, and this group outlives the workers' grace.
        async with anyio.create_task_group() as settlers, anyio.create_task_group() as workers:
            self._settlers = settlers
            with anyio.CancelScope() as poll_scope:
                async with anyio.create_task_group() as watcher:
                    watcher.start_soon(self._cancel_on, stop, poll_scope)
                    queue_url = await self._resolve_queue()
                    self.polling = True
                    await self._poll(queue_url, workers)
            self.polling = False
            log.info("consumer.draining", direction=self.direction, in_flight=self._in_flight)
            with anyio.move_on_after(grace_seconds) as grace_scope:
                while self._in_flight:
                    await self._wait_for_slot()
            if grace_scope.cancelled_caught:
                log.warning(
                    "consumer.grace_expired", direction=self.direction, abandoned=self._in_flight
                )
                workers.cancel_scope.cancel()
        log.info("consumer.stopped", direction=self.direction)

    @staticmethod
    async def _cancel_on(stop: anyio.Event, scope: anyio.CancelScope) -> None:
        await stop.wait()
        scope.cancel()

    async def _resolve_queue(self) -> str:
        """The queue's URL, asked again with a backoff while SQS cannot answer."""
        failures = 0
        while True:
            try:
                return await self.clients.queues.url(self.queue)
            except Exception as exc:
                failures += 1
                log.warning(
                    "consumer.queue_unresolved", direction=self.direction, error=describe(exc)
                )
                await anyio.sleep(min(30.0, 0.5 * 2**failures))

    async def _wait_for_slot(self) -> None:
        self._slot_freed = anyio.Event()
        await self._slot_freed.wait()

    async def _poll(self, queue_url: str, workers: anyio.abc.TaskGroup) -> None:
        failures = 0
        while True:
            while self._in_flight >= self.config.concurrency:
                await self._wait_for_slot()
            try:
                batch = await self._receive(queue_url, self.config.concurrency - self._in_flight)
                failures = 0
            except Exception as exc:
                failures += 1
                metrics.RECEIVE_ERRORS.labels(self.direction).inc()
                log.warning(
                    "consumer.receive_failed", direction=self.direction, error=describe(exc)
                )
                await anyio.sleep(min(30.0, 0.5 * 2**failures))
                continue
            for raw in batch:
                self._in_flight += 1
                metrics.MESSAGES_RECEIVED.labels(self.direction).inc()
                workers.start_soon(self._process, _to_message(self.queue, queue_url, raw))

    async def _receive(self, queue_url: str, room: int) -> list[Any]:
        response = await self.clients.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(10, room)),
            WaitTimeSeconds=self.config.wait_time_seconds,
            VisibilityTimeout=self.config.visibility_timeout_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    async def _process(self, message: SqsMessage) -> None:
        started = time.monotonic()
        self._started[id(message)] = started
        metrics.IN_FLIGHT.labels(self.direction).inc()
        outcome = "retry"
        try:
            with structlog.contextvars.bound_contextvars(
                direction=self.direction,
                sqs_message_id=message.message_id,
                attempt=message.receive_count,
            ):
                result = await self._run_pipeline(message)
                outcome = await self._settle(message, result)
        except Exception:
            # Settling guards every step; reaching this is a bug in mailflow. The message
            # is left to SQS (it reappears), and the worker keeps serving the others.
            log.exception("message.settle_crashed", sqs_message_id=message.message_id)
        finally:
            self._started.pop(id(message), None)
            self._in_flight -= 1
            self._slot_freed.set()
            metrics.IN_FLIGHT.labels(self.direction).dec()
            metrics.HANDLING_SECONDS.labels(self.direction, outcome).observe(
                time.monotonic() - started
            )

    async def _run_pipeline(self, message: SqsMessage) -> Outcome | Exception:
        """The pipeline's outcome, or what it raised; a heartbeat runs meanwhile."""
        result: Outcome | Exception
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat, message)
            try:
                result = await self.handler.handle(message)
            except Exception as exc:  # every failure gets a fate; none escapes
                result = exc
            tg.cancel_scope.cancel()
        return result

    async def _settle(self, message: SqsMessage, result: Outcome | Exception) -> str:
        """Carry out the message's fate; never raises (see the module docstring)."""
        if isinstance(result, Exception):
            return await self._fail(message, result)
        if result.deferral is not None:
            await self._defer(message, result.deferral)
            return self._count(result.app, "deferred")
        await self._delete_soon(message)
        log.info("message.handled", app=result.app)
        return self._count(result.app, "success")

    def _count(self, app: str | None, outcome: str) -> str:
        metrics.MESSAGES_HANDLED.labels(self.direction, app or "-", outcome).inc()
        return outcome

    async def _fail(self, message: SqsMessage, exc: Exception) -> str:
        retryable, code = fate(exc)
        app = exc.app if isinstance(exc, MailflowError) else None
        bug = unexpected(exc)
        metrics.MESSAGES_FAILED.labels(self.direction, code).inc()
        hold = outage_deferral(message, code, self.config, time.time()) if retryable else None
        if hold is not None:
            log.warning("message.outage_hold", error_code=code, error=str(exc) or describe(exc))
            await self._defer(message, hold)
            return self._count(app, "deferred")
        if retryable and message.receive_count < self.config.max_attempts:
            delay = backoff_seconds(
                message.receive_count, self.config.retry_base_seconds, self.config.retry_max_seconds
            )
            log.warning(
                "message.retry",
                error_code=code,
                error=str(exc) or describe(exc),
                delay_seconds=delay,
                exc_info=bug,
            )
            await self._change_visibility(message, delay)
            metrics.RETRIES.labels(self.direction).inc()
            return self._count(app, "retry")
        record = build_failure_record(self.direction, message, exc)
        event = "message.rejected" if isinstance(exc, Rejection) else "message.failed"
        level = log.warning if isinstance(exc, Rejection) else log.error
        level(event, error_code=record.error_code, error=record.reason, app=app, exc_info=bug)
        if not await self._record_failure(message, exc, record):
            return self._count(app, "retry")
        await self._delete(message)
        return self._count(app, "failed")

    async def _record_failure(
        self, message: SqsMessage, exc: Exception, record: FailureRecord
    ) -> bool:
        """Write the failure record and let the pipeline tell the app; False keeps the message."""
        try:
            dlq_url = await self.clients.queues.url(self.dlq)
            await self.clients.outbox.send_message(QueueUrl=dlq_url, MessageBody=record.to_wire())
            metrics.DLQ_RECORDS.labels(self.direction, record.error_code.split(":")[0]).inc()
            await self.handler.on_permanent_failure(
                message, as_mailflow_error(exc, "unexpected error"), record
            )
        except Exception as problem:
            # Keep the message: it returns after its visibility and is judged again.
            log.error("message.failure_not_recorded", error=describe(problem), exc_info=problem)
            return False
        return True

    async def _heartbeat(self, message: SqsMessage) -> None:
        """Keep the message invisible while the pipeline works (long S3 reads, SES waits)."""
        period = max(1.0, self.config.visibility_timeout_seconds / 2)
        while True:
            await anyio.sleep(period)
            await self._change_visibility(message, self.config.visibility_timeout_seconds)

    async def _change_visibility(self, message: SqsMessage, seconds: int) -> bool:
        return await self._guarded(
            "message.visibility_change_failed",
            lambda: self.clients.sqs.change_message_visibility(
                QueueUrl=message.queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=max(0, min(MAX_VISIBILITY_SECONDS, seconds)),
            ),
        )

    async def _defer(self, message: SqsMessage, deferral: Deferral) -> None:
        """Re-send with a delay and delete; if the re-send fails, hold by visibility instead.

        The fallback costs one receive count (the redrive policy sees it), which beats
        losing the message or the worker; the next deferral re-sends normally.
        """
        seconds = max(1, min(MAX_DELAY_SECONDS, deferral.seconds))
        attributes: dict[str, Any] = {
            name: {
                k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")
            }
            for name, value in message.message_attributes.items()
        }
        for name, text in deferral.attributes.items():
            attributes[name] = {"DataType": "String", "StringValue": text}
        extra: dict[str, Any] = {"MessageAttributes": attributes} if attributes else {}
        resent = await self._guarded(
            "message.defer_resend_failed",
            lambda: self.clients.outbox.send_message(
                QueueUrl=message.queue_url,
                MessageBody=message.body,
                DelaySeconds=seconds,
                **extra,
            ),
        )
        log.info("message.deferred", delay_seconds=seconds, reason=deferral.reason, resent=resent)
        if resent:
            await self._delete(message)
        else:
            await self._change_visibility(message, seconds)

    async def _delete_soon(self, message: SqsMessage) -> None:
        """Delete a handled message without holding its slot: the delete waits a moment
        for others to share its batch (`mailflow.aws.outbox`), and the next message need
        not wait for it. Its outcome is only ever logged (see `_delete`)."""
        if self._settlers is None:  # not running under `run`
            await self._delete(message)
            return
        self._settlers.start_soon(self._delete, message)

    async def _delete(self, message: SqsMessage) -> bool:
        # On failure the work is done all the same: SQS redelivers after the visibility
        # timeout and the pipelines' idempotency turns the repeat into a no-op.
        return await self._guarded(
            "message.delete_failed",
            lambda: self.clients.outbox.delete_message(
                QueueUrl=message.queue_url, ReceiptHandle=message.receipt_handle
            ),
        )

    @staticmethod
    async def _guarded(event: str, call: Callable[[], Awaitable[Any]]) -> bool:
        """Run one settling call; log and report False instead of raising."""
        try:
            await call()
        except Exception as exc:
            log.warning(event, error=describe(exc))
            return False
        return True
