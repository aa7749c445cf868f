"""An AWS outage holds a message without spending its attempts, for a bounded time."""

from __future__ import annotations

from mailflow.engine.consumer import OUTAGE_ATTRIBUTE, EngineConfig, outage_deferral
from mailflow.engine.message import SqsMessage

CONFIG = EngineConfig(retry_base_seconds=5, outage_patience_seconds=3600)
NOW = 1_800_000_000.0


def message(attribute: str | None = None, receive_count: int = 1) -> SqsMessage:
    attrs = (
        {OUTAGE_ATTRIBUTE: {"DataType": "String", "StringValue": attribute}} if attribute else {}
    )
    return SqsMessage(
        "q", "u", "m", "r", "{}", {"ApproximateReceiveCount": str(receive_count)}, attrs
    )


def test_an_outage_holds_and_counts_its_holds() -> None:
    first = outage_deferral(message(), "aws_unavailable", CONFIG, NOW)
    assert first is not None
    assert first.attributes[OUTAGE_ATTRIBUTE] == f"1 {NOW:.0f}"
    later = outage_deferral(message(f"4 {NOW - 100:.0f}"), "aws_throttled", CONFIG, NOW)
    assert later is not None
    assert later.attributes[OUTAGE_ATTRIBUTE] == f"5 {NOW - 100:.0f}"


def test_the_hold_grows_and_stays_within_sqs_delay_cap() -> None:
    delays = [
        outage_deferral(message(f"{n} {NOW:.0f}"), "aws_unavailable", CONFIG, NOW)
        for n in (0, 3, 8, 20)
    ]
    seconds = [d.seconds for d in delays if d is not None]
    assert len(seconds) == 4
    assert seconds[0] <= 5 < seconds[2]
    assert max(seconds) <= 900


def test_attempts_count_again_once_patience_is_spent() -> None:
    assert outage_deferral(message(f"30 {NOW - 3600:.0f}"), "aws_unavailable", CONFIG, NOW) is None


def test_bad_input_and_bugs_are_not_outages() -> None:
    for code in ("validation_error", "unexpected_error", "access_denied", "io_error"):
        assert outage_deferral(message(), code, CONFIG, NOW) is None


def test_a_mangled_attribute_starts_counting_afresh() -> None:
    hold = outage_deferral(message("garbage"), "aws_unavailable", CONFIG, NOW)
    assert hold is not None
    assert hold.attributes[OUTAGE_ATTRIBUTE] == f"1 {NOW:.0f}"
