"""SES events as the events queue delivers them: SNS-wrapped or raw, tag or header."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mailflow.errors import ValidationFailed
from mailflow.feedback.event import parse_event
from mailflow.local.ses_events import delivery_detail, ses_event, sns_envelope

TOKEN = "0123456789abcdef0123456789abcdef"
RAW = (
    "From: App1 <_app1@example.com>\r\nTo: bob@example.org\r\nSubject: Hi\r\n"
    "Message-ID: <abc.app1@example.com>\r\nX-Mailflow-Send: " + TOKEN + "\r\n\r\nbody\r\n"
)
AT = datetime(2026, 11, 28, 12, 0, 0, 250_000, tzinfo=UTC)


def event(event_type: str = "Send", raw: str = RAW) -> dict[str, object]:
    return ses_event(
        event_type,
        ses_message_id="0100018c-ses-id",
        source="_app1@example.com",
        destinations=["bob@example.org"],
        raw_mime=raw,
        sent_at=AT,
        configuration_set="mailflow",
        detail=delivery_detail(["bob@example.org"], AT) if event_type == "Delivery" else None,
    )


@pytest.mark.parametrize("wrapped", [True, False], ids=["sns-envelope", "raw-delivery"])
def test_both_delivery_forms_give_the_same_event(wrapped: bool) -> None:
    document = event("Delivery")
    body = json.dumps(sns_envelope(document, "arn:aws:sns:us-east-1:1:t") if wrapped else document)
    parsed = parse_event(body)
    assert parsed.event_type == "Delivery"
    assert parsed.ses_message_id == "0100018c-ses-id"
    assert parsed.sent_at == AT.timestamp()
    assert parsed.token == TOKEN
    assert parsed.message_id == "<abc.app1@example.com>"


def test_the_tag_is_read_when_headers_were_truncated() -> None:
    document = event()
    mail = document["mail"]
    assert isinstance(mail, dict)
    mail["headers"], mail["headersTruncated"] = [], True
    assert parse_event(json.dumps(document)).token == TOKEN


def test_mail_not_sent_by_mailflow_has_no_token() -> None:
    raw = RAW.replace("X-Mailflow-Send: " + TOKEN + "\r\n", "")
    assert parse_event(json.dumps(event(raw=raw))).token is None


def test_a_malformed_token_is_no_token() -> None:
    raw = RAW.replace(TOKEN, "not-a-token; drop table")
    assert parse_event(json.dumps(event(raw=raw))).token is None


def test_identity_notifications_are_read_too() -> None:
    document = event("Bounce")
    document["notificationType"] = document.pop("eventType")
    assert parse_event(json.dumps(document)).event_type == "Bounce"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"Type": "Notification", "Message": "{"}),
        json.dumps({"eventType": "Send"}),
        json.dumps({"eventType": "Send", "mail": {"timestamp": "2026-01-01T00:00:00Z"}}),
        json.dumps({"eventType": "Send", "mail": {"messageId": "x", "timestamp": "yesterday"}}),
    ],
    ids=["not-json", "not-object", "bad-envelope", "no-mail", "no-message-id", "bad-time"],
)
def test_what_is_not_an_ses_event_is_a_validation_failure(body: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(body)
    assert info.value.code == "invalid_ses_event"
