"""A token bucket with an injected clock, plus the pure arithmetic of SES rate sharing.

One bucket per worker task. SQS spreads messages over tasks, so each task takes an equal
share of the account's rate: `MaxSendRate * send_rate_fraction / task_count`, further
capped by `max_send_rate`. With autoscaling, set `task_count` to the maximum task count
(conservative: fewer tasks then send below the account rate, never above it); SES
throttling is still handled (deferral with backoff) if the estimate is wrong.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


def task_send_rate(
    account_rate: float, *, fraction: float, task_count: int, cap: float | None
) -> float:
    """Messages/s this task may send (never 0: a floor keeps the worker moving)."""
    rate = account_rate * fraction / max(1, task_count)
    if cap is not None:
        rate = min(rate, cap)
    return max(rate, 0.01)


@dataclass
class TokenBucket:
    """Tokens accrue at `rate`/s up to `capacity`; one token per email.

    `take(now)` either takes a token (returns 0) or says how long until one is due.
    `pause(until)` stops all sending (daily quota exhausted) without losing the rate.
    """

    rate: float
    capacity: float
    tokens: float
    updated_at: float
    paused_until: float = 0.0

    @classmethod
    def start(cls, rate: float, now: float) -> TokenBucket:
        capacity = max(1.0, rate)
        return cls(rate=rate, capacity=capacity, tokens=capacity, updated_at=now)

    def _refill(self, now: float) -> None:
        if now > self.updated_at:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate)
            self.updated_at = now

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = min(self.tokens, self.capacity)

    def paused(self, now: float) -> bool:
        return now < self.paused_until

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def resume(self) -> None:
        self.paused_until = 0.0

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else seconds to wait before trying again."""
        if self.paused(now):
            return self.paused_until - now
        self._refill(now)
        # The epsilon absorbs float rounding: after waiting exactly the returned time the
        # bucket may hold 0.9999999999 tokens, which must count as one.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate


def backoff_with_jitter(
    streak: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> int:
    """Exponential backoff with equal jitter, whole seconds, at least 1.

    `streak` counts recent consecutive throttles seen by this task (1 for the first).
    """
    ceiling = min(cap, base * 2 ** max(0, streak - 1))
    return max(1, int(ceiling / 2 + rand() * ceiling / 2 + 0.5))
