"""Whether each AWS service answers: the evidence `/readyz` stands on.

Every call any client makes reports here, attempt by attempt (botocore's `needs-retry`
event), so readiness costs no extra traffic while mail flows. An answer counts as
reachable whatever it says unless it is a 5xx: a `NoSuchKey`, a failed condition or a
throttle is AWS answering. No answer (refused, reset, timed out, a DNS failure) and 5xx
answers count as failures. A service is *unreachable* once it has failed without a
single success for longer than a threshold; one success ends that.

Evidence only comes with calls, and an outage stops the calls that would show its end
(messages wait in their backoff), so the worker probes a failing service on its own
(`Worker.watch_dependencies`) until it answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from mailflow.observability import metrics

log = structlog.get_logger("mailflow.reachability")

# botocore's hyphenized service ids, as the events name them
SERVICES = ("sqs", "s3", "dynamodb", "sesv2")


@dataclass
class Streak:
    """The current run of failures of one service (none: `since` is None)."""

    failures: int = 0
    since: float | None = None


class Reachability:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.streaks = {service: Streak() for service in SERVICES}
        for service in SERVICES:
            metrics.DEPENDENCY_FAILURES.labels(service).set(0)

    def record(self, service: str, answered: bool) -> None:
        streak = self.streaks.setdefault(service, Streak())
        if answered:
            if streak.since is not None:
                log.info("dependency.answering", service=service, after_failures=streak.failures)
            self.streaks[service] = Streak()
        else:
            if streak.since is None:
                streak.since = self.clock()
            streak.failures += 1
        metrics.DEPENDENCY_FAILURES.labels(service).set(self.streaks[service].failures)

    def failing(self) -> list[str]:
        """Services whose last call failed."""
        return [s for s, streak in self.streaks.items() if streak.since is not None]

    def unreachable(self, longer_than: float) -> list[str]:
        """Services that have failed, and nothing else, for longer than `longer_than` s."""
        now = self.clock()
        return [
            s
            for s, streak in self.streaks.items()
            if streak.since is not None and now - streak.since > longer_than
        ]

    def watch(self, client: Any, service: str) -> None:
        """Report every attempt of every call of `client`.

        botocore's `needs-retry` event fires after each attempt, the SDK's own retries
        included, so an outage is seen at its first failed attempt rather than after the
        SDK has given up (about 3 s later). Returning None leaves the retry decision to
        botocore; sync handlers are fine on aiobotocore's emitter.
        """

        def attempt(response: Any = None, caught_exception: Any = None, **_: Any) -> None:
            if caught_exception is not None:
                self.record(service, False)
            elif response is not None:
                self.record(service, response[0].status_code < 500)

        client.meta.events.register(f"needs-retry.{service}", attempt)
