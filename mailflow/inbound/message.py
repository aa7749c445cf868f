"""Assembling the app message and the server-side names it uses (pure).

Every id and key here is derived from the SES message id (chosen by SES, not by the
sender), the destination and a part's position, never from the sender-controlled
Message-ID or filename: a retry rewrites the same objects instead of leaving orphans, a
redelivery yields the same `messageId`, and no sender can make two emails collide.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from mailflow.contracts.inbound import (
    Attachment,
    Email,
    EmailBody,
    InboundMessage,
    InboundMetadata,
    RawEmailLocation,
    Verdicts,
)
from mailflow.inbound.parse import ParsedEmail
from mailflow.inbound.reply import stripped_text
from mailflow.inbound.routing import Destination
from mailflow.inbound.sanitize import sanitize_html

# Fixed namespace of mailflow's uuid5 ids (changing it changes every id: never do).
NAMESPACE = uuid.UUID("5b0c7d1e-6a3f-5e8b-9c1d-2f4a6b8c0e13")


def app_message_id(ses_message_id: str, route_key: str) -> str:
    """The app message's `messageId`: one per (SES message, app), stable across retries."""
    return str(uuid.uuid5(NAMESPACE, f"inbound/{ses_message_id}/{route_key}"))


def attachment_id(ses_message_id: str, route_key: str, index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"attachment/{ses_message_id}/{route_key}/{index}"))


def attachment_key(route_key: str, received_at: datetime, identifier: str) -> str:
    """`inbound/<app>/<YYYY-MM-DD>/<uuid>` in the attachments bucket."""
    return f"inbound/{route_key}/{received_at:%Y-%m-%d}/{identifier}"


def payload_key(prefix: str, route_key: str, received_at: datetime, message_id: str) -> str:
    """Where an oversized app message's JSON goes (attachments bucket)."""
    return f"{prefix}{route_key}/{received_at:%Y-%m-%d}/{message_id}.json"


def readable_body(parsed: ParsedEmail, *, sanitize: bool) -> EmailBody:
    """The text, the (sanitized) HTML and the reply's new text: computed once per email,
    for every destination. The new text is read from the sanitized HTML when there is no
    text part, so what it shows is what the app's HTML shows."""
    html = parsed.html
    if html is not None and sanitize:
        html = sanitize_html(html)
    return EmailBody(text=parsed.text, html=html, stripped_text=stripped_text(parsed.text, html))


def build_message(
    *,
    parsed: ParsedEmail,
    body: EmailBody,
    destination: Destination,
    ses_message_id: str,
    raw: RawEmailLocation,
    received_at: datetime,
    verdicts: Verdicts,
    attachments: list[Attachment],
    recipient_source: str,
    now: datetime,
) -> InboundMessage:
    """The JSON document for one destination."""
    email = Email(
        message_id=parsed.message_id,
        from_=parsed.from_,
        sender=parsed.sender,
        to=parsed.to,
        cc=parsed.cc,
        reply_to=parsed.reply_to,
        subject=parsed.subject,
        date=parsed.date,
        body=body,
        attachments=attachments,
        headers=parsed.headers,
        received_at=received_at,
    )
    metadata = InboundMetadata.model_validate(
        {
            "routing_key": destination.key,
            "domain": destination.domain,
            "recipients": destination.recipients,
            "mailbox_hash": destination.mailbox_hash,
            "ses_message_id": ses_message_id,
            "raw_email": raw,
            "verdicts": verdicts,
            "charset_fallback": bool(parsed.charset_fallbacks),
            "charset_fallbacks": parsed.charset_fallbacks,
            "is_auto_reply": parsed.is_auto_reply,
            "is_bulk": parsed.is_bulk,
            "auto_submitted": parsed.headers.auto_submitted,
            "parse_defects": parsed.defects,
            "recipient_source": recipient_source,
        }
    )
    return InboundMessage(
        message_id=app_message_id(ses_message_id, destination.key),
        timestamp=now,
        email=email,
        metadata=metadata,
    )
