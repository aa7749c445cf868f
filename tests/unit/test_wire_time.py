"""Every time mailflow writes has one form (the README's): ISO 8601, UTC as Z."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from mailflow.contracts.base import wire_time
from mailflow.contracts.outbound import EmailFailedEvent


def test_utc_is_z_with_milliseconds_when_there_are_any() -> None:
    assert (
        wire_time(datetime(2026, 3, 3, 9, 15, 1, 204_999, tzinfo=UTC)) == "2026-03-03T09:15:01.204Z"
    )
    assert wire_time(datetime(2026, 3, 4, 9, 15, 1, tzinfo=UTC)) == "2026-03-04T09:15:01Z"


def test_a_senders_zone_keeps_its_offset() -> None:
    plus_one = timezone(timedelta(hours=1))
    assert wire_time(datetime(2026, 3, 3, 10, 15, tzinfo=plus_one)) == "2026-03-03T10:15:00+01:00"


def test_events_carry_the_form_and_read_back() -> None:
    at = datetime(2025, 10, 31, 12, 34, 57, 120_000, tzinfo=UTC)
    event = EmailFailedEvent(event_id="e", source="app1", error_code="x", reason="r", failed_at=at)
    assert json.loads(event.to_wire())["failedAt"] == "2025-10-31T12:34:57.120Z"
    assert EmailFailedEvent.model_validate_json(event.to_wire()).failed_at == at
