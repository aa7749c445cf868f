"""Pure: SES's sending events, as the events queue receives them, reduced to what we use.

SES publishes an event per message through the configuration set (`eventType`: Send,
Reject, Delivery, Bounce, Complaint, DeliveryDelay, Rendering Failure, Open, Click,
Subscription) to SNS, which delivers it to the events queue either wrapped in its
`Notification` envelope (the default) or raw. Identity notifications (`notificationType`)
have the same `mail` object and are read too.

mailflow sends every email with the attempt's token twice: as the `mailflow-send` message
tag and as the `X-Mailflow-Send` header. Tags always come back in `mail.tags`; headers
only while they fit (`headersTruncated`), so the tag is read first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailflow.errors import ValidationFailed

SEND_TOKEN_TAG = "mailflow-send"  # noqa: S105  (a tag name, not a secret)
SEND_TOKEN_HEADER = "X-Mailflow-Send"  # noqa: S105
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
# Where each event type keeps its own facts (event publishing and notification formats).
_DETAIL_KEY = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "DeliveryDelay": "deliveryDelay",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "failure",
    "Subscription": "subscription",
}


@dataclass(frozen=True)
class SesEvent:
    """One SES event: its type, SES's message id, when the mail was sent, our token."""

    event_type: str
    ses_message_id: str
    sent_at: float  # mail.timestamp, epoch seconds
    token: str | None  # None for mail not sent by this version of mailflow
    message_id: str | None  # the Message-ID header, when SES passed it on
    detail: dict[str, Any] = field(default_factory=dict)  # `bounce`, `delivery`, ...


def parse_event(body: str) -> SesEvent:
    """The event in an SQS body (SNS envelope or raw); ValidationFailed when it is none."""
    document = _json(body, "the message")
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        document = _json(document["Message"], "the SNS notification's Message")
    event_type = document.get("eventType") or document.get("notificationType")
    mail = document.get("mail")
    if not isinstance(event_type, str) or not isinstance(mail, dict):
        raise ValidationFailed(
            "not an SES event: it needs `eventType` (or `notificationType`) and `mail`",
            code="invalid_ses_event",
        )
    ses_message_id = mail.get("messageId")
    if not isinstance(ses_message_id, str) or not ses_message_id:
        raise ValidationFailed("SES event without mail.messageId", code="invalid_ses_event")
    return SesEvent(
        event_type=event_type,
        ses_message_id=ses_message_id,
        sent_at=_timestamp(mail.get("timestamp")),
        token=_token(mail),
        message_id=_common_header(mail, "messageId"),
        detail=_detail(document, event_type),
    )


def _detail(document: dict[str, Any], event_type: str) -> dict[str, Any]:
    detail = document.get(_DETAIL_KEY.get(event_type, ""))
    return detail if isinstance(detail, dict) else {}


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"{what} is not JSON: {exc}", code="invalid_ses_event") from exc
    if not isinstance(value, dict):
        raise ValidationFailed(f"{what} is not a JSON object", code="invalid_ses_event")
    return value


def _timestamp(value: Any) -> float:
    if not isinstance(value, str):
        raise ValidationFailed("SES event without mail.timestamp", code="invalid_ses_event")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ValidationFailed(
            f"mail.timestamp {value[:40]!r} is not a time", code="invalid_ses_event"
        ) from exc


def _token(mail: dict[str, Any]) -> str | None:
    """Our attempt token, from the tag or else the header; anything malformed is no token."""
    tags = mail.get("tags")
    candidates: list[Any] = []
    if isinstance(tags, dict) and isinstance(tags.get(SEND_TOKEN_TAG), list):
        candidates.extend(tags[SEND_TOKEN_TAG])
    headers = mail.get("headers")
    if isinstance(headers, list):
        candidates.extend(
            h.get("value")
            for h in headers
            if isinstance(h, dict) and str(h.get("name", "")).lower() == SEND_TOKEN_HEADER.lower()
        )
    for candidate in candidates:
        if isinstance(candidate, str) and _TOKEN.match(candidate.strip()):
            return candidate.strip()
    return None


def _common_header(mail: dict[str, Any], name: str) -> str | None:
    common = mail.get("commonHeaders")
    value = common.get(name) if isinstance(common, dict) else None
    return value if isinstance(value, str) else None
