"""Pure scheduling decision for `options.scheduledSendTime`.

SQS can hold a message for at most 15 minutes (`DelaySeconds` <= 900), so a send hours
or days ahead is held in hops: each time the message comes back early, the handler
raises `Defer(delay)` and the consumer engine re-sends the body with that delay and
deletes the original (a hop is not a delivery attempt, so the redrive policy never
counts it). The clock is a parameter, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from mailflow.errors import ValidationFailed


def as_utc(moment: datetime) -> datetime:
    """A time without zone is taken as UTC (documented), never as the worker's local time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def defer_seconds(
    scheduled: datetime | None,
    now: datetime,
    *,
    max_ahead_seconds: int,
    max_step_seconds: int,
) -> int:
    """0 = send now; n > 0 = hold the message n more seconds (n <= max_step_seconds).

    A time in the past or absent means now. A time further ahead than
    `max_ahead_seconds` is refused, as SES-side scheduling would be. The delay is rounded
    up, so a message is never handed back (and sent) before its time.
    """
    if scheduled is None:
        return 0
    remaining = (as_utc(scheduled) - as_utc(now)).total_seconds()
    if remaining <= 0:
        return 0
    if remaining > max_ahead_seconds:
        raise ValidationFailed(
            f"options.scheduledSendTime {as_utc(scheduled).isoformat()} is more than "
            f"{max_ahead_seconds // 86400} days ahead",
            code="schedule_too_far",
        )
    return max(1, min(max_step_seconds, math.ceil(remaining)))
