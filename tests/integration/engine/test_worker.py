"""The worker's background jobs can fail in any way without ending the process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from prometheus_client import REGISTRY

from mailflow.aws.clients import AwsClients
from mailflow.engine.message import BackgroundJob
from mailflow.engine.worker import Worker, supervise
from mailflow.errors import MissingResource
from mailflow.settings import Settings
from tests.integration.engine.test_consumer import ScriptedHandler


async def test_a_failing_job_is_restarted_until_it_succeeds() -> None:
    runs: list[int] = []
    finished = anyio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise MissingResource("queue 'x' does not exist")
        finished.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(supervise, BackgroundJob("flaky", flaky), (0.01, 0.05))
        with anyio.fail_after(5):
            await finished.wait()
        tg.cancel_scope.cancel()
    assert runs == [0, 1, 2]


@dataclass
class HandlerWithBrokenJob(ScriptedHandler):
    job_runs: list[int] = field(default_factory=list)

    def background_jobs(self) -> list[BackgroundJob]:
        async def broken() -> None:
            self.job_runs.append(1)
            raise RuntimeError("a bug in a background job")

        return [BackgroundJob("broken", broken)]


async def test_the_worker_keeps_consuming_while_a_job_keeps_failing(
    provisioned: Settings, aws: AwsClients
) -> None:
    handler = HandlerWithBrokenJob()
    worker = Worker(provisioned, aws, {"inbound": handler})
    url = await aws.queues.url(provisioned.inbound_queue)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run, stop)
        with anyio.fail_after(20):
            while not handler.job_runs:
                await anyio.sleep(0.05)
            await aws.sqs.send_message(QueueUrl=url, MessageBody="ok-after-job-failure")
            while handler.done != ["ok-after-job-failure"]:
                await anyio.sleep(0.05)
        assert worker.is_ready()
        stop.set()
    assert handler.job_runs  # it failed, and the worker went on regardless


def depth(queue: str, state: str) -> Any:
    return REGISTRY.get_sample_value("mailflow_queue_depth", {"queue": queue, "state": state})


async def test_queue_depth_polling_survives_a_missing_queue(
    make_settings: Any, aws: AwsClients, provisioned: Settings
) -> None:
    """An app queue deleted under a running worker (resource checks off): logged, skipped."""
    settings = make_settings(apps={**provisioned.model_dump()["apps"], "ghost": {}})
    url = await aws.queues.url(settings.default_queue)
    await aws.sqs.send_message(QueueUrl=url, MessageBody="waiting")
    worker = Worker(settings, aws, {})
    with anyio.move_on_after(3):
        await worker.poll_queue_depths()  # runs for ever; one round is enough
    assert depth("mailflow-default", "visible") == 1.0
    assert depth("mailflow-ghost", "visible") is None
