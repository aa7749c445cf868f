"""The same engine path against LocalStack (LOCALSTACK_URL; skipped with the reason when
none answers). The engine, inbound and outbound suites run there too: tests/conftest.py
parametrizes them over moto and LocalStack."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from mailflow.aws.clients import open_clients
from mailflow.engine.consumer import Consumer
from mailflow.engine.preflight import check_resources
from mailflow.ops.provision import provision
from mailflow.settings import Settings
from tests.integration.engine.test_consumer import FAST, ScriptedHandler, run_until


@pytest.mark.parametrize("aws_target", ["localstack"], indirect=True, scope="session")
async def test_provision_and_consume_on_localstack(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(domains="example.com", apps="app1")
    async with open_clients(settings) as clients:
        await provision(settings, clients)
        await check_resources(settings, clients)
        url = await clients.queues.url(settings.inbound_queue)
        await clients.sqs.send_message(QueueUrl=url, MessageBody="ok")
        handler = ScriptedHandler()
        consumer = Consumer(
            queue=settings.inbound_queue,
            handler=handler,
            clients=clients,
            dlq=settings.dlq,
            config=FAST,
        )
        await run_until(consumer, lambda: handler.done == ["ok"])
        await anyio.sleep(0)
