"""Token bucket and rate sharing, with the clock as a plain number."""

from __future__ import annotations

import pytest

from mailflow.outbound.governor import TokenBucket, backoff_with_jitter, task_send_rate


def test_rate_share_across_tasks_with_cap() -> None:
    assert task_send_rate(14, fraction=0.8, task_count=1, cap=None) == pytest.approx(11.2)
    assert task_send_rate(14, fraction=0.8, task_count=4, cap=None) == pytest.approx(2.8)
    assert task_send_rate(14, fraction=0.8, task_count=1, cap=5) == 5
    assert task_send_rate(1, fraction=0.5, task_count=1000, cap=None) == 0.01  # floor


def test_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket.start(rate=2, now=0)
    assert bucket.take(0) == 0
    assert bucket.take(0) == 0
    assert bucket.take(0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0
    sent, t = 0, 1.0
    while t < 11.0:  # 10 s at 2/s
        if bucket.take(t) == 0:
            sent += 1
        t += 0.01
    assert 19 <= sent <= 21


def test_bucket_never_exceeds_rate_over_any_window() -> None:
    bucket = TokenBucket.start(rate=5, now=0)
    times = []
    t = 0.0
    while len(times) < 200:
        wait = bucket.take(t)
        if wait == 0:
            times.append(t)
        else:
            t += wait
    for i in range(len(times) - 6):
        # capacity 5 + rate 5/s: no more than 10 sends in any 1 s window
        window = [x for x in times if times[i] <= x < times[i] + 1]
        assert len(window) <= 10


def test_pause_blocks_until_its_end_and_resume() -> None:
    bucket = TokenBucket.start(rate=10, now=0)
    bucket.pause(until=100)
    assert bucket.paused(50)
    assert bucket.take(50) == 50
    assert bucket.take(100) == 0
    bucket.pause(until=200)
    bucket.resume()
    assert bucket.take(150) == 0


def test_set_rate_applies_and_clamps_tokens() -> None:
    bucket = TokenBucket.start(rate=100, now=0)
    bucket.set_rate(1, now=0)
    assert bucket.capacity == 1
    assert bucket.tokens == 1
    assert bucket.take(0) == 0
    assert bucket.take(0) == pytest.approx(1.0)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    assert backoff_with_jitter(1, base=2, cap=300, rand=lambda: 0.0) == 1
    assert backoff_with_jitter(1, base=2, cap=300, rand=lambda: 1.0) == 2
    assert backoff_with_jitter(5, base=2, cap=300, rand=lambda: 0.0) == 16
    assert backoff_with_jitter(20, base=2, cap=300, rand=lambda: 1.0) == 300
    values = {backoff_with_jitter(4, base=2, cap=300) for _ in range(200)}
    assert min(values) >= 8
    assert max(values) <= 16
    assert len(values) > 3
