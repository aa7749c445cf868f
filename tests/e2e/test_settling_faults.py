"""The real worker keeps running while SQS fails under it, and every message reaches its fate.

The review that found the bug: with ~30% of SQS SendMessage / DeleteMessage /
ChangeMessageVisibility calls failing (resets and 500s) while scheduled outbound mail
was deferring, the worker died at the deferral's re-send. Here the worker talks to the
endpoint through tests/fault_proxy.py, which fails half of those calls for a while;
scheduled outbound mail hops through SQS (one-second deferral steps) and inbound mail
arrives meanwhile. Afterwards: the process never exited, each outbound email was sent
exactly once, each inbound email reached its app (a repeat only with the same
`messageId`), and SIGTERM still ends it cleanly.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.helpers import queue_count, receive_all
from tests.integration.engine.test_settling_faults import (
    SETTLING_ACTIONS,
    assert_every_fault_kind_happened,
)
from tests.integration.outbound.support import message, sent_mail
from tests.unit.inbound.conftest import corpus_bytes

pytestmark = pytest.mark.slow

OUTBOUND = 20
INBOUND = 10


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        visibility_timeout_seconds=10,
        retry_base_seconds=1,
        retry_max_seconds=3,
        outbound={"default_send_rate": 500.0, "max_defer_step_seconds": 1},
    )


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, fault_rate=0.0, seed=20261128) as running:
        yield running


async def test_worker_survives_sqs_faults_while_deferring_and_loses_nothing(
    provisioned: Settings,
    aws: AwsClients,
    proxy: FaultProxy,
    worker_process: Callable[..., Any],
    moto_endpoint: str,
) -> None:
    outbound = await aws.queues.url(provisioned.outbound_queue)
    inbound = await aws.queues.url(provisioned.inbound_queue)
    with worker_process(provisioned, extra_env={"AWS_ENDPOINT_URL": proxy.url}) as proc:
        proc.wait_ready()
        proxy.set_sqs_faults(0.5, SETTLING_ACTIONS)
        at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
        for i in range(OUTBOUND):
            body = message(subject=f"scheduled {i:02d}")
            body["correlationId"] = f"scheduled-{i:02d}"
            body["options"] = {"scheduledSendTime": at}
            await aws.sqs.send_message(QueueUrl=outbound, MessageBody=json.dumps(body))
        for _ in range(INBOUND):
            await inject(provisioned, aws, corpus_bytes("plain.eml"), ["_app1@example.com"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.proc.poll() is None, f"worker died:\n{proc.logs()[-3000:]}"
            await anyio.sleep(0.5)
        proxy.set_sqs_faults(0.0)
        with anyio.fail_after(120):
            while (
                len(sent_mail(moto_endpoint)) < OUTBOUND
                or await queue_count(aws.sqs, outbound)
                or await queue_count(aws.sqs, inbound)
            ):
                assert proc.proc.poll() is None, f"worker died:\n{proc.logs()[-3000:]}"
                await anyio.sleep(0.5)
        assert proc.stop() == 0
    app1 = await aws.queues.url(provisioned.app_queue("app1"))
    waiting = await queue_count(aws.sqs, app1)
    bodies = [json.loads(b) for b in await receive_all(aws.sqs, app1, expect=waiting)]
    assert len(bodies) == waiting
    # No message here needs a visibility change (that path is the engine test's); the
    # deferral re-sends and deletes are where the worker used to die.
    assert_every_fault_kind_happened(proxy, frozenset({"SendMessage", "DeleteMessage"}))
    subjects = Counter(str(m.parsed["Subject"]) for m in sent_mail(moto_endpoint))
    assert subjects == Counter({f"scheduled {i:02d}": 1 for i in range(OUTBOUND)})
    received = [b for b in bodies if b.get("type") == "email.received"]
    # Every email arrived; a repeat (a delete lost to a fault) carries the same messageId.
    assert len({b["metadata"]["sesMessageId"] for b in received}) == INBOUND
    assert len({b["messageId"] for b in received}) == INBOUND
    sent_events = {b["correlationId"] for b in bodies if b.get("type") == "email.sent"}
    assert sent_events == {f"scheduled-{i:02d}" for i in range(OUTBOUND)}
