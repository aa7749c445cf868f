"""Which AWS service has stopped answering, and since when (the evidence of /readyz)."""

from __future__ import annotations

from types import SimpleNamespace

from botocore.hooks import HierarchicalEmitter
from prometheus_client import REGISTRY

from mailflow.aws.reachability import Reachability


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_evidence_is_no_outage() -> None:
    assert Reachability(Clock()).unreachable(longer_than=0) == []


def test_failures_count_only_once_they_outlast_the_threshold() -> None:
    clock = Clock()
    reach = Reachability(clock)
    reach.record("dynamodb", answered=False)
    clock.now += 20
    reach.record("dynamodb", answered=False)
    assert reach.failing() == ["dynamodb"]
    assert reach.unreachable(longer_than=30) == []
    clock.now += 11  # 31 s since the first failure, not since the last
    assert reach.unreachable(longer_than=30) == ["dynamodb"]
    assert (
        REGISTRY.get_sample_value(
            "mailflow_dependency_consecutive_failures", {"service": "dynamodb"}
        )
        == 2
    )


def test_one_answer_ends_the_outage() -> None:
    clock = Clock()
    reach = Reachability(clock)
    reach.record("sqs", answered=False)
    clock.now += 100
    reach.record("sqs", answered=True)
    assert reach.unreachable(longer_than=30) == []
    assert reach.failing() == []
    reach.record("sqs", answered=False)  # a new streak starts from now
    clock.now += 10
    assert reach.unreachable(longer_than=30) == []


def test_services_are_judged_apart() -> None:
    clock = Clock()
    reach = Reachability(clock)
    reach.record("s3", answered=False)
    reach.record("sesv2", answered=True)
    clock.now += 61
    assert reach.unreachable(longer_than=60) == ["s3"]


def test_the_hooks_count_a_4xx_as_an_answer_and_a_5xx_or_no_answer_as_failure() -> None:
    """The botocore events a client emits, on the emitter type a client carries."""
    clock = Clock()
    reach = Reachability(clock)
    client = SimpleNamespace(meta=SimpleNamespace(events=HierarchicalEmitter()))
    reach.watch(client, "s3")
    events = client.meta.events

    def answer(status: int) -> None:
        response = (SimpleNamespace(status_code=status), {})
        events.emit("needs-retry.s3.HeadObject", response=response, caught_exception=None)

    answer(503)
    assert reach.failing() == ["s3"]
    answer(404)  # NoSuchKey: S3 answered
    assert reach.failing() == []
    events.emit("needs-retry.s3.GetObject", response=None, caught_exception=ConnectionResetError())
    assert reach.failing() == ["s3"]
    answer(200)
    assert reach.failing() == []
