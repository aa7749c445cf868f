"""The consumer engine against a real SQS endpoint (moto server over HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import structlog

from mailflow.aws.clients import AwsClients
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.consumer import Consumer, EngineConfig
from mailflow.engine.message import BackgroundJob, Outcome, SqsMessage
from mailflow.errors import MailflowError, PermanentError, RetryableError, ValidationFailed
from mailflow.settings import Settings
from tests.helpers import queue_count, receive_all

FAST = EngineConfig(
    concurrency=10,
    wait_time_seconds=1,
    visibility_timeout_seconds=10,
    max_attempts=3,
    retry_base_seconds=1,
    retry_max_seconds=2,
)


@dataclass
class ScriptedHandler:
    """Behaves per message body: 'ok', 'fail-once', 'poison', 'flaky', 'slow:N', 'defer'."""

    direction: Any = "inbound"
    seen: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def background_jobs(self) -> list[BackgroundJob]:
        return []

    async def handle(self, message: SqsMessage) -> Outcome:
        body = message.body
        self.seen.append(body)
        if body.startswith("fail-once") and self.seen.count(body) == 1:
            raise RetryableError("first attempt fails")
        if body.startswith("poison"):
            raise PermanentError("cannot ever work", code="poison_pill", app="app1")
        if body.startswith("invalid"):
            raise ValidationFailed("not what the contract says", code="invalid_message")
        if body.startswith("flaky"):
            raise RuntimeError("always broken")
        if body.startswith("slow:"):
            await anyio.sleep(float(body.split(":")[1]))
        if body.startswith("defer") and self.seen.count(body) == 1:
            return Outcome.deferred(1, "later", app="app1")
        self.done.append(body)
        return Outcome(app="app1")

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        self.failures.append((message.body, error.code))


async def run_until(
    consumer: Consumer, condition: Callable[[], bool], timeout: float = 20.0, grace: float = 5.0
) -> None:
    stop = anyio.Event()

    async def watch() -> None:
        with anyio.fail_after(timeout):
            while not condition():
                await anyio.sleep(0.05)
        stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, grace)
        await watch()


async def send(aws: AwsClients, queue: str, *bodies: str) -> str:
    url = await aws.queues.url(queue)
    for body in bodies:
        await aws.sqs.send_message(QueueUrl=url, MessageBody=body)
    return url


def make_consumer(
    settings: Settings, aws: AwsClients, handler: ScriptedHandler, config: EngineConfig = FAST
) -> Consumer:
    return Consumer(
        queue=settings.inbound_queue, handler=handler, clients=aws, dlq=settings.dlq, config=config
    )


async def dlq_records(settings: Settings, aws: AwsClients) -> list[FailureRecord]:
    """Every failure record, read once the consumer has settled (moto's counts are exact)."""
    url = await aws.queues.url(settings.dlq)
    count = await queue_count(aws.sqs, url)
    bodies = await receive_all(aws.sqs, url, expect=count, timeout=10)
    assert len(bodies) == count
    return [FailureRecord.model_validate_json(b) for b in bodies]


async def test_success_deletes(provisioned: Settings, aws: AwsClients) -> None:
    url = await send(aws, provisioned.inbound_queue, "ok")
    handler = ScriptedHandler()
    await run_until(make_consumer(provisioned, aws, handler), lambda: handler.done == ["ok"])
    assert await queue_count(aws.sqs, url) == 0


async def test_retryable_failure_is_redelivered_and_then_succeeds(
    provisioned: Settings, aws: AwsClients
) -> None:
    url = await send(aws, provisioned.inbound_queue, "fail-once")
    handler = ScriptedHandler()
    await run_until(make_consumer(provisioned, aws, handler), lambda: handler.done == ["fail-once"])
    assert handler.seen == ["fail-once", "fail-once"]
    assert await queue_count(aws.sqs, url) == 0
    assert await dlq_records(provisioned, aws) == []


async def test_permanent_failure_lands_one_structured_dlq_record(
    provisioned: Settings, aws: AwsClients
) -> None:
    url = await send(aws, provisioned.inbound_queue, "poison")
    handler = ScriptedHandler()
    await run_until(make_consumer(provisioned, aws, handler), lambda: bool(handler.failures))
    records = await dlq_records(provisioned, aws)
    assert len(records) == 1
    record = records[0]
    assert record.body == "poison"
    assert record.error_code == "poison_pill"
    assert record.reason == "cannot ever work"
    assert record.app == "app1"
    assert record.attempts == 1
    assert record.retryable is False
    assert record.first_attempt_at is not None
    assert record.source_queue == provisioned.inbound_queue
    assert handler.failures == [("poison", "poison_pill")]
    assert handler.seen == ["poison"]  # permanent: never retried
    assert await queue_count(aws.sqs, url) == 0


async def test_poison_message_does_not_affect_its_batch(
    provisioned: Settings, aws: AwsClients
) -> None:
    bodies = [f"ok-{i}" for i in range(9)] + ["poison"]
    url = await send(aws, provisioned.inbound_queue, *bodies)
    handler = ScriptedHandler()
    await run_until(
        make_consumer(provisioned, aws, handler),
        lambda: len(handler.done) == 9 and bool(handler.failures),
    )
    assert sorted(handler.done) == sorted(bodies[:9])
    assert len(await dlq_records(provisioned, aws)) == 1
    assert await queue_count(aws.sqs, url) == 0


async def test_exhausted_retries_become_a_dlq_record(
    provisioned: Settings, aws: AwsClients
) -> None:
    await send(aws, provisioned.inbound_queue, "flaky")
    handler = ScriptedHandler()
    await run_until(
        make_consumer(provisioned, aws, handler), lambda: bool(handler.failures), timeout=30
    )
    assert handler.seen == ["flaky"] * FAST.max_attempts
    (record,) = await dlq_records(provisioned, aws)
    assert record.error_code == "retries_exhausted:unexpected_error"
    assert record.retryable is True
    assert record.attempts == FAST.max_attempts
    assert record.details["exception"] == "RuntimeError"


async def test_defer_resends_without_counting_an_attempt(
    provisioned: Settings, aws: AwsClients
) -> None:
    await send(aws, provisioned.inbound_queue, "defer")
    handler = ScriptedHandler()
    consumer = make_consumer(provisioned, aws, handler)
    deliveries: list[int] = []
    original = handler.handle

    async def record_attempt(message: SqsMessage) -> Outcome:
        deliveries.append(message.receive_count)
        return await original(message)

    handler.handle = record_attempt  # type: ignore[method-assign]
    await run_until(consumer, lambda: handler.done == ["defer"])
    assert deliveries == [1, 1]  # a fresh message each time, not a redelivery


async def test_heartbeat_keeps_a_slow_message_invisible(
    provisioned: Settings, aws: AwsClients
) -> None:
    config = EngineConfig(**{**FAST.__dict__, "visibility_timeout_seconds": 2})
    url = await send(aws, provisioned.inbound_queue, "slow:5")
    first, second = ScriptedHandler(), ScriptedHandler()
    a = make_consumer(provisioned, aws, first, config)
    b = make_consumer(provisioned, aws, second, config)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, stop, 10.0)
        tg.start_soon(b.run, stop, 10.0)
        with anyio.fail_after(20):
            while len(first.done) + len(second.done) < 1:
                await anyio.sleep(0.05)
            while await queue_count(aws.sqs, url) > 0:  # deleted: it can never come back
                await anyio.sleep(0.05)
        stop.set()
    assert len(first.seen) + len(second.seen) == 1  # never redelivered while being worked on


async def test_stop_lets_in_flight_work_finish_and_loses_nothing(
    provisioned: Settings, aws: AwsClients
) -> None:
    url = await send(aws, provisioned.inbound_queue, "slow:2", "slow:2.5")
    handler = ScriptedHandler()
    consumer = make_consumer(provisioned, aws, handler)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, 10.0)
        with anyio.fail_after(10):
            while len(handler.seen) < 2:
                await anyio.sleep(0.05)
        stop.set()
    assert sorted(handler.done) == ["slow:2", "slow:2.5"]
    assert await queue_count(aws.sqs, url) == 0


async def test_grace_expiry_abandons_work_but_the_message_comes_back(
    provisioned: Settings, aws: AwsClients
) -> None:
    config = EngineConfig(**{**FAST.__dict__, "visibility_timeout_seconds": 2})
    url = await send(aws, provisioned.inbound_queue, "slow:30")
    handler = ScriptedHandler()
    consumer = make_consumer(provisioned, aws, handler, config)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, 0.5)
        with anyio.fail_after(10):
            while not handler.seen:
                await anyio.sleep(0.05)
        stop.set()
    assert handler.done == []
    assert await receive_all(aws.sqs, url, expect=1, timeout=10) == ["slow:30"]


@pytest.mark.parametrize("count", [25])
async def test_concurrency_is_bounded(provisioned: Settings, aws: AwsClients, count: int) -> None:
    config = EngineConfig(**{**FAST.__dict__, "concurrency": 3})
    await send(aws, provisioned.inbound_queue, *[f"slow:0.2-{i}" for i in range(count)])
    active = 0
    peak = 0
    handler = ScriptedHandler()

    async def tracked(message: SqsMessage) -> Outcome:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.2)
        active -= 1
        handler.done.append(message.body)
        return Outcome()

    handler.handle = tracked  # type: ignore[method-assign]
    await run_until(
        make_consumer(provisioned, aws, handler, config), lambda: len(handler.done) == count
    )
    assert peak == 3


async def test_rejections_are_logged_apart_from_failures(
    provisioned: Settings, aws: AwsClients
) -> None:
    """The alarm counts `message.failed` lines: bad input must not page anyone."""
    await send(aws, provisioned.inbound_queue, "poison", "invalid", "flaky")
    handler = ScriptedHandler()
    with structlog.testing.capture_logs() as logs:
        await run_until(
            make_consumer(provisioned, aws, handler),
            lambda: len(handler.failures) == 3,
            timeout=30,
        )
    fates = {
        (e["event"], e["error_code"])
        for e in logs
        if e["event"].startswith("message.")
        and e["event"] in {"message.failed", "message.rejected"}
    }
    assert fates == {
        ("message.failed", "poison_pill"),
        ("message.rejected", "invalid_message"),
        ("message.failed", "retries_exhausted:unexpected_error"),
    }
    unexpected = next(
        e for e in logs if e.get("error_code") == "retries_exhausted:unexpected_error"
    )
    assert isinstance(unexpected["exc_info"], RuntimeError)  # the traceback is logged


async def test_handled_messages_are_deleted_in_batches_even_when_stopping_at_once(
    settings: Settings, aws: AwsClients
) -> None:
    """Deletes hold no slot and share DeleteMessageBatch calls; stopping right after the
    last message was handled still deletes every one (nothing comes back)."""
    bodies = [f"ok-batch-{i}" for i in range(10)]
    url = await send(aws, settings.inbound_queue, *bodies)
    handler = ScriptedHandler()
    consumer = make_consumer(settings, aws, handler)
    before = aws.outbox.calls
    await run_until(consumer, lambda: len(handler.done) == len(bodies))
    assert sorted(handler.done) == sorted(bodies)
    assert await queue_count(aws.sqs, url) == 0
    assert aws.outbox.calls - before <= 5  # ten deletes, in a few batch calls
