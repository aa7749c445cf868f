"""The pure side of `mailflow redrive`: filters, time windows, selection, the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailflow.contracts.failure import NOT_REPLAYABLE, FailureRecord, is_replayable
from mailflow.engine.consumer import build_failure_record
from mailflow.engine.message import SqsMessage
from mailflow.errors import PolicyRejected, ValidationFailed
from mailflow.ops.redrive import (
    REASON_WIDTH,
    RedriveReport,
    Selection,
    build_selection,
    decide,
    format_table,
    parse_instant,
    parse_record,
    record_app,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def record(**overrides: Any) -> FailureRecord:
    values: dict[str, Any] = {
        "direction": "outbound",
        "source_queue": "mailflow-outbound",
        "sqs_message_id": "m-1",
        "error_code": "sender_not_allowed",
        "reason": "app 'app1' may not send as x@example.net",
        "retryable": False,
        "attempts": 1,
        "last_attempt_at": NOW - timedelta(hours=1),
        "app": "app1",
        "body": '{"source": "app1"}',
    }
    values.update(overrides)
    return FailureRecord(**values)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_relative_times_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_instant(text, NOW) == NOW - ago


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-03T09:15:01Z", datetime(2026, 3, 3, 9, 15, 1, tzinfo=UTC)),
        ("2026-03-03T10:15:01+01:00", datetime(2026, 3, 3, 9, 15, 1, tzinfo=UTC)),
        ("2026-03-03T09:15:01.204Z", datetime(2026, 3, 3, 9, 15, 1, 204000, tzinfo=UTC)),
        # No offset: UTC, the zone of every time mailflow writes.
        ("2026-03-03T09:15", datetime(2026, 3, 3, 9, 15, tzinfo=UTC)),
        ("2026-03-03", datetime(2026, 3, 3, tzinfo=UTC)),
    ],
)
def test_iso_instants_are_read_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_instant(text, NOW)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2x", "-2h", "2 hours", "", "h"])
def test_a_time_that_is_neither_is_refused_with_both_forms_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"ISO-8601.*\(30m, 2h, 3d, 1w\)"):
        parse_instant(text, NOW)


def test_a_bad_flag_is_named_and_an_empty_window_refused() -> None:
    common: dict[str, Any] = {"app": None, "codes": None, "direction": None, "now": NOW}
    with pytest.raises(ValueError, match=r"^--until: 'soon'"):
        build_selection(since="2h", until="soon", **common)
    with pytest.raises(ValueError, match=r"--since .* is not before --until"):
        build_selection(since="1h", until="2h", **common)
    selection = build_selection(since="3d", until="2026-03-10T11:00:00Z", **common)
    assert (selection.since, selection.until) == (NOW - timedelta(days=3), NOW - timedelta(hours=1))


def test_no_filter_selects_everything() -> None:
    assert Selection().matches(record())
    assert Selection().matches(record(direction="inbound", app=None, error_code="x"))


def test_every_filter_must_match() -> None:
    selection = Selection(
        app="app1", codes=frozenset({"sender_not_allowed", "unknown_app"}), direction="outbound"
    )
    assert selection.matches(record())
    assert selection.matches(record(error_code="unknown_app"))
    assert not selection.matches(record(app="app2"))
    assert not selection.matches(record(error_code="validation_error"))
    assert not selection.matches(record(direction="inbound"))


def test_codes_match_exactly() -> None:
    selection = Selection(codes=frozenset({"access_denied"}))
    assert not selection.matches(record(error_code="retries_exhausted:access_denied"))
    assert Selection(codes=frozenset({"retries_exhausted:access_denied"})).matches(
        record(error_code="retries_exhausted:access_denied")
    )


def test_the_window_is_half_open_on_last_attempt() -> None:
    start, end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    window = Selection(since=start, until=end)
    assert window.matches(record(last_attempt_at=start))
    assert not window.matches(record(last_attempt_at=end))
    assert not window.matches(record(last_attempt_at=start - timedelta(seconds=1)))
    # The first attempt does not count, only the last.
    assert not window.matches(record(first_attempt_at=start, last_attempt_at=NOW))


def test_a_record_from_an_unconfigured_app_is_found_by_the_app_its_body_names() -> None:
    """`unknown_app` names nobody in `app` (no queue to tell): the body's source counts."""
    unknown = record(app=None, error_code="unknown_app", body=json.dumps({"source": "app3"}))
    assert record_app(unknown) == "app3"
    assert Selection(app="app3").matches(unknown)
    assert not Selection(app="app1").matches(unknown)
    # Only outbound bodies name an app; anything else without `app` has none.
    assert record_app(record(app=None, direction="inbound", body='{"source": "app3"}')) is None
    assert record_app(record(app=None, body="not json")) is None
    assert record_app(record(app=None, body='["app3"]')) is None
    assert record_app(record(app="app1", body='{"source": "app3"}')) == "app1"


def test_decisions() -> None:
    everything = Selection()
    assert decide(None, everything, force=False) == "unparseable"
    assert decide(None, everything, force=True) == "unparseable"
    assert decide(record(app="app2"), Selection(app="app1"), force=True) == "leave"
    assert decide(record(), everything, force=False) == "move"
    virus = record(direction="inbound", error_code="virus_detected", replayable=False)
    assert decide(virus, everything, force=False) == "skip"
    assert decide(virus, everything, force=True) == "move"
    # Not selected wins over not replayable: it is left, not counted as skipped.
    assert decide(virus, Selection(direction="outbound"), force=False) == "leave"


def test_a_record_written_before_the_mark_existed_is_judged_by_its_code() -> None:
    legacy = json.loads(record(error_code="writer_not_allowed", app=None).to_wire())
    del legacy["replayable"]
    parsed = parse_record(json.dumps(legacy))
    assert parsed is not None
    assert parsed.replayable  # the wire default
    assert decide(parsed, Selection(), force=False) == "skip"


def test_what_is_not_a_record_does_not_parse() -> None:
    assert parse_record("not json") is None
    assert parse_record('{"type": "mailflow.failure"}') is None
    assert parse_record(json.dumps({"version": "1.0", "type": "email.sent"})) is None
    assert parse_record(record().to_wire()) == record()


def test_verdicts_and_forgeries_are_not_replayable_but_fixable_errors_are() -> None:
    for code in (
        "virus_detected",
        "spam_detected",
        "spf_failed",
        "dkim_failed",
        "dmarc_failed",
        "writer_not_allowed",
    ):
        assert not is_replayable(code), code
    for code in (
        "validation_error",
        "invalid_message",
        "unknown_app",
        "sender_not_allowed",
        "attachment_forbidden",
        "raw_email_missing",
        "rate_limited",
        "untrusted_notification",
        "retries_exhausted:access_denied",
        "retries_exhausted:missing_resource",
    ):
        assert is_replayable(code), code
    assert all(reason.strip() for reason in NOT_REPLAYABLE.values())


def inbound_message(body: str = '{"Records": []}') -> SqsMessage:
    return SqsMessage(
        queue="mailflow-inbound",
        queue_url="http://unused",
        message_id="sqs-1",
        receipt_handle="unused",
        body=body,
        attributes={"ApproximateReceiveCount": "1"},
    )


def test_the_mark_is_written_with_the_record() -> None:
    virus = PolicyRejected("email rejected: SES virus scan: FAIL", code="virus_detected")
    written = json.loads(build_failure_record("inbound", inbound_message(), virus).to_wire())
    assert written["errorCode"] == "virus_detected"
    assert written["replayable"] is False
    unknown = ValidationFailed("source 'app3' is not a configured app", code="unknown_app")
    written = json.loads(build_failure_record("outbound", inbound_message(), unknown).to_wire())
    assert written["replayable"] is True
    exhausted = build_failure_record("inbound", inbound_message(), RuntimeError("boom"))
    assert (exhausted.error_code, exhausted.replayable) == (
        "retries_exhausted:unexpected_error",
        True,
    )


def test_the_table_has_one_aligned_row_per_record_and_cuts_long_reasons() -> None:
    long_reason = "sender domain example.net is not in the allowlist " * 5
    lines = format_table(
        [
            record(sqs_message_id="short", reason="x\ny"),
            record(
                sqs_message_id="a-much-longer-message-id",
                app=None,
                direction="inbound",
                source_queue="mailflow-inbound",
                reason=long_reason,
            ),
        ]
    )
    assert lines[0].split() == [
        "sqsMessageId",
        "direction",
        "app",
        "errorCode",
        "lastAttemptAt",
        "sourceQueue",
        "reason",
    ]
    assert lines[1].split() == [
        "short",
        "outbound",
        "app1",
        "sender_not_allowed",
        "2026-03-10T11:00:00Z",
        "mailflow-outbound",
        "x",
        "y",
    ]
    assert lines[2].split()[:3] == ["a-much-longer-message-id", "inbound", "-"]
    reason = lines[2][lines[0].index("reason") :]
    assert len(reason) == REASON_WIDTH
    assert reason.endswith("...")
    assert long_reason.startswith(reason[:-3])
    # Aligned: every column starts where its header does.
    start = lines[0].index("errorCode")
    assert lines[1][start:].startswith("sender_not_allowed")
    assert lines[2][start:].startswith("sender_not_allowed")
    (header,) = format_table([])
    assert header.split() == lines[0].split()


def test_the_summary_counts_each_fate_and_says_what_to_do() -> None:
    report = RedriveReport(dlq="mailflow-dlq", dry_run=True, limit=2)
    report.moved.append(record())
    report.skipped, report.left, report.unparseable = 1, 3, 2
    lines = report.summary()
    assert lines[0] == (
        "mailflow-dlq: would move 1, skipped (not replayable) 1,"
        " left (not matching) 3, unparseable 2"
    )
    assert "--force" in lines[1]
    assert not any("--limit" in line for line in lines)
    report.dry_run = False
    report.moved.append(record())
    report.skipped = 0
    lines = report.summary()
    assert lines[0].startswith("mailflow-dlq: moved 2, skipped (not replayable) 0,")
    assert lines[1] == "stopped at --limit 2: records not yet looked at stay in mailflow-dlq"
