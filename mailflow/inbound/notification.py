"""Decoding what arrives on the inbound queue into one `Notification` (pure).

Three shapes are accepted, all as AWS sends them:

- an SES "Received" notification of the S3 action, wrapped in an SNS envelope
  (`{"Type": "Notification", "Message": "<json string>", ...}`);
- the same notification raw (SNS raw message delivery, or SES -> SQS through EventBridge
  style plumbing that forwards the bare JSON);
- an S3 `ObjectCreated:*` event notification (`{"Records": [{"s3": ...}]}`), whose object
  keys are URL-encoded with `+` for a space. Such an event carries no envelope, so its
  recipients and verdicts are read later from the headers SES wrote into the raw email.

Anything else raises `ValidationFailed` with a reason (-> a DLQ record). S3's one-off
`s3:TestEvent` is recognised and reported as `None`: there is nothing to process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from mailflow.contracts.inbound import Verdicts, VerdictStatus
from mailflow.errors import PermanentError, ValidationFailed

_STATUSES: frozenset[str] = frozenset({"PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"})


@dataclass(frozen=True)
class Notification:
    """Where a received email is and what SES said about it."""

    bucket: str
    key: str
    ses_message_id: str
    received_at: datetime
    recipients: tuple[str, ...] | None  # None: S3 event, read them from the raw email
    verdicts: Verdicts = field(default_factory=Verdicts)
    envelope_sender: str | None = None


class UntrustedNotification(PermanentError):
    """A notification pointing outside what SES writes: never read, always recorded.

    Only SES (through the inbound topic) may write the inbound queue, so this is either
    a misconfiguration or someone with write access trying to make mailflow deliver an
    object they cannot read themselves (another app's attachment). Not a rejection of
    an email: a failure, so the alarm on failures fires.
    """

    code = "untrusted_notification"


def check_source(notification: Notification, raw_bucket: str, key_prefix: str) -> None:
    """Refuse a notification whose object is not in the raw bucket under SES's prefix."""
    if notification.bucket != raw_bucket:
        raise UntrustedNotification(
            f"notification names bucket {notification.bucket!r}, not the raw-mail bucket"
            f" {raw_bucket!r}; nothing was read",
            details={"bucket": notification.bucket, "key": notification.key},
        )
    if not notification.key.startswith(key_prefix) or ".." in notification.key.split("/"):
        raise UntrustedNotification(
            f"notification names key {notification.key!r} outside the receipt rule's"
            f" prefix {key_prefix!r}; nothing was read",
            details={"bucket": notification.bucket, "key": notification.key},
        )


def decode(body: str) -> Notification | None:
    """Turn an inbound-queue body into a `Notification` (None for an S3 test event)."""
    document = _load_json(body, "message body")
    if isinstance(document, dict) and document.get("Type") == "Notification":
        message = document.get("Message")
        if not isinstance(message, str):
            raise ValidationFailed("SNS notification has no string 'Message'")
        document = _load_json(message, "SNS Message")
    if not isinstance(document, dict):
        raise ValidationFailed("notification is not a JSON object")
    if document.get("Type") == "SubscriptionConfirmation":
        raise ValidationFailed(
            "SNS subscription confirmation reached the inbound queue; confirm the"
            " subscription (SubscribeURL) instead"
        )
    if document.get("notificationType") == "Received":
        return _from_ses(document)
    if "Records" in document:
        return _from_s3_event(document)
    if document.get("Event") == "s3:TestEvent":
        return None
    kind = document.get("notificationType") or document.get("eventType") or "unknown"
    raise ValidationFailed(f"not an SES 'Received' or S3 ObjectCreated notification ({kind})")


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValidationFailed(f"{what} is not JSON: {exc}") from None


def _from_ses(document: dict[str, Any]) -> Notification:
    receipt = _obj(document, "receipt")
    mail = _obj(document, "mail")
    action = _obj(receipt, "action")
    if action.get("type") != "S3":
        raise ValidationFailed(
            f"SES notification of a {action.get('type')!r} action; mailflow needs the S3"
            " action (the email itself is in the bucket)"
        )
    bucket, key = action.get("bucketName"), action.get("objectKey")
    message_id = mail.get("messageId")
    recipients = receipt.get("recipients")
    if not (_text(bucket) and _text(key) and _text(message_id)):
        raise ValidationFailed("SES notification lacks bucketName, objectKey or messageId")
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise ValidationFailed("SES notification has no receipt.recipients list")
    return Notification(
        bucket=str(bucket),
        key=str(key),
        ses_message_id=str(message_id),
        received_at=_time(receipt.get("timestamp") or mail.get("timestamp")),
        recipients=tuple(recipients),
        verdicts=_verdicts(receipt),
        envelope_sender=mail.get("source") if isinstance(mail.get("source"), str) else None,
    )


def _from_s3_event(document: dict[str, Any]) -> Notification:
    records = document.get("Records")
    if not isinstance(records, list) or len(records) != 1 or not isinstance(records[0], dict):
        raise ValidationFailed("S3 event must hold exactly one record")
    record = records[0]
    if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith(
        "ObjectCreated:"
    ):
        raise ValidationFailed(f"S3 event {record.get('eventName')!r} is not ObjectCreated")
    s3 = _obj(record, "s3")
    bucket = _obj(s3, "bucket").get("name")
    obj = _obj(s3, "object")
    raw_key = obj.get("key")
    if not (_text(bucket) and _text(raw_key)):
        raise ValidationFailed("S3 event lacks bucket name or object key")
    key = unquote_plus(str(raw_key))
    return Notification(
        bucket=str(bucket),
        key=key,
        # SES names the object after its message id (after the configured prefix).
        ses_message_id=key.rsplit("/", 1)[-1],
        received_at=_time(record.get("eventTime")),
        recipients=None,
    )


def _obj(parent: dict[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise ValidationFailed(f"notification has no {name!r} object")
    return value


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _time(value: Any) -> datetime:
    """Parse AWS's ISO 8601 stamps ('2015-09-11T20:32:33.936Z'); now() if missing or bad."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _status(receipt: dict[str, Any], name: str) -> VerdictStatus:
    verdict = receipt.get(name)
    status = verdict.get("status") if isinstance(verdict, dict) else None
    if isinstance(status, str) and status.upper() in _STATUSES:
        return status.upper()  # type: ignore[return-value]
    return "UNKNOWN"


def _verdicts(receipt: dict[str, Any]) -> Verdicts:
    policy = receipt.get("dmarcPolicy")
    return Verdicts(
        spam=_status(receipt, "spamVerdict"),
        virus=_status(receipt, "virusVerdict"),
        spf=_status(receipt, "spfVerdict"),
        dkim=_status(receipt, "dkimVerdict"),
        dmarc=_status(receipt, "dmarcVerdict"),
        dmarc_policy=policy.lower() if isinstance(policy, str) else None,
    )
