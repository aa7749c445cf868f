"""The long-running worker: every consumer, the pipelines' background jobs, HTTP, signals.

One asyncio process; more throughput is more processes competing on the same queues
(SQS is the distribution layer), never home-made clustering. Nothing a background job
does can end the process: each runs under a supervisor that logs and restarts it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Mapping

import anyio
import structlog

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients, open_clients
from mailflow.aws.keys import KEY_ATTRIBUTE
from mailflow.aws.reachability import SERVICES
from mailflow.engine.budget import ByteBudget
from mailflow.engine.consumer import Consumer, EngineConfig
from mailflow.engine.memory import configure_allocator
from mailflow.engine.message import BackgroundJob, Direction, Handler
from mailflow.engine.preflight import check_resources
from mailflow.errors import describe
from mailflow.feedback.pipeline import SesEventsPipeline
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.observability import metrics
from mailflow.observability.http import start_http_server
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.worker")

_RESTART_PAUSE_SECONDS = (1.0, 60.0)  # first and longest pause before a job restarts
_PROBE_SECONDS = 5.0  # how often a failing AWS service is asked again
_DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def build_handlers(settings: Settings, clients: AwsClients) -> dict[Direction, Handler]:
    """The production pipeline of each enabled direction, sharing one byte budget."""
    budget = ByteBudget(settings.max_in_flight_bytes)
    handlers: dict[Direction, Handler] = {}
    if "inbound" in settings.consumers:
        handlers["inbound"] = InboundPipeline(settings, clients, budget)
    if "outbound" in settings.consumers:
        handlers["outbound"] = OutboundPipeline(settings, clients, budget=budget)
    if "events" in settings.consumers and settings.ses_events_queue:
        handlers["events"] = SesEventsPipeline(settings, clients)
    return handlers


async def supervise(
    job: BackgroundJob, pauses: tuple[float, float] = _RESTART_PAUSE_SECONDS
) -> None:
    """Run `job` for ever: an exception is logged and the job restarts after a pause."""
    first, longest = pauses
    pause = first
    while True:
        try:
            await job.run()
            pause = first  # a job that returns is simply started again
        except Exception as exc:
            log.error("worker.job_failed", job=job.name, error=describe(exc), exc_info=exc)
            pause = min(longest, pause * 2)
        await anyio.sleep(pause)


class Worker:
    """Runs one consumer per pipeline until `stop` is set, then drains and returns."""

    def __init__(
        self, settings: Settings, clients: AwsClients, handlers: Mapping[Direction, Handler]
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.handlers = dict(handlers)
        queues = {
            "inbound": settings.inbound_queue,
            "outbound": settings.outbound_queue,
            "events": settings.ses_events_queue or "",
        }
        config = EngineConfig.from_settings(settings)
        self.consumers = [
            Consumer(
                queue=queues[direction],
                handler=handler,
                clients=clients,
                dlq=settings.dlq,
                config=config,
            )
            for direction, handler in self.handlers.items()
        ]
        for service in SERVICES:  # read at each scrape: never behind /readyz
            metrics.DEPENDENCY_UP.labels(service).set_function(functools.partial(self._up, service))

    def _up(self, service: str) -> float:
        down = self.clients.reachability.unreachable(self.settings.unready_after_seconds)
        return 0.0 if service in down else 1.0

    def is_ready(self) -> bool:
        """Every consumer polls, and no AWS service has failed for longer than allowed."""
        polling = bool(self.consumers) and all(c.polling for c in self.consumers)
        down = self.clients.reachability.unreachable(self.settings.unready_after_seconds)
        return polling and not down

    def background_jobs(self) -> list[BackgroundJob]:
        jobs = [
            BackgroundJob("queue_depth", self.poll_queue_depths),
            BackgroundJob("dependencies", self.watch_dependencies),
        ]
        for handler in self.handlers.values():
            jobs.extend(handler.background_jobs())
        return jobs

    async def run(self, stop: anyio.Event) -> None:
        async with anyio.create_task_group() as background:
            for job in self.background_jobs():
                background.start_soon(supervise, job)
            async with anyio.create_task_group() as consumers:
                for consumer in self.consumers:
                    consumers.start_soon(consumer.run, stop, self.settings.shutdown_grace_seconds)
            background.cancel_scope.cancel()

    async def watch_dependencies(self) -> None:
        """Probe each failing AWS service until it answers; say when one goes down.

        The probes are calls the task role may already make (IAM is derived from the
        code); any answer below 500, a 404 included, proves the service is there.
        """
        reachability = self.clients.reachability
        down: set[str] = set()
        while True:
            for service in reachability.failing():
                with contextlib.suppress(Exception):  # the failure is recorded by the hook
                    await self._probe(service)
            now_down = set(reachability.unreachable(self.settings.unready_after_seconds))
            for service in now_down - down:
                log.error("dependency.unreachable", service=service)
            down = now_down
            await anyio.sleep(min(_PROBE_SECONDS, self.settings.unready_after_seconds / 2))

    async def _probe(self, service: str) -> None:
        settings, clients = self.settings, self.clients
        if service == "sqs":
            url = await clients.queues.url(settings.inbound_queue)
            await clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        elif service == "s3":
            probe_key = f"{settings.inbound.raw_key_prefix}mailflow-reachability-probe"
            await clients.s3.head_object(Bucket=settings.raw_bucket, Key=probe_key)
        elif service == "dynamodb":
            await clients.dynamodb.get_item(
                TableName=settings.idempotency_table,
                Key={KEY_ATTRIBUTE: {"S": keys.reachability_probe()}},
            )
        elif service == "sesv2":
            await clients.ses.get_account()

    async def poll_queue_depths(self) -> None:
        """Queue depth gauges, so dashboards and alarms see backlog from the worker too."""
        while True:
            for queue in self.settings.all_queues().values():
                await self._record_depth(queue)
            await anyio.sleep(self.settings.queue_depth_interval_seconds)

    async def _record_depth(self, queue: str) -> None:
        try:
            url = await self.clients.queues.url(queue)
            response = await self.clients.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=list(_DEPTH_ATTRIBUTES.values()),  # type: ignore[arg-type]
            )
        except Exception as exc:  # a missing queue or an outage: the next poll retries
            log.warning("queue_depth.failed", queue=queue, error=describe(exc))
            return
        values = response.get("Attributes", {})
        label = queue.rstrip("/").rsplit("/", 1)[-1]
        for state, attribute in _DEPTH_ATTRIBUTES.items():
            value = float(values.get(attribute, 0))  # type: ignore[call-overload]
            metrics.QUEUE_DEPTH.labels(label, state).set(value)


async def _stop_on_signal(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("worker.stopping", signal=signal.Signals(signum).name)
            stop.set()
            return


async def run_worker(
    settings: Settings,
    *,
    stop: anyio.Event | None = None,
    handlers: Mapping[Direction, Handler] | None = None,
) -> None:
    """`mailflow run`: check resources, serve HTTP, consume until SIGTERM/SIGINT."""
    configure_allocator()  # large mail's buffers go back to the kernel when freed
    stop = stop or anyio.Event()
    async with open_clients(settings) as clients:
        if settings.check_resources:
            await check_resources(settings, clients)
        worker = Worker(settings, clients, handlers or build_handlers(settings, clients))
        server = await start_http_server(settings.http_host, settings.http_port, worker.is_ready)
        port = server.sockets[0].getsockname()[1] if server.sockets else settings.http_port
        log.info("worker.started", consumers=list(worker.handlers), http_port=port)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, stop)
                await worker.run(stop)
                tg.cancel_scope.cancel()
        finally:
            server.close()
    log.info("worker.stopped")
