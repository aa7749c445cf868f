"""The long-running worker: both consumers, their background jobs, HTTP, signals.

One asyncio process; more throughput is more processes competing on the same queues
(SQS is the distribution layer), never home-made clustering.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import anyio
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from mailflow.aws import AwsClients, open_clients
from mailflow.consumer import Consumer, EngineConfig
from mailflow.handler import Direction, Handler
from mailflow.observability import metrics
from mailflow.observability.http import start_http_server
from mailflow.preflight import check_resources
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.worker")

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]

_HANDLER_CLASSES: dict[Direction, str] = {
    "inbound": "mailflow.inbound.handler:InboundHandler",
    "outbound": "mailflow.outbound.handler:OutboundHandler",
}


def build_handlers(settings: Settings, clients: AwsClients) -> dict[Direction, Handler]:
    """The production handler of each enabled direction."""
    handlers: dict[Direction, Handler] = {}
    for direction in settings.consumers:
        module_name, _, class_name = _HANDLER_CLASSES[direction].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        handlers[direction] = cls(settings, clients)
    return handlers


class Worker:
    """Runs one consumer per handler until `stop` is set, then drains and returns."""

    def __init__(
        self, settings: Settings, clients: AwsClients, handlers: Mapping[Direction, Handler]
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.handlers = dict(handlers)
        queues = {"inbound": settings.inbound_queue, "outbound": settings.outbound_queue}
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

    def is_ready(self) -> bool:
        return bool(self.consumers) and all(c.polling for c in self.consumers)

    async def run(self, stop: anyio.Event) -> None:
        async with anyio.create_task_group() as background:
            background.start_soon(self._poll_queue_depths)
            for handler in self.handlers.values():
                job: BackgroundJob | None = getattr(handler, "background", None)
                if job is not None:
                    background.start_soon(job)
            async with anyio.create_task_group() as consumers:
                for consumer in self.consumers:
                    consumers.start_soon(consumer.run, stop, self.settings.shutdown_grace_seconds)
            background.cancel_scope.cancel()

    async def _poll_queue_depths(self) -> None:
        """Queue depth gauges, so dashboards and alarms see backlog from the worker too."""
        names = {
            "visible": "ApproximateNumberOfMessages",
            "in_flight": "ApproximateNumberOfMessagesNotVisible",
            "delayed": "ApproximateNumberOfMessagesDelayed",
        }
        while True:
            for queue in self.settings.all_queues().values():
                try:
                    url = await self.clients.queues.url(queue)
                    response = await self.clients.sqs.get_queue_attributes(
                        QueueUrl=url,
                        AttributeNames=list(names.values()),  # type: ignore[arg-type]
                    )
                except (ClientError, BotoCoreError, OSError) as exc:
                    log.warning("queue_depth.failed", queue=queue, error=str(exc))
                    continue
                values = response.get("Attributes", {})
                label = queue.rstrip("/").rsplit("/", 1)[-1]
                for state, attribute in names.items():
                    value = float(values.get(attribute, 0))  # type: ignore[call-overload]
                    metrics.QUEUE_DEPTH.labels(label, state).set(value)
            await anyio.sleep(self.settings.queue_depth_interval_seconds)


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
