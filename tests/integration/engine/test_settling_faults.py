"""Settling never raises: SQS failing under the engine while it deletes, defers and records.

A fault-injecting proxy sits between the consumer and the real endpoint. While faults
are on, SendMessage (deferral re-sends, failure records), DeleteMessage (both also in
their batch forms) and ChangeMessageVisibility fail at a high rate, half with an HTTP
500, half with a connection reset; botocore's own three attempts absorb most, and the rest reach the
engine. The consumer must keep running throughout, and once SQS behaves again every
message must reach its fate: handled, deferred then handled, or recorded as a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anyio
import pytest

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.ops.provision import provision
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.helpers import queue_count
from tests.integration.engine.test_consumer import ScriptedHandler, dlq_records, make_consumer

# The engine batches its sends and deletes across concurrent messages (mailflow.aws.outbox):
# the batch forms fail as their single forms do.
SETTLING_ACTIONS = frozenset(
    {
        "SendMessage",
        "SendMessageBatch",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
    }
)


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, fault_rate=0.0, seed=11) as running:
        yield running


async def test_the_consumer_survives_sqs_failing_while_it_settles(
    make_settings: Callable[..., Settings], proxy: FaultProxy
) -> None:
    settings = make_settings(aws_endpoint_url=proxy.url)
    ok = [f"ok-{i}" for i in range(12)]
    deferred = [f"defer-{i}" for i in range(16)]
    poison = [f"poison-{i}" for i in range(4)]
    retried = [f"fail-once-{i}" for i in range(4)]
    async with open_clients(settings) as aws:
        await provision(settings, aws)
        url = await aws.queues.url(settings.inbound_queue)
        for body in ok + deferred + poison + retried:
            await aws.sqs.send_message(QueueUrl=url, MessageBody=body)
        handler = ScriptedHandler()
        consumer = make_consumer(settings, aws, handler)
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run, stop, 10.0)
            proxy.set_sqs_faults(0.6, SETTLING_ACTIONS)
            with anyio.fail_after(60):
                while len(set(handler.seen)) < len(ok + deferred + poison + retried):
                    assert consumer.polling or not handler.seen
                    await anyio.sleep(0.1)
            proxy.set_sqs_faults(0.0)
            with anyio.fail_after(90):  # every message settles once SQS behaves
                while await queue_count(aws.sqs, url) > 0:
                    assert consumer.polling
                    await anyio.sleep(0.2)
            stop.set()
        records = await dlq_records(settings, aws)
    assert_every_fault_kind_happened(proxy)
    assert set(handler.done) == set(ok + deferred + retried)
    assert {r.body for r in records} == set(poison)
    assert {body for body, _ in handler.failures} == set(poison)


def assert_every_fault_kind_happened(
    proxy: FaultProxy, actions: frozenset[str] = SETTLING_ACTIONS
) -> None:
    faults = proxy.stats.sqs_faults
    for action in actions - {a + "Batch" for a in actions}:
        forms = (action, action + "Batch")
        hits = sum(faults[f"{form}/reset"] + faults[f"{form}/500"] for form in forms)
        assert hits > 0, (action, faults)
    assert sum(v for k, v in faults.items() if k.endswith("/reset")) > 0
    assert sum(v for k, v in faults.items() if k.endswith("/500")) > 0


async def test_a_failed_deferral_resend_falls_back_to_holding_the_message(
    make_settings: Callable[..., Settings], proxy: FaultProxy, aws: AwsClients
) -> None:
    """SendMessage always fails: the deferred message is held by visibility instead."""
    settings = make_settings(aws_endpoint_url=proxy.url)
    async with open_clients(settings) as clients:
        url = await clients.queues.url(settings.inbound_queue)
        await clients.sqs.send_message(QueueUrl=url, MessageBody="defer-alone")
        proxy.set_sqs_faults(1.0, frozenset({"SendMessage"}))
        handler = ScriptedHandler()
        consumer = make_consumer(settings, clients, handler)
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run, stop, 5.0)
            with anyio.fail_after(30):
                while handler.done != ["defer-alone"]:
                    await anyio.sleep(0.05)
            stop.set()
    # Seen twice: the deferral, then the same message back after its visibility lapsed.
    assert handler.seen == ["defer-alone", "defer-alone"]
    assert proxy.stats.sqs_faults["SendMessage/reset"] + proxy.stats.sqs_faults["SendMessage/500"]
