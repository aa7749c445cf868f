"""Several large emails at once never hold more bytes than MAILFLOW_MAX_IN_FLIGHT_BYTES.

The real consumer (ten at a time) and inbound pipeline against the endpoint: six
1.2 MB emails arrive together with a 3 MB budget, so at most two may be downloaded,
parsed and delivered at once; the rest wait their turn and still arrive.
"""

from __future__ import annotations

import base64
import os

import anyio
from prometheus_client import REGISTRY

from mailflow.aws.clients import AwsClients
from mailflow.engine.budget import ByteBudget
from mailflow.engine.consumer import Consumer, EngineConfig
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.helpers import queue_count

MB = 1_000_000


def large_email(n: int) -> bytes:
    blob = base64.encodebytes(os.urandom(880_000)).replace(b"\n", b"\r\n")
    return (
        (
            f"From: a@sender.test\r\nTo: _app1@example.com\r\nSubject: big {n}\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="d.bin"\r\n\r\n'
        ).encode()
        + blob
        + b"--b--\r\n"
    )


async def test_the_budget_bounds_bytes_held_at_once(provisioned: Settings, aws: AwsClients) -> None:
    for n in range(6):
        await inject(provisioned, aws, large_email(n), ["_app1@example.com"])
    budget = ByteBudget(3 * MB)
    waits_before = REGISTRY.get_sample_value("mailflow_budget_waits_total") or 0.0
    consumer = Consumer(
        queue=provisioned.inbound_queue,
        handler=InboundPipeline(provisioned, aws, budget),
        clients=aws,
        dlq=provisioned.dlq,
        config=EngineConfig(concurrency=10, wait_time_seconds=1, visibility_timeout_seconds=60),
    )
    app1 = await aws.queues.url(provisioned.app_queue("app1"))
    peak = 0
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, 10.0)
        with anyio.fail_after(60):
            while await queue_count(aws.sqs, app1) < 6:
                peak = max(peak, budget.used)
                await anyio.sleep(0.005)
        stop.set()
    assert 1.2 * MB < peak <= 3 * MB  # two at a time at most, and more than one did run
    assert budget.used == 0
    assert (REGISTRY.get_sample_value("mailflow_budget_waits_total") or 0.0) > waits_before
