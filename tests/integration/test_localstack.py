"""The same engine path against LocalStack, where a Docker engine exists."""

from __future__ import annotations

import anyio
import pytest

from mailflow.aws.clients import open_clients
from mailflow.engine.consumer import Consumer
from mailflow.engine.preflight import check_resources
from mailflow.ops.provision import provision
from mailflow.settings import load_settings
from tests.integration.engine.test_consumer import FAST, ScriptedHandler, run_until

pytestmark = pytest.mark.docker


async def test_provision_and_consume_on_localstack(localstack_endpoint: str) -> None:
    settings = load_settings(
        domains="example.com", apps="app1", aws_endpoint_url=localstack_endpoint
    )
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
