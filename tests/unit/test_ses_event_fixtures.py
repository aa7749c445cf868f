"""The SES event fixtures (tests/fixtures/ses-events): raw/ and sns/ agree and have the
structure AWS documents. See that directory's README.md for sources and ids."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailflow.feedback.event import parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ses-events"
RAW = sorted((FIXTURES / "raw").glob("*.json"))
KINDS = [path.stem for path in RAW]

TOKEN = re.compile(r"^[0-9a-f]{32}$")
ISO_8601_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SES_ID = re.compile(
    r"^[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-000000$"
)

# eventType (or notificationType) -> the type-specific object that accompanies `mail`.
DETAIL = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "DeliveryDelay": "deliveryDelay",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "failure",
    "Subscription": "subscription",
}
EXPECTED_KINDS = {
    "send",
    "delivery",
    "bounce-permanent-general",
    "bounce-permanent-onaccountsuppressionlist",
    "bounce-transient-mailboxfull",
    "bounce-undetermined",
    "complaint-abuse",
    "complaint-no-feedback-report",
    "delivery-delay",
    "reject",
    "open",
    "click",
    "rendering-failure",
    "subscription",
    "notification-bounce",
    "notification-complaint",
}
MAIL_FIELDS = {
    "timestamp",
    "source",
    "sourceArn",
    "sendingAccountId",
    "messageId",
    "destination",
    "headersTruncated",
    "headers",
    "commonHeaders",
    "tags",
}
SES_TAGS = {"ses:configuration-set", "ses:source-ip", "ses:from-domain", "ses:caller-identity"}
ENVELOPE_FIELDS = [
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "UnsubscribeURL",
]


def load(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(value, dict), path
    return value


def raw(kind: str) -> dict[str, Any]:
    return load(FIXTURES / "raw" / f"{kind}.json")


def sns(kind: str) -> dict[str, Any]:
    return load(FIXTURES / "sns" / f"{kind}.json")


def header(mail: dict[str, Any], name: str) -> list[str]:
    return [h["value"] for h in mail["headers"] if h["name"].lower() == name.lower()]


@functools.cache
def make_sns() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sns", FIXTURES / "make_sns.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_kind_is_there_in_both_forms() -> None:
    assert set(KINDS) == EXPECTED_KINDS
    assert {p.stem for p in (FIXTURES / "sns").glob("*.json")} == EXPECTED_KINDS


def test_sns_files_are_what_make_sns_writes() -> None:
    """sns/ is generated; a hand edit (or a raw/ edit without re-running) fails here."""
    for name, text in make_sns().expected().items():
        assert (FIXTURES / "sns" / name).read_text(encoding="utf-8") == text, (
            f"sns/{name} is stale: run python tests/fixtures/ses-events/make_sns.py"
        )


@pytest.mark.parametrize("kind", KINDS)
def test_the_sns_message_is_the_raw_event(kind: str) -> None:
    envelope = sns(kind)
    assert list(envelope) == [
        *ENVELOPE_FIELDS[:3],
        *(["Subject"] if "Subject" in envelope else []),
        *ENVELOPE_FIELDS[3:],
    ]
    assert envelope["Type"] == "Notification"
    assert isinstance(envelope["Message"], str)
    assert json.loads(envelope["Message"]) == raw(kind)
    assert ISO_8601_MS.match(envelope["Timestamp"])
    assert envelope["SignatureVersion"] == "1"
    assert envelope["SigningCertURL"].startswith("https://sns.us-east-1.amazonaws.com/")
    # SES sets a Subject on event publishing; identity notifications come without one.
    assert ("Subject" in envelope) == ("eventType" in raw(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_the_event_has_the_documented_structure(kind: str) -> None:
    event = raw(kind)
    notification = kind.startswith("notification-")
    type_key = "notificationType" if notification else "eventType"
    assert type_key in event
    assert ({"eventType", "notificationType"} - {type_key}).isdisjoint(event)
    event_type = event[type_key]
    detail = DETAIL[event_type]
    assert set(event) == {type_key, "mail", detail}
    assert isinstance(event[detail], dict)

    mail = event["mail"]
    assert set(mail) >= MAIL_FIELDS
    assert ("sourceIp" in mail) == notification  # documented for identity notifications only
    assert SES_ID.match(mail["messageId"])
    assert ISO_8601_MS.match(mail["timestamp"])
    datetime.fromisoformat(mail["timestamp"].replace("Z", "+00:00"))
    assert mail["headersTruncated"] is False
    assert all(set(h) == {"name", "value"} for h in mail["headers"])
    assert header(mail, "Message-ID") == [mail["commonHeaders"]["messageId"]]
    assert mail["destination"] == mail["commonHeaders"]["to"]

    tags = mail["tags"]
    assert all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in tags.values())
    assert set(tags) >= SES_TAGS
    [token] = tags["mailflow-send"]
    assert TOKEN.match(token)
    assert header(mail, "X-Mailflow-Send") == [token]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["raw", "sns"])
def test_mailflow_reads_every_fixture(kind: str, form: str) -> None:
    """The event parser takes both queue forms: the SNS envelope and the raw message."""
    body = (
        make_sns().message_text(raw(kind))
        if form == "raw"
        else (FIXTURES / "sns" / f"{kind}.json").read_text(encoding="utf-8")
    )
    event = raw(kind)
    parsed = parse_event(body)
    assert parsed.event_type == (event.get("eventType") or event.get("notificationType"))
    assert parsed.ses_message_id == event["mail"]["messageId"]
    assert parsed.token == event["mail"]["tags"]["mailflow-send"][0]
    assert parsed.message_id == header(event["mail"], "Message-ID")[0]


def test_one_id_and_token_per_logical_email() -> None:
    """Events about the same email agree; different emails never share an id or token."""
    by_id: dict[str, set[tuple[str, str]]] = {}
    for kind in KINDS:
        mail = raw(kind)["mail"]
        identity = (mail["tags"]["mailflow-send"][0], mail["commonHeaders"]["messageId"])
        by_id.setdefault(mail["messageId"], set()).add(identity)
    assert all(len(identities) == 1 for identities in by_id.values())
    tokens = [next(iter(identities))[0] for identities in by_id.values()]
    assert len(tokens) == len(set(tokens))
    same_email = {raw(k)["mail"]["messageId"] for k in ("send", "delivery", "open", "click")}
    assert len(same_email) == 1
    assert (
        raw("notification-bounce")["mail"]["messageId"]
        == (raw("bounce-permanent-general")["mail"]["messageId"])
    )


def test_type_specific_details() -> None:
    bounces = {
        k: raw(k)["bounce"]
        for k in KINDS
        if raw(k).get("eventType") == "Bounce" or raw(k).get("notificationType") == "Bounce"
    }
    pairs = {(b["bounceType"], b["bounceSubType"]) for b in bounces.values()}
    assert pairs == {
        ("Permanent", "General"),
        ("Permanent", "OnAccountSuppressionList"),
        ("Transient", "MailboxFull"),
        ("Undetermined", "Undetermined"),
    }
    assert "complaintFeedbackType" not in raw("complaint-no-feedback-report")["complaint"]
    assert raw("complaint-abuse")["complaint"]["complaintFeedbackType"] == "abuse"
    assert raw("reject")["reject"] == {"reason": "Bad content"}
    assert raw("send")["send"] == {}
    delay = raw("delivery-delay")["deliveryDelay"]
    assert {"delayType", "expirationTime", "delayedRecipients"} <= set(delay)
    delivery = raw("delivery")["delivery"]
    assert {"processingTimeMillis", "recipients", "smtpResponse", "reportingMTA"} <= set(delivery)
    assert {"link", "linkTags", "ipAddress", "userAgent", "timestamp"} <= set(raw("click")["click"])
