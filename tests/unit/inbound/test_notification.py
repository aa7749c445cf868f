"""Decoding the three notification shapes AWS delivers, and refusing everything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailflow.errors import ValidationFailed
from mailflow.inbound.notification import decode
from mailflow.ops import inject as devtools

NOW = datetime(2026, 3, 3, 9, 15, 0, 123000, tzinfo=UTC)
VERDICTS = {"spam": "PASS", "virus": "FAIL", "spf": "PASS", "dkim": "GRAY", "dmarc": "FAIL"}


def ses_doc(**overrides: object) -> dict[str, object]:
    doc = devtools.ses_notification(
        bucket="raw-bucket",
        key="inbound-raw/abc123",
        ses_message_id="abc123",
        recipients=["_app1@example.com", "x@example.org"],
        sender="alice@sender.test",
        stored=b"From: a@b.test\r\nSubject: s\r\n\r\nbody",
        verdicts=VERDICTS,
        received_at=NOW,
        region="eu-west-1",
    )
    doc.update(overrides)
    return doc


def test_sns_wrapped_notification_locates_the_email_and_keeps_verdicts() -> None:
    body = json.dumps(devtools.sns_envelope(ses_doc(), region="eu-west-1", timestamp=NOW))
    note = decode(body)
    assert note is not None
    assert (note.bucket, note.key) == ("raw-bucket", "inbound-raw/abc123")
    assert note.recipients is not None
    assert note.ses_message_id == "abc123"
    assert note.recipients == ("_app1@example.com", "x@example.org")
    assert note.received_at == NOW
    assert note.envelope_sender == "alice@sender.test"
    v = note.verdicts
    assert (v.spam, v.virus, v.spf, v.dkim, v.dmarc) == ("PASS", "FAIL", "PASS", "GRAY", "FAIL")
    assert v.dmarc_policy == "none"


def test_raw_delivery_notification_decodes_the_same() -> None:
    wrapped = decode(
        json.dumps(devtools.sns_envelope(ses_doc(), region="us-east-1", timestamp=NOW))
    )
    raw = decode(json.dumps(ses_doc()))
    assert raw == wrapped


def test_s3_event_key_is_url_decoded_plus_is_space() -> None:
    body = devtools.s3_event(
        bucket="raw-bucket", key="in box/ä b+c/msgid1", size=42, timestamp=NOW, region="us-east-1"
    )
    encoded_key = body["Records"][0]["s3"]["object"]["key"]
    assert "+" in encoded_key
    assert "%" in encoded_key
    note = decode(json.dumps(body))
    assert note is not None
    assert note.key == "in box/ä b+c/msgid1"
    assert note.ses_message_id == "msgid1"
    assert note.recipients is None  # to be read from the raw email


def test_s3_test_event_is_nothing_to_do() -> None:
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "raw-bucket"}
    assert decode(json.dumps(body)) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"Type": "Notification", "Message": 5}), "no string 'Message'"),
        (json.dumps({"Type": "Notification", "Message": "{oops"}), "SNS Message is not JSON"),
        (json.dumps({"Type": "SubscriptionConfirmation"}), "confirm the subscription"),
        (json.dumps({"notificationType": "Bounce"}), "(Bounce)"),
        (json.dumps({"hello": "world"}), "not an SES"),
        (
            json.dumps(
                {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]}
            ),
            "not ObjectCreated",
        ),
        (json.dumps({"Records": []}), "exactly one record"),
    ],
)
def test_anything_else_is_a_validation_failure_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        decode(body)
    assert reason in str(info.value)
    assert info.value.retryable is False


def test_sns_action_notification_is_refused() -> None:
    doc = ses_doc()
    doc["receipt"]["action"] = {"type": "SNS", "topicArn": "arn:aws:sns:x"}  # type: ignore[index]
    with pytest.raises(ValidationFailed, match="needs the S3"):
        decode(json.dumps(doc))


def test_missing_object_key_is_refused() -> None:
    doc = ses_doc()
    del doc["receipt"]["action"]["objectKey"]  # type: ignore[index]
    with pytest.raises(ValidationFailed, match="objectKey"):
        decode(json.dumps(doc))


def test_unknown_verdict_values_become_unknown() -> None:
    doc = ses_doc()
    doc["receipt"]["spamVerdict"] = {"status": "MAYBE"}  # type: ignore[index]
    del doc["receipt"]["dkimVerdict"]  # type: ignore[index]
    note = decode(json.dumps(doc))
    assert note is not None
    assert note.verdicts.spam == "UNKNOWN"
    assert note.verdicts.dkim == "UNKNOWN"


SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "eml" / "notifications"


def test_documented_ses_sample_raw_and_sns_wrapped() -> None:
    text = (SAMPLES / "ses-received-s3-action.json").read_text()
    wrapped = json.dumps({"Type": "Notification", "MessageId": "x", "Message": text})
    for body in (text, wrapped):
        note = decode(body)
        assert note is not None
        assert (note.bucket, note.key) == (
            "mailflow-raw",
            "inbound/o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
        )
        assert note.recipients == ("_app1@example.com", "info@example.org")
        assert note.verdicts.dmarc == "FAIL"
        assert note.verdicts.dmarc_policy == "reject"


def test_documented_s3_event_sample() -> None:
    note = decode((SAMPLES / "s3-object-created.json").read_text())
    assert note is not None
    assert note.key == "inbound/2026 02/o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
    assert note.ses_message_id == "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
