"""Validation of outbound messages: addresses, permissions, header injection, sizes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailflow.errors import MailflowError, PolicyRejected, ValidationFailed
from mailflow.outbound.validation import (
    attachment_allowed,
    parse_message,
    payload_hash,
    sender_allowed,
    validate,
)
from mailflow.settings import Settings
from tests.readme_examples import README_QUICKSTART

CONTROL_CHARS = [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"]


def check(body: str, settings: Settings):
    return validate(parse_message(body, settings), settings)


def error_of(body: str, settings: Settings) -> MailflowError:
    with pytest.raises(MailflowError) as info:
        check(body, settings)
    return info.value


def test_readme_examples_validate(make_body: Callable[..., str], unit_settings: Settings) -> None:
    email = check(make_body(), unit_settings)
    assert email.sender.address == "_app1@example.com"
    assert email.recipients == ("recipient@example.net",)
    assert check(make_body(README_QUICKSTART), unit_settings).correlation_id == "test-1700000000"


def test_not_json_is_invalid_message(unit_settings: Settings) -> None:
    error = error_of("this is not json", unit_settings)
    assert error.code == "invalid_message"
    assert not error.retryable


def test_parse_error_names_field_and_keeps_known_app(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    error = error_of(make_body(**{"email.subject": 42}), unit_settings)
    assert "email.subject" in str(error)
    assert error.app == "app1"  # so the app can be told


def test_unknown_source_is_rejected_without_app(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    error = error_of(
        make_body(source="app9", **{"email.from.address": "_app9@example.com"}), unit_settings
    )
    assert error.code == "unknown_app"
    assert error.app is None


@pytest.mark.parametrize(
    "sender",
    [
        "_app1@example.com",
        "_APP1@Example.COM",
        "support@example.com",
        "support@bücher.de",
        "support@xn--bcher-kva.de",
        "help@example.com",
        "ops@partner.net",
    ],
)
def test_allowed_senders(
    make_body: Callable[..., str], unit_settings: Settings, sender: str
) -> None:
    assert check(make_body(**{"email.from.address": sender}), unit_settings).sender.address


@pytest.mark.parametrize(
    "sender",
    [
        "_app2@example.com",  # another app's address
        "_app1@evil.com",  # not our domain
        "help@bücher.de",  # a full-address alias is only valid on its own domain
        "ops@example.com",
        "_app1x@example.com",
        "someone@example.com",
    ],
)
def test_forbidden_senders(
    make_body: Callable[..., str], unit_settings: Settings, sender: str
) -> None:
    error = error_of(make_body(**{"email.from.address": sender}), unit_settings)
    assert error.code == "sender_not_allowed"
    assert isinstance(error, PolicyRejected)
    assert error.app == "app1"


def test_app2_may_not_use_app1_alias(unit_settings: Settings) -> None:
    cfg = unit_settings.apps["app2"]
    assert not sender_allowed("support@example.com", "app2", cfg, unit_settings.domains)
    assert sender_allowed("_app2@example.com", "app2", cfg, unit_settings.domains)


@pytest.mark.parametrize(
    "address",
    ["plainaddress", "a@b", "a@@example.com", "a b@example.com", "a@-example.com", "a@localhost"],
)
def test_invalid_addresses(
    make_body: Callable[..., str], unit_settings: Settings, address: str
) -> None:
    error = error_of(make_body(**{"email.to": [{"address": address}]}), unit_settings)
    assert error.code == "invalid_address"
    assert "email.to.0" in str(error)


def test_idn_recipient_domain_is_punycoded(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    email = check(make_body(**{"email.to": [{"address": "joerg@münchen.de"}]}), unit_settings)
    assert email.recipients == ("joerg@xn--mnchen-3ya.de",)


def test_non_ascii_local_part_rejected_because_ses_has_no_smtputf8(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    error = error_of(make_body(**{"email.to": [{"address": "jörg@example.net"}]}), unit_settings)
    assert error.code == "invalid_address"
    assert "SES" in str(error)


def test_recipient_limits(make_body: Callable[..., str], unit_settings: Settings) -> None:
    addrs = [{"address": f"r{i}@example.net"} for i in range(51)]
    fifty = check(
        make_body(**{"email.to": addrs[:20], "email.cc": addrs[20:40], "email.bcc": addrs[40:50]}),
        unit_settings,
    )
    assert len(fifty.recipients) == 50
    error = error_of(
        make_body(**{"email.to": addrs[:20], "email.bcc": addrs[20:51]}), unit_settings
    )
    assert error.code == "too_many_recipients"
    assert error_of(make_body(**{"email.to": []}), unit_settings).code == "no_recipients"


def test_bcc_only_is_enough(make_body: Callable[..., str], unit_settings: Settings) -> None:
    email = check(make_body(**{"email.to": [], "email.bcc": ["hidden@example.net"]}), unit_settings)
    assert email.recipients == ("hidden@example.net",)
    assert email.to == ()


def test_empty_body_rejected(make_body: Callable[..., str], unit_settings: Settings) -> None:
    assert error_of(make_body(**{"email.body": {}}), unit_settings).code == "empty_body"


@pytest.mark.parametrize("char", CONTROL_CHARS)
@pytest.mark.parametrize(
    "path", ["email.subject", "email.from.name", "correlationId", "email.headers.in-reply-to"]
)
def test_control_characters_in_header_values_rejected(
    make_body: Callable[..., str], unit_settings: Settings, path: str, char: str
) -> None:
    error = error_of(make_body(**{path: f"Hello{char}Bcc: victim@evil.com"}), unit_settings)
    assert error.code == "header_injection"
    assert not error.retryable


@hsettings(max_examples=200, deadline=None)
@given(
    prefix=st.text(max_size=20),
    char=st.sampled_from(CONTROL_CHARS),
    suffix=st.text(max_size=20),
    field=st.sampled_from(["subject", "name", "to_name", "filename", "reply_name"]),
)
def test_property_any_control_char_anywhere_is_rejected(
    prefix: str, char: str, suffix: str, field: str
) -> None:
    from mailflow.settings import load_settings

    settings = load_settings(
        domains=["example.com"], apps={"app1": {}}, aws_endpoint_url="http://x"
    )
    value = prefix + char + suffix
    data = json.loads(json.dumps(README_QUICKSTART))
    email = data["email"]
    if field == "subject":
        email["subject"] = value
    elif field == "name":
        email["from"]["name"] = value
    elif field == "to_name":
        email["to"] = [{"address": "r@example.net", "name": value}]
    elif field == "reply_name":
        email["replyTo"] = {"address": "r@example.net", "name": value}
    else:
        email["attachments"] = [
            {
                "filename": value or "x",
                "s3Bucket": "mailflow-attachments",
                "s3Key": "outbound/app1/a",
            }
        ]
    with pytest.raises(MailflowError) as info:
        validate(parse_message(json.dumps(data), settings), settings)
    assert info.value.code in {"header_injection", "invalid_message"}


@hsettings(max_examples=200, deadline=None)
@given(
    subject=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs")), max_size=200
    )
)
def test_property_printable_subjects_are_accepted(subject: str) -> None:
    from mailflow.settings import load_settings

    settings = load_settings(
        domains=["example.com"], apps={"app1": {}}, aws_endpoint_url="http://x"
    )
    data = json.loads(json.dumps(README_QUICKSTART))
    data["email"]["subject"] = subject
    assert validate(parse_message(json.dumps(data), settings), settings).subject == subject


def _att(bucket: str, key: str) -> dict[str, str]:
    return {"filename": "f.pdf", "s3Bucket": bucket, "s3Key": key}


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("mailflow-attachments", "outbound/app1/x.pdf"),
        ("mailflow-attachments", "inbound/app1/msg/1/x.pdf"),
        ("shared-bucket", "app1-files/x.pdf"),
        ("whole-bucket", "anything/at/all.pdf"),
    ],
)
def test_allowed_attachment_sources(
    make_body: Callable[..., str], unit_settings: Settings, bucket: str, key: str
) -> None:
    email = check(make_body(**{"email.attachments": [_att(bucket, key)]}), unit_settings)
    assert email.attachments[0].bucket == bucket


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("mailflow-attachments", "inbound/app2/msg/x.pdf"),  # another app's inbound files
        ("mailflow-attachments", "outbound/app10/x.pdf"),  # prefix is a directory, not a string
        ("mailflow-attachments", "outbound/app1/../app2/x.pdf"),
        ("mailflow-attachments", "x.pdf"),
        ("mailflow-raw", "inbound/app1/x.eml"),  # the raw mail bucket
        ("other-bucket", "outbound/app1/x.pdf"),
        ("shared-bucket", "app1-files-evil/x.pdf"),
    ],
)
def test_forbidden_attachment_sources(
    make_body: Callable[..., str], unit_settings: Settings, bucket: str, key: str
) -> None:
    error = error_of(make_body(**{"email.attachments": [_att(bucket, key)]}), unit_settings)
    assert error.code == "attachment_forbidden"
    assert error.app == "app1"


def test_app2_has_no_extra_sources(unit_settings: Settings) -> None:
    cfg = unit_settings.apps["app2"]
    assert not attachment_allowed("whole-bucket", "x", "app2", cfg, unit_settings)
    assert attachment_allowed("mailflow-attachments", "inbound/app2/x", "app2", cfg, unit_settings)


def test_attachment_filename_and_type(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    att = {
        "filename": "C:\\Users\\x\\Résumé.pdf",
        "s3Bucket": "mailflow-attachments",
        "s3Key": "outbound/app1/r",
    }
    plan = check(make_body(**{"email.attachments": [att]}), unit_settings).attachments[0]
    assert (plan.filename, plan.content_type) == ("Résumé.pdf", "application/pdf")
    bad = {**att, "contentType": "not a type"}
    assert (
        error_of(make_body(**{"email.attachments": [bad]}), unit_settings).code
        == "invalid_attachment"
    )


def test_message_ids_are_normalized_never_double_bracketed(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    email = check(
        make_body(**{"email.headers": {"in-reply-to": "<<abc@x>>", "references": "a@b <c@d>"}}),
        unit_settings,
    )
    assert email.in_reply_to == "<abc@x>"
    assert email.references == ("<a@b>", "<c@d>")
    error = error_of(make_body(**{"email.headers": {"in-reply-to": "has space@x"}}), unit_settings)
    assert error.code == "invalid_header"


def test_huge_body_rejected(make_body: Callable[..., str], unit_settings: Settings) -> None:
    from mailflow.settings import load_settings

    small = load_settings(
        domains=["example.com"],
        apps={"app1": {}},
        aws_endpoint_url="http://x",
        outbound={"max_message_bytes": 2048},
    )
    assert error_of(make_body(**{"email.body.text": "x" * 5000}), small).code == "message_too_large"


def test_payload_hash_ignores_timestamp_but_not_content(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    base = check(make_body(), unit_settings).payload_hash
    assert check(make_body(timestamp="2030-01-01T00:00:00Z"), unit_settings).payload_hash == base
    assert check(make_body(**{"email.subject": "other"}), unit_settings).payload_hash != base
    snake = parse_message(make_body(README_QUICKSTART), unit_settings)
    camel = json.loads(make_body(README_QUICKSTART))
    camel["correlationId"] = camel.pop("correlation_id")
    assert payload_hash(parse_message(json.dumps(camel), unit_settings)) == payload_hash(snake)


def test_validation_failed_is_permanent() -> None:
    assert not ValidationFailed("x").retryable
    assert not PolicyRejected("x").retryable
