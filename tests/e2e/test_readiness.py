"""`/readyz` tells the truth about AWS: unready in an outage, ready once it answers again.

The real worker talks to the endpoint through tests/fault_proxy.py, which can cut one
service off (every connection reset, as in a partition). With
MAILFLOW_UNREADY_AFTER_SECONDS=3:
- an SQS outage (the consumers' polls fail) makes /readyz 503 while /healthz, which is
  about the process, stays 200; when SQS answers again, /readyz is 200 again;
- in a DynamoDB outage, an outbound message needing it turns the worker unready; when
  DynamoDB is back, the worker's own probe (not the message, which waits in its
  backoff) makes it ready again. The message is then sent, once.
The measured times are printed; the bounds are generous deadlines, not benchmarks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.integration.outbound.support import message, sent_mail

pytestmark = pytest.mark.slow

UNREADY_AFTER = 3.0


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # a backoff longer than the probe's interval: readiness must not wait for the message
    return make_settings(retry_base_seconds=10, retry_max_seconds=20)


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, fault_rate=0.0) as running:
        yield running


def wait_for(proc: Any, path: str, status: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.get(path)[0] == status:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{path} never answered {status} within {timeout} s")


def wait_for_down(proc: Any, service: str, timeout: float = 10) -> None:
    """The gauge and the log line both say the service is down (the log may trail)."""
    line = f'mailflow_dependency_up{{service="{service}"}} 0.0'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logged = any(
            e["event"] == "dependency.unreachable" and e.get("service") == service
            for e in proc.log_events()
        )
        if logged and line in proc.get("/metrics")[1]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{service} never reported down (gauge and log)")


async def test_readyz_follows_sqs_and_dynamodb_outages(
    provisioned: Settings,
    aws: AwsClients,
    proxy: FaultProxy,
    worker_process: Callable[..., Any],
    moto_endpoint: str,
) -> None:
    env = {"AWS_ENDPOINT_URL": proxy.url, "MAILFLOW_UNREADY_AFTER_SECONDS": str(UNREADY_AFTER)}
    with worker_process(provisioned, extra_env=env) as proc:
        proc.wait_ready()

        proxy.set_outage(frozenset({"sqs"}))
        sqs_unready = wait_for(proc, "/readyz", 503, timeout=UNREADY_AFTER + 30)
        assert proc.get("/healthz")[0] == 200
        wait_for_down(proc, "sqs")
        proxy.set_outage(frozenset())
        sqs_ready = wait_for(proc, "/readyz", 200, timeout=30)

        proxy.set_outage(frozenset({"dynamodb"}))
        outbound = await aws.queues.url(provisioned.outbound_queue)
        body = {**message(), "correlationId": "readiness-1"}
        await aws.sqs.send_message(QueueUrl=outbound, MessageBody=json.dumps(body))
        ddb_unready = wait_for(proc, "/readyz", 503, timeout=UNREADY_AFTER + 30)
        wait_for_down(proc, "dynamodb")
        proxy.set_outage(frozenset())
        ddb_ready = wait_for(proc, "/readyz", 200, timeout=30)
        deadline = time.monotonic() + 60
        while not sent_mail(moto_endpoint) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(sent_mail(moto_endpoint)) == 1
        metrics = proc.get("/metrics")[1]
        assert 'mailflow_dependency_up{service="dynamodb"} 1.0' in metrics
        assert "mailflow_oldest_in_flight_seconds" in metrics
        assert proc.stop() == 0
    events = [e["event"] for e in proc.log_events()]
    assert "dependency.unreachable" in events
    assert "dependency.answering" in events
    crashed = [e for e in proc.log_events() if e["event"] == "worker.job_failed"]
    assert crashed == [], "an outage is not a crash of a job"
    print(
        f"\nSQS cut: unready after {sqs_unready:.1f} s, ready {sqs_ready:.1f} s after it"
        f" answered; DynamoDB cut with a message needing it: unready after"
        f" {ddb_unready:.1f} s, ready {ddb_ready:.1f} s after it answered"
        f" (MAILFLOW_UNREADY_AFTER_SECONDS={UNREADY_AFTER:g})"
    )
