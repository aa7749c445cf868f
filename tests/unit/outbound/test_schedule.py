"""Scheduling decisions with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailflow.errors import ValidationFailed
from mailflow.outbound.schedule import defer_seconds

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = 86400


def decide(scheduled: datetime | None, now: datetime = NOW, step: int = 900) -> int:
    return defer_seconds(scheduled, now, max_ahead_seconds=14 * DAY, max_step_seconds=step)


def test_absent_or_past_means_now() -> None:
    assert decide(None) == 0
    assert decide(NOW) == 0
    assert decide(NOW - timedelta(days=3)) == 0


def test_near_future_waits_exactly_rounded_up() -> None:
    assert decide(NOW + timedelta(seconds=30)) == 30
    assert decide(NOW + timedelta(seconds=0.2)) == 1  # never early


def test_far_future_is_held_in_steps_of_at_most_15_minutes() -> None:
    assert decide(NOW + timedelta(minutes=40)) == 900
    assert decide(NOW + timedelta(days=14)) == 900
    assert decide(NOW + timedelta(minutes=40), step=60) == 60


def test_more_than_14_days_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as info:
        decide(NOW + timedelta(days=14, seconds=1))
    assert info.value.code == "schedule_too_far"


def test_naive_time_is_utc_and_zones_are_honoured() -> None:
    assert decide(datetime(2026, 1, 1, 12, 10)) == 600
    plus_two = timezone(timedelta(hours=2))
    assert decide(datetime(2026, 1, 1, 14, 5, tzinfo=plus_two)) == 300


def test_walking_the_clock_sends_at_the_right_time_and_never_before() -> None:
    """Simulate hops: each hold ends, time advances by the delay, decide again."""
    target = NOW + timedelta(minutes=40, seconds=7)
    now, hops = NOW, 0
    while (delay := decide(target, now)) > 0:
        assert now < target
        now += timedelta(seconds=delay)
        hops += 1
    assert target <= now < target + timedelta(seconds=1)
    assert hops == 3  # 900 + 900 + 607
