"""The tasks sending *now* share the SES rate: one alone gets all of it (issue 10).

Two pipelines stand for two worker tasks on one table, with one clock the test moves.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from mailflow.aws.clients import AwsClients
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_shares_follow_the_tasks_that_are_sending(
    make_settings: Callable[..., Settings], aws: AwsClients, provisioned: Settings
) -> None:
    settings = make_settings(
        outbound={
            "default_send_rate": 12.0,
            "send_rate_fraction": 1.0,
            "roster_refresh_seconds": 15,
        }
    )
    clock = Clock()
    first = OutboundPipeline(settings, aws, clock=clock).governor
    assert [job.name for job in first.background_jobs()] == [
        "ses_account_refresh",
        "send_rate_roster",
    ]
    await first.count_tasks()
    assert first.bucket.rate == pytest.approx(12.0)  # alone: the whole budget

    second = OutboundPipeline(settings, aws, clock=clock).governor
    await second.count_tasks()
    await first.count_tasks()
    assert first.bucket.rate == pytest.approx(6.0)
    assert second.bucket.rate == pytest.approx(6.0)
    assert REGISTRY.get_sample_value("mailflow_ses_sending_tasks") == 2

    clock.now += 50  # the second task stopped beating three periods ago (scaled in)
    await first.count_tasks()
    assert first.tasks == 1
    assert first.bucket.rate == pytest.approx(12.0)


async def test_a_pinned_task_count_needs_no_roster(
    make_settings: Callable[..., Settings], aws: AwsClients, provisioned: Settings
) -> None:
    settings = make_settings(
        outbound={"default_send_rate": 12.0, "send_rate_fraction": 1.0, "task_count": 3}
    )
    governor = OutboundPipeline(settings, aws).governor
    assert [job.name for job in governor.background_jobs()] == ["ses_account_refresh"]
    assert governor.bucket.rate == pytest.approx(4.0)
