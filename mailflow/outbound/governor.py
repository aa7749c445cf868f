"""The send governor: how fast this task may call SES, and what to do when SES says no.

It owns the three reasons a send waits, so the pipeline only asks and obeys:
- the rate: a token bucket refreshed from SES `GetAccount` (its `MaxSendRate`);
- throttling: SES refused a call for the per-second rate: back off, more each time in a row;
- the daily quota: exhausted or sending paused: stop sending for a while, alarm.
Each answer is a `Deferral` (the message goes back to the queue, which is not an
attempt) or nothing (send now).

One bucket per worker task. SQS spreads messages over tasks, so each task takes an equal
share of the account's rate: `MaxSendRate * send_rate_fraction / tasks`, further capped
by `max_send_rate`, where `tasks` is how many are sending *now*: every task beats in a
roster item of the DynamoDB table every `roster_refresh_seconds`, and the same write
returns the roster, so it costs one UpdateItem per task per period and no read. One
task alone gets the whole budget; when autoscaling adds or removes tasks, every share
follows within a period (SES throttling, handled by deferral, absorbs the moment in
between). `task_count` pins the divisor instead, where the table is not wanted.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from mailflow.aws import keys
from mailflow.aws.table import Table
from mailflow.engine.message import BackgroundJob, Deferral
from mailflow.errors import describe
from mailflow.outbound import metrics
from mailflow.outbound.config import OutboundSettings

log = structlog.get_logger("mailflow.outbound")

_THROTTLE_STREAK_RESET_SECONDS = 60.0
_UNSUPPORTED = frozenset({"404", "501", "NotImplemented", "UnknownOperationException"})


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


class SendGovernor:
    """Rate, throttle and quota decisions of one worker task (all state in one place)."""

    def __init__(
        self,
        config: OutboundSettings,
        ses: Any,
        table: Table,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.ses = ses
        self.table = table
        self.clock = clock
        self.rand = rand
        self.task_id = uuid.uuid4().hex
        self.tasks = config.task_count or 1
        self.account_rate = config.default_send_rate
        self.bucket = TokenBucket.start(self._task_rate(), clock())
        self._throttle_streak = 0
        self._last_throttle = 0.0
        self._said_unsupported = False
        metrics.SEND_RATE_LIMIT.set(self.bucket.rate)
        metrics.QUOTA_EXHAUSTED.set(0)

    def background_jobs(self) -> Sequence[BackgroundJob]:
        jobs = [BackgroundJob("ses_account_refresh", self.refresh_forever)]
        if self.config.task_count is None:
            jobs.append(BackgroundJob("send_rate_roster", self.roster_forever))
        return jobs

    async def count_tasks(self) -> None:
        """Beat in the roster; take this task's share of the rate from the live count."""
        tasks = await self.table.heartbeat(
            keys.senders_roster(),
            self.task_id,
            stale_after=3 * self.config.roster_refresh_seconds,
        )
        if tasks != self.tasks:
            log.info("outbound.sending_tasks", tasks=tasks, previously=self.tasks)
            self.tasks = tasks
            self._apply_rate()
        metrics.SENDING_TASKS.set(tasks)

    async def roster_forever(self) -> None:
        """Beat every refresh interval; a missed beat keeps the last share and says so.

        In a DynamoDB outage every beat fails: one warning each, no traceback (the
        outage is reported by /readyz), and the rate share stays what it was.
        """
        while True:
            try:
                await self.count_tasks()
            except Exception as exc:
                log.warning("outbound.roster_beat_failed", error=describe(exc), tasks=self.tasks)
            await anyio.sleep(self.config.roster_refresh_seconds)

    def _apply_rate(self) -> None:
        self.bucket.set_rate(self._task_rate(), self.clock())
        metrics.SEND_RATE_LIMIT.set(self.bucket.rate)

    async def admit(self) -> Deferral | None:
        """Wait for a token; a Deferral instead when sending is paused or the wait is long."""
        waited = 0.0
        while True:
            now = self.clock()
            wait = self.bucket.take(now)
            if wait <= 0:
                return None
            if self.bucket.paused(now):
                metrics.DEFERRED.labels("quota").inc()
                return Deferral(min(900, math.ceil(wait)), "sending is paused (SES daily quota)")
            if waited + wait > self.config.max_rate_wait_seconds:
                metrics.DEFERRED.labels("rate_limited").inc()
                delay = max(1, math.ceil(wait + self.rand() * 5))
                return Deferral(delay, "send rate limit: too many messages waiting")
            await anyio.sleep(wait)
            waited += wait

    def sent(self) -> None:
        """A send went through: the next throttle starts a fresh streak."""
        self._throttle_streak = 0

    def throttled(self, code: str) -> Deferral:
        """SES refused the call for its per-second rate: back off, more for each in a row."""
        now = self.clock()
        metrics.THROTTLED.inc()
        metrics.DEFERRED.labels("throttled").inc()
        if now - self._last_throttle > _THROTTLE_STREAK_RESET_SECONDS:
            self._throttle_streak = 0
        self._throttle_streak += 1
        self._last_throttle = now
        delay = backoff_with_jitter(
            self._throttle_streak,
            base=self.config.throttle_backoff_base_seconds,
            cap=self.config.throttle_backoff_max_seconds,
            rand=self.rand,
        )
        log.warning("outbound.ses_throttled", error_code=code, delay_seconds=delay)
        return Deferral(delay, f"SES throttled ({code})")

    def quota_exhausted(self, code: str) -> Deferral:
        """SES stopped sending (daily quota, paused account): pause this task, keep the mail."""
        self._pause(self.clock(), f"SendEmail: {code}")
        metrics.DEFERRED.labels("quota").inc()
        return Deferral(self.config.quota_pause_seconds, f"SES sending stopped ({code})")

    def _pause(self, now: float, reason: str) -> None:
        self.bucket.pause(now + self.config.quota_pause_seconds)
        metrics.QUOTA_EXHAUSTED.set(1)
        log.error(
            "outbound.ses_quota_exhausted",
            reason=reason,
            paused_seconds=self.config.quota_pause_seconds,
        )

    def _task_rate(self) -> float:
        return task_send_rate(
            self.account_rate,
            fraction=self.config.send_rate_fraction,
            task_count=self.tasks,
            cap=self.config.max_send_rate,
        )

    async def refresh(self) -> None:
        """Read MaxSendRate and the daily quota from SES GetAccount; keep going on failure."""
        try:
            account = await self.ses.get_account()
        except Exception as exc:
            metrics.GET_ACCOUNT_ERRORS.inc()
            if describe(exc) in _UNSUPPORTED:
                # An emulator without GetAccount (moto): say it once, calmly.
                if not self._said_unsupported:
                    log.info("outbound.get_account_unsupported", rate=self.bucket.rate)
                    self._said_unsupported = True
                return
            log.warning("outbound.get_account_failed", error=describe(exc), rate=self.bucket.rate)
            return
        quota: Any = account.get("SendQuota", {})
        now = self.clock()
        max_rate = float(quota.get("MaxSendRate", self.config.default_send_rate) or 0)
        if max_rate > 0:
            metrics.ACCOUNT_MAX_SEND_RATE.set(max_rate)
            self.account_rate = max_rate
            self._apply_rate()
        max_24h = float(quota.get("Max24HourSend", -1))
        sent_24h = float(quota.get("SentLast24Hours", 0))
        if max_24h >= 0:
            metrics.QUOTA_REMAINING.set(max_24h - sent_24h)
        if (0 <= max_24h <= sent_24h) or account.get("SendingEnabled") is False:
            self._pause(now, "GetAccount: quota used up or sending disabled")
        elif self.bucket.paused(now):
            log.info("outbound.sending_resumed")
            self.bucket.resume()
            metrics.QUOTA_EXHAUSTED.set(0)

    async def refresh_forever(self) -> None:
        """Refresh the send rate and quota for the worker's lifetime."""
        while True:
            await self.refresh()
            await anyio.sleep(self.config.rate_refresh_seconds)
