"""The SQS consumer engine, one implementation for both directions.

Long poll, batches of up to 10, bounded concurrency, each message on its own (one poison
message never touches its neighbours), a visibility heartbeat while a handler works,
delete only on success. A handler's exception decides the message's fate:

- success                     -> DeleteMessage
- `Defer(n)`                  -> re-send with DelaySeconds<=900, delete (not an attempt)
- retryable, attempts left    -> ChangeMessageVisibility(backoff): SQS redelivers later
- permanent, or out of tries  -> FailureRecord to MAILFLOW_DLQ, tell the handler, delete

If writing the DLQ record (or the handler's failure hook) fails, the message is *not*
deleted: it comes back and the fate is decided again. Nothing is dropped silently.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from mailflow.aws import AwsClients
from mailflow.contracts.failure import FailureRecord
from mailflow.errors import Defer, MailflowError
from mailflow.handler import Direction, Handler, SqsMessage
from mailflow.observability import metrics
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.consumer")

MAX_VISIBILITY_SECONDS = 43_200  # SQS cap: 12 hours
MAX_DELAY_SECONDS = 900  # SQS cap on DelaySeconds: 15 minutes


@dataclass(frozen=True)
class EngineConfig:
    """The knobs of one consumer, taken from settings (kept apart for tests)."""

    concurrency: int = 10
    wait_time_seconds: int = 20
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


def classify(exc: BaseException) -> tuple[bool, str]:
    """(retryable, error code) of anything a handler raised."""
    if isinstance(exc, MailflowError):
        return exc.retryable, exc.code
    if isinstance(exc, ClientError):
        return True, "aws_" + str(exc.response.get("Error", {}).get("Code", "error"))[:40]
    if isinstance(exc, BotoCoreError | OSError | TimeoutError):
        return True, "transient_io"
    return True, "unexpected_error"


def build_failure_record(
    direction: Direction, message: SqsMessage, exc: BaseException, code: str, retryable: bool
) -> FailureRecord:
    app = exc.app if isinstance(exc, MailflowError) else None
    details = dict(exc.details) if isinstance(exc, MailflowError) else {}
    if not isinstance(exc, MailflowError):
        details["exception"] = type(exc).__name__
    return FailureRecord(
        direction=direction,
        source_queue=message.queue,
        sqs_message_id=message.message_id,
        error_code=code if not retryable else f"retries_exhausted:{code}",
        reason=str(exc) or type(exc).__name__,
        retryable=retryable,
        attempts=message.receive_count,
        first_attempt_at=message.first_received_at,
        last_attempt_at=datetime.now(UTC),
        app=app,
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
    """Polls one queue and feeds its messages to one handler until asked to stop."""

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

    async def run(self, stop: anyio.Event, grace_seconds: float) -> None:
        """Consume until `stop` is set, then let in-flight messages finish within the grace.

        Work still running when the grace ends is cancelled; its messages are not
        deleted and reappear when their visibility lapses, so nothing is lost.
        """
        queue_url = await self.clients.queues.url(self.queue)
        await self.clients.queues.url(self.dlq)
        async with anyio.create_task_group() as workers:
            with anyio.CancelScope() as poll_scope:
                async with anyio.create_task_group() as watcher:
                    watcher.start_soon(self._cancel_on, stop, poll_scope)
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
            except (ClientError, BotoCoreError, OSError) as exc:
                failures += 1
                metrics.RECEIVE_ERRORS.labels(self.direction).inc()
                log.warning("consumer.receive_failed", direction=self.direction, error=str(exc))
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
        metrics.IN_FLIGHT.labels(self.direction).inc()
        outcome = "failed"
        try:
            with structlog.contextvars.bound_contextvars(
                direction=self.direction,
                sqs_message_id=message.message_id,
                attempt=message.receive_count,
            ):
                outcome = await self._settle(message)
        finally:
            self._in_flight -= 1
            self._slot_freed.set()
            metrics.IN_FLIGHT.labels(self.direction).dec()
            metrics.HANDLING_SECONDS.labels(self.direction, outcome).observe(
                time.monotonic() - started
            )

    async def _settle(self, message: SqsMessage) -> str:
        """Run the handler under a heartbeat and carry out the message's fate."""
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat, message)
            try:
                await self.handler.handle(message)
            except Exception as exc:  # every failure gets a fate; none escapes
                error = exc
            tg.cancel_scope.cancel()
        if isinstance(error, Defer):
            await self._defer(message, error.delay_seconds)
            return self._count(message, "deferred")
        if error is not None:
            return await self._fail(message, error)
        await self._delete(message)
        log.info("message.handled")
        return self._count(message, "success")

    def _count(self, message: SqsMessage, outcome: str) -> str:
        app = structlog.contextvars.get_contextvars().get("app")
        label = app if isinstance(app, str) and app else "-"
        metrics.MESSAGES_HANDLED.labels(self.direction, label, outcome).inc()
        return outcome

    async def _fail(self, message: SqsMessage, exc: Exception) -> str:
        retryable, code = classify(exc)
        metrics.MESSAGES_FAILED.labels(self.direction, code.split(":")[0]).inc()
        if retryable and message.receive_count < self.config.max_attempts:
            delay = getattr(exc, "delay_seconds", None) or backoff_seconds(
                message.receive_count, self.config.retry_base_seconds, self.config.retry_max_seconds
            )
            log.warning("message.retry", error_code=code, error=str(exc), delay_seconds=delay)
            await self._change_visibility(message, min(int(delay), MAX_VISIBILITY_SECONDS))
            metrics.RETRIES.labels(self.direction).inc()
            return self._count(message, "retry")
        record = build_failure_record(self.direction, message, exc, code, retryable)
        log.error("message.failed", error_code=record.error_code, error=record.reason)
        try:
            await self.clients.sqs.send_message(
                QueueUrl=await self.clients.queues.url(self.dlq), MessageBody=record.to_wire()
            )
            metrics.DLQ_RECORDS.labels(self.direction, code.split(":")[0]).inc()
            await self.handler.on_permanent_failure(message, _as_mailflow(exc, code), record)
        except Exception as hook_exc:
            # Keep the message: it returns after its visibility and is judged again.
            log.error("message.failure_not_recorded", error=str(hook_exc))
            return self._count(message, "retry")
        await self._delete(message)
        return self._count(message, "failed")

    async def _heartbeat(self, message: SqsMessage) -> None:
        """Keep the message invisible while the handler works (long S3 fetches, SES waits)."""
        period = max(1.0, self.config.visibility_timeout_seconds / 2)
        while True:
            await anyio.sleep(period)
            await self._change_visibility(message, self.config.visibility_timeout_seconds)

    async def _change_visibility(self, message: SqsMessage, seconds: int) -> None:
        try:
            await self.clients.sqs.change_message_visibility(
                QueueUrl=message.queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=seconds,
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            # The receipt may be stale (visibility lapsed); SQS redelivers: no loss.
            log.warning("message.visibility_change_failed", error=str(exc))

    async def _defer(self, message: SqsMessage, delay_seconds: int) -> None:
        attributes: dict[str, Any] = {
            name: {
                k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")
            }
            for name, value in message.message_attributes.items()
        }
        extra: dict[str, Any] = {"MessageAttributes": attributes} if attributes else {}
        await self.clients.sqs.send_message(
            QueueUrl=message.queue_url,
            MessageBody=message.body,
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, delay_seconds)),
            **extra,
        )
        log.info("message.deferred", delay_seconds=delay_seconds)
        await self._delete(message)

    async def _delete(self, message: SqsMessage) -> None:
        try:
            await self.clients.sqs.delete_message(
                QueueUrl=message.queue_url, ReceiptHandle=message.receipt_handle
            )
        except (ClientError, BotoCoreError) as exc:
            # The work is done; a redelivery is caught by the pipelines' idempotency.
            log.warning("message.delete_failed", error=str(exc))


def _as_mailflow(exc: Exception, code: str) -> MailflowError:
    if isinstance(exc, MailflowError):
        return exc
    wrapped = MailflowError(str(exc) or type(exc).__name__, code=code)
    wrapped.__cause__ = exc
    return wrapped
