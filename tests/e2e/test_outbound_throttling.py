"""200 messages through the real worker while SES throttles 30% of SendEmail calls.

The worker talks to AWS through tests/fault_proxy.py, which answers a seeded 30% of
SendEmail calls with `TooManyRequestsException` (HTTP 429) without forwarding them, so a
faulted call certainly sent nothing. botocore's own retries absorb most throttles; the
rest reach the handler, which defers the message with backoff and jitter (not an
attempt: it cannot end in the DLQ). Outcome checked on what SES accepted: 200 distinct
emails, none twice, and one `email.sent` event each.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.helpers import queue_count, receive_all
from tests.integration.outbound.support import message, sent_mail

pytestmark = pytest.mark.slow

COUNT = 200


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        consumers=["outbound"],
        concurrency=10,
        outbound={
            "default_send_rate": 500.0,
            "throttle_backoff_base_seconds": 1.0,
            "throttle_backoff_max_seconds": 4,
        },
    )


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, fault_rate=0.3, seed=20261127) as running:
        yield running


async def test_200_messages_sent_exactly_once_under_30_percent_throttling(
    provisioned: Settings,
    aws: AwsClients,
    proxy: FaultProxy,
    worker_process: Callable[..., Any],
    moto_endpoint: str,
) -> None:
    outbound = await aws.queues.url(provisioned.outbound_queue)
    for start in range(0, COUNT, 10):
        entries = []
        for i in range(start, start + 10):
            body = message(subject=f"bulk {i:03d}")
            body["correlationId"] = f"bulk-{i:03d}"
            entries.append({"Id": str(i), "MessageBody": json.dumps(body)})
        await aws.sqs.send_message_batch(QueueUrl=outbound, Entries=entries)

    with worker_process(provisioned, extra_env={"AWS_ENDPOINT_URL": proxy.url}) as proc:
        proc.wait_ready()
        deadline = time.monotonic() + 240
        while len(sent_mail(moto_endpoint)) < COUNT and time.monotonic() < deadline:
            await anyio.sleep(1.0)
        # Every message settled and deleted: nothing is left that could send twice.
        while await queue_count(aws.sqs, outbound) and time.monotonic() < deadline:
            await anyio.sleep(0.5)
        deferred = sum(1 for e in proc.log_events() if e.get("event") == "outbound.ses_throttled")

    mails = sent_mail(moto_endpoint)
    subjects = Counter(str(m.parsed["Subject"]) for m in mails)
    duplicates = {s: n for s, n in subjects.items() if n > 1}
    assert not duplicates, f"sent more than once: {duplicates}"
    assert set(subjects) == {f"bulk {i:03d}" for i in range(COUNT)}
    assert len(mails) == COUNT

    app_queue = await aws.queues.url(provisioned.app_queue("app1"))
    events = [
        json.loads(b) for b in await receive_all(aws.sqs, app_queue, expect=COUNT, timeout=60)
    ]
    assert sorted(e["correlationId"] for e in events if e["type"] == "email.sent") == [
        f"bulk-{i:03d}" for i in range(COUNT)
    ]
    assert await queue_count(aws.sqs, outbound) == 0
    dlq = await aws.queues.url(provisioned.dlq)
    assert await queue_count(aws.sqs, dlq) == 0

    stats = proxy.stats
    assert 0.2 <= stats.sends_faulted / stats.sends_seen <= 0.4, stats
    assert stats.sends_forwarded == COUNT  # every forwarded call sent exactly one email
    print(
        f"\nthrottling: {stats.sends_seen} SendEmail calls, {stats.sends_faulted} throttled,"
        f" {stats.sends_forwarded} forwarded; {deferred} deferrals by the handler"
    )
