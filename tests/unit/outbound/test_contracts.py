"""The outbound JSON contract: both spellings of the original README, leniencies, errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from mailflow.contracts.outbound import (
    EmailFailedEvent,
    EmailSentEvent,
    OutboundMessage,
    OutboundStatusEvent,
)
from mailflow.contracts.registry import all_schemas
from tests.readme_examples import README_CAMEL, README_QUICKSTART


def test_readme_camel_case_example_parses() -> None:
    msg = OutboundMessage.model_validate(README_CAMEL)
    assert msg.correlation_id == "unique-id-123"
    assert msg.email.from_.address == "_app1@example.com"
    assert msg.email.from_.name == "App1"
    assert msg.email.body.html == "<p>HTML response</p>"


def test_readme_quickstart_snake_case_example_parses() -> None:
    msg = OutboundMessage.model_validate(README_QUICKSTART)
    assert msg.correlation_id == "test-1700000000"
    assert msg.email.body.text == "This is a test response from Mailflow"


def test_snake_case_spellings_of_every_multiword_field() -> None:
    data = {
        "correlation_id": "c1",
        "source": "app1",
        "email": {
            "from": "_app1@example.com",
            "to": "a@example.net",
            "reply_to": "r@example.net",
            "subject": "s",
            "body": {"text": "t"},
            "attachments": [
                {
                    "filename": "a.pdf",
                    "content_type": "application/pdf",
                    "s3_bucket": "bkt",
                    "s3_key": "k",
                }
            ],
            "headers": {"in_reply_to": "x@y", "references": ["a@b"]},
        },
        "options": {"scheduled_send_time": "2030-01-01T00:00:00Z", "auto_submitted": "no"},
    }
    msg = OutboundMessage.model_validate(data)
    att = msg.email.attachments[0]
    assert (att.content_type, att.s3_bucket, att.s3_key) == ("application/pdf", "bkt", "k")
    assert msg.email.reply_to[0].address == "r@example.net"
    assert msg.email.headers.in_reply_to == "x@y"
    assert msg.options.scheduled_send_time is not None
    assert msg.options.auto_submitted == "no"


def test_reply_to_single_object_or_list_and_bare_strings() -> None:
    single = OutboundMessage.model_validate(
        {**README_CAMEL, "email": {**README_CAMEL["email"], "replyTo": {"address": "r@x.net"}}}
    )
    many = OutboundMessage.model_validate(
        {**README_CAMEL, "email": {**README_CAMEL["email"], "replyTo": ["r@x.net", "s@x.net"]}}
    )
    assert [a.address for a in single.email.reply_to] == ["r@x.net"]
    assert [a.address for a in many.email.reply_to] == ["r@x.net", "s@x.net"]


@pytest.mark.parametrize(
    ("references", "expected"),
    [
        ("<a@b> <c@d>", ["<a@b>", "<c@d>"]),
        ("a@b,c@d", ["a@b", "c@d"]),
        (["<a@b>", "c@d"], ["<a@b>", "c@d"]),
    ],
)
def test_references_string_or_list(references: object, expected: list[str]) -> None:
    email = {**README_CAMEL["email"], "headers": {"in-reply-to": "<a@b>", "references": references}}
    msg = OutboundMessage.model_validate({**README_CAMEL, "email": email})
    assert msg.email.headers.references == expected


def test_unknown_fields_are_ignored(make_body: Callable[..., str]) -> None:
    body = make_body(**{"futureField": 1, "email.tracking": {"opens": True}})
    assert OutboundMessage.model_validate_json(body).correlation_id == "unique-id-123"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("correlationId", 123),
        ("email.subject", ["a"]),
        ("email.to", 5),
        ("email.body.text", 1),
        ("options.priority", "urgent"),
        ("options.scheduledSendTime", "next tuesday"),
        ("email.attachments", [{"filename": "a"}]),
    ],
)
def test_wrong_types_are_validation_errors(
    make_body: Callable[..., str], path: str, value: object
) -> None:
    with pytest.raises(ValidationError) as info:
        OutboundMessage.model_validate_json(make_body(**{path: value}))
    assert path.rsplit(".", maxsplit=1)[-1] in str(info.value)


def test_missing_required_fields(make_body: Callable[..., str], delete: object) -> None:
    for path in ("correlationId", "source", "email", "email.from", "email.subject", "email.body"):
        with pytest.raises(ValidationError):
            OutboundMessage.model_validate_json(make_body(**{path: delete}))


def test_wire_form_is_camel_case_with_readme_header_names() -> None:
    msg = OutboundMessage.model_validate(README_QUICKSTART)
    wire = json.loads(msg.to_wire())
    assert wire["correlationId"] == "test-1700000000"
    assert "from" in wire["email"]
    assert "in-reply-to" not in wire["email"]["headers"]  # None is excluded


def test_status_events_round_trip_and_dispatch_on_type() -> None:
    sent = EmailSentEvent(
        event_id="e1",
        correlation_id="c",
        source="app1",
        ses_message_id="s",
        message_id="<m@x>",
        sent_at="2025-01-01T00:00:00Z",
        recipients=2,
    )
    failed = EmailFailedEvent(
        event_id="e2",
        correlation_id=None,
        source="app1",
        error_code="sender_not_allowed",
        reason="r",
        failed_at="2025-01-01T00:00:00Z",
    )
    for event in (sent, failed):
        wire = event.to_wire()
        parsed = OutboundStatusEvent.model_validate_json(wire).root
        assert type(parsed) is type(event)
    assert json.loads(sent.to_wire())["sesMessageId"] == "s"
    assert json.loads(failed.to_wire())["type"] == "email.failed"


def test_schemas_generate_with_wire_names() -> None:
    schemas = all_schemas()
    assert "correlationId" in schemas["outbound-message"]["properties"]
    assert "correlation_id" in schemas["outbound-message"]["properties"]  # input: both
    assert "correlation_id" not in schemas["outbound-message.normalized"]["properties"]
    status = json.dumps(schemas["outbound-status-event"])
    assert "email.sent" in status
    assert "email.failed" in status
