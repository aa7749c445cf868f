"""Scheduled send through the real consumer engine and SQS, with a clock the test moves.

Approach (no 40-minute sleep): the pipeline's wall clock is injected; `max_defer_step_seconds`
is 1, so a held message comes back from SQS every ~1 real second and is judged against
the fake clock. The test walks the fake clock through the 40 minutes in jumps, waits
each time until the pipeline has judged the message at the new time (an observed
outcome, not a sleep), and checks that nothing is sent before the scheduled time and
that the send happens within one jump (20 s of fake time) after it; the `sentAt` of the
`email.sent` event is read on the same fake clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio

from mailflow.aws.clients import AwsClients
from mailflow.engine.consumer import Consumer, EngineConfig
from mailflow.engine.message import Outcome, SqsMessage
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings
from tests.helpers import receive_all
from tests.integration.outbound.support import message, sent_mail

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class JumpingClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now.timestamp()


async def test_message_40_minutes_ahead_is_held_then_sent_on_time(
    make_settings: Callable[..., Settings], aws: AwsClients, moto_endpoint: str
) -> None:
    settings = make_settings(outbound={"default_send_rate": 500.0, "max_defer_step_seconds": 1})
    clock = JumpingClock(T0)
    handler = OutboundPipeline(settings, aws, clock=clock)
    judged: list[tuple[datetime, Outcome]] = []
    judge = handler.handle

    async def observed(message: SqsMessage) -> Outcome:
        at = clock.now
        outcome = await judge(message)
        judged.append((at, outcome))
        return outcome

    handler.handle = observed  # type: ignore[method-assign]

    async def judged_at(moment: datetime) -> Outcome:
        """The outcome of the first judgment made at fake time `moment` (waited for)."""
        with anyio.fail_after(15):
            while True:
                for at, outcome in judged:
                    if at == moment:
                        return outcome
                await anyio.sleep(0.05)

    consumer = Consumer(
        queue=settings.outbound_queue,
        handler=handler,
        clients=aws,
        dlq=settings.dlq,
        config=EngineConfig(concurrency=2, wait_time_seconds=1, visibility_timeout_seconds=30),
    )
    scheduled = T0 + timedelta(minutes=40)
    body = message()
    body["options"] = {"scheduledSendTime": scheduled.isoformat()}
    outbound_url = await aws.queues.url(settings.outbound_queue)
    await aws.sqs.send_message(QueueUrl=outbound_url, MessageBody=json.dumps(body))

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, 5.0)
        for fake in [T0 + timedelta(minutes=m) for m in (0, 10, 25, 39)]:
            clock.now = fake
            assert (await judged_at(fake)).deferral is not None, f"not held at {fake}"
            assert sent_mail(moto_endpoint) == [], f"sent early at {fake}"
        clock.now = scheduled - timedelta(seconds=40)
        while (await judged_at(clock.now)).deferral is not None:
            assert sent_mail(moto_endpoint) == [], f"sent early at {clock.now}"
            assert clock.now < scheduled + timedelta(minutes=2)
            clock.now += timedelta(seconds=20)
        stop.set()
    (mail,) = sent_mail(moto_endpoint)
    url = await aws.queues.url(settings.app_queue("app1"))
    (event,) = [json.loads(b) for b in await receive_all(aws.sqs, url, expect=1, timeout=5)]
    sent_at = datetime.fromisoformat(event["sentAt"])
    assert scheduled <= sent_at < scheduled + timedelta(minutes=1)
    assert event["sesMessageId"] == mail.ses_id
