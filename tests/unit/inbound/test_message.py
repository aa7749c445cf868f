"""The app message: wire names, deterministic ids, server-generated keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mailflow.aws import keys
from mailflow.contracts.inbound import InboundMessage, RawEmailLocation, Verdicts
from mailflow.inbound import message as build
from mailflow.inbound.attachments import attachment_names
from mailflow.inbound.parse import parse_bytes
from mailflow.inbound.routing import Destination
from tests.unit.inbound.conftest import corpus_bytes

RECEIVED = datetime(2026, 3, 3, 9, 15, tzinfo=UTC)


def make(name: str, key: str = "app1") -> InboundMessage:
    parsed = parse_bytes(corpus_bytes(name))
    return build.build_message(
        parsed=parsed,
        body=build.readable_body(parsed, sanitize=True),
        destination=Destination(
            key=key, domain="example.com", recipients=["_app1+t@example.com"], mailbox_hash="t"
        ),
        ses_message_id="sesid123",
        raw=RawEmailLocation(s3_bucket="raw", s3_key="inbound-raw/sesid123"),
        received_at=RECEIVED,
        verdicts=Verdicts(spam="PASS", virus="PASS"),
        attachments=[],
        recipient_source="envelope",
        now=RECEIVED,
    )


def test_wire_format_uses_the_documented_names() -> None:
    wire = json.loads(make("threading-reply.eml").to_wire())
    assert wire["version"] == "1.0"
    assert wire["type"] == "email.received"
    assert wire["source"] == "mailflow"
    email = wire["email"]
    assert email["from"] == {"address": "vic@sender.test", "name": "Vic"}
    assert email["messageId"] == "reply-3@sender.test"
    assert email["headers"]["in-reply-to"] == "order-2@example.com"
    assert email["headers"]["references"] == ["order-1@example.com", "order-2@example.com"]
    assert email["receivedAt"] == "2026-03-03T09:15:00Z"
    meta = wire["metadata"]
    assert meta["routingKey"] == "app1"
    assert meta["domain"] == "example.com"
    assert meta["mailboxHash"] == "t"
    assert meta["sesMessageId"] == "sesid123"
    assert meta["rawEmail"] == {"s3Bucket": "raw", "s3Key": "inbound-raw/sesid123"}
    assert meta["verdicts"]["spam"] == "PASS"
    assert meta["verdicts"]["dmarc"] == "UNKNOWN"
    assert meta["charsetFallback"] is False
    assert meta["isAutoReply"] is False
    # parses back, also from snake_case input
    assert InboundMessage.model_validate(wire).email.from_ is not None


def test_message_id_is_deterministic_per_ses_message_and_app() -> None:
    first, again, other = make("plain.eml"), make("plain.eml"), make("plain.eml", key="app2")
    assert first.message_id == again.message_id != other.message_id
    assert build.app_message_id("a", "app1") != build.app_message_id("b", "app1")


def test_html_is_sanitized_in_the_message() -> None:
    html = make("html-xss.eml").email.body.html
    assert html is not None
    assert "script" not in html
    assert "javascript:" not in html
    assert "onerror" not in html


def test_keys_are_server_generated() -> None:
    ident = build.attachment_id("sesid123", "app1", 0)
    key = build.attachment_key("app1", RECEIVED, ident)
    assert key == f"inbound/app1/2026-03-03/{ident}"
    assert (
        ident
        != build.attachment_id("sesid123", "app1", 1)
        != build.attachment_id("sesid123", "app2", 0)
    )
    assert (
        build.payload_key("payloads/", "app1", RECEIVED, "m1") == "payloads/app1/2026-03-03/m1.json"
    )
    assert keys.inbound_delivery("sesid123", "app1") == "inbound#sesid123#app1"


def test_attachment_names_are_sanitized_deduplicated_and_never_empty() -> None:
    assert attachment_names(parse_bytes(corpus_bytes("duplicate-filenames.eml"))) == [
        "report.pdf",
        "report (2).pdf",
    ]
    assert attachment_names(parse_bytes(corpus_bytes("inline-image-unnamed.eml"))) == [
        "inline-1.png"
    ]


def test_no_message_id_and_auto_reply_fields() -> None:
    wire = json.loads(make("no-message-id.eml").to_wire())
    assert "messageId" not in wire["email"]
    auto = json.loads(make("auto-reply.eml").to_wire())
    assert auto["metadata"]["isAutoReply"] is True
    assert auto["metadata"]["autoSubmitted"] == "auto-replied"
    assert auto["email"]["headers"]["auto-submitted"] == "auto-replied"
