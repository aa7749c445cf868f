"""Pure parts of the engine and observability: backoff, failure records, redaction, routes."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from mailflow.engine.consumer import backoff_seconds, build_failure_record
from mailflow.engine.message import SqsMessage
from mailflow.errors import ValidationFailed, aws_errors
from mailflow.observability.http import route
from mailflow.observability.logging import redact_address, redact_processor


def test_backoff_grows_exponentially_and_is_capped() -> None:
    top = [backoff_seconds(n, 5, 900, rand=lambda: 1.0) for n in range(1, 12)]
    assert top[:5] == [5, 10, 20, 40, 80]
    assert max(top) == 900
    bottom = [backoff_seconds(n, 5, 900, rand=lambda: 0.0) for n in range(1, 6)]
    assert bottom == [2, 5, 10, 20, 40]  # equal jitter: at least half the ceiling


@given(st.integers(min_value=-5, max_value=10_000), st.floats(min_value=0, max_value=1))
def test_backoff_is_always_a_valid_visibility(attempt: int, r: float) -> None:
    assert 1 <= backoff_seconds(attempt, 5, 43_200, rand=lambda: r) <= 43_200


MESSAGE = SqsMessage(
    queue="mailflow-outbound",
    queue_url="http://q",
    message_id="m-1",
    receipt_handle="r",
    body='{"ünïcode": true}',
    attributes={
        "ApproximateReceiveCount": "3",
        "ApproximateFirstReceiveTimestamp": "1700000000000",
    },
)


def test_failure_record_keeps_the_original_body_verbatim() -> None:
    error = ValidationFailed("email.to: required", app="app1", details={"field": "email.to"})
    record = build_failure_record("outbound", MESSAGE, error)
    wire = json.loads(record.to_wire())
    assert wire["body"] == '{"ünïcode": true}'
    assert wire["errorCode"] == "validation_error"
    assert wire["attempts"] == 3
    assert wire["app"] == "app1"
    assert wire["details"] == {"field": "email.to"}
    assert wire["firstAttemptAt"].startswith("2023-11-14")
    assert wire["retryable"] is False


def _bug() -> None:
    {}["missing"]


def test_an_unexpected_error_carries_its_type_and_last_frames() -> None:
    try:
        _bug()
    except KeyError as exc:
        record = build_failure_record("inbound", MESSAGE, exc)
    assert record.error_code == "retries_exhausted:unexpected_error"
    assert record.retryable is True
    assert record.details["exception"] == "KeyError"
    frames = record.details["traceback"]
    assert frames[-1].startswith("engine/test_consumer_core.py:")
    assert frames[-1].endswith("in _bug")


def test_a_wrapped_bug_still_shows_its_own_frames() -> None:
    try:
        with aws_errors("op"):
            try:
                _bug()
            except KeyError as bug:
                raise RuntimeError("wrapped") from bug
    except RuntimeError as exc:
        record = build_failure_record("inbound", MESSAGE, exc)
    assert record.details["exception"] == "RuntimeError"


def test_an_aws_error_record_names_the_aws_code_not_a_traceback() -> None:
    try:
        with aws_errors("GetObject s3://raw/k", {"object_not_found": "raw_email_missing"}):
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
    except Exception as exc:
        record = build_failure_record("inbound", MESSAGE, exc)
    assert record.error_code == "raw_email_missing"
    assert record.details["awsErrorCode"] == "NoSuchKey"
    assert "traceback" not in record.details


def test_redaction_keeps_domains_and_handles_non_ascii() -> None:
    assert redact_address("Zoë <zoë@exämple.com>") == "Zoë <***@exämple.com>"
    event = redact_processor(
        None, "info", {"event": "x", "subject": "Ünïcødé 🎉 subject", "to": ["a@b.com", "c@d.org"]}
    )
    assert event["subject"] == "<redacted 17 chars>"
    assert event["to"] == ["***@b.com", "***@d.org"]


def test_http_routes() -> None:
    assert route("/healthz", lambda: False)[0] == 200
    assert route("/readyz", lambda: False)[0] == 503
    assert route("/readyz", lambda: True)[0] == 200
    status, ctype, body = route("/metrics", lambda: True)
    assert status == 200
    assert "text/plain" in ctype
    assert b"mailflow_messages_received_total" in body
    assert route("/nope", lambda: True)[0] == 404
