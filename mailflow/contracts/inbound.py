"""The inbound app message: what an app receives on `mailflow-<app>` for each email.

Field names follow the original system's README ("Inbound Message"); everything beyond
it is additive (`version` stays "1.0"). docs/inbound.md documents every field; the JSON
Schema (`mailflow schema`) is generated from these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mailflow.contracts.base import Instant, WireModel

VerdictStatus = Literal["PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED", "UNKNOWN"]


class EmailAddress(WireModel):
    """One mailbox: `name` is the decoded display name (RFC 2047), when there is one."""

    address: str
    name: str | None = None


class EmailBody(WireModel):
    """The readable parts. `html` is sanitized with nh3 (see docs/inbound.md)."""

    text: str | None = None
    html: str | None = None
    stripped_text: str | None = Field(
        default=None,
        description="The new text of a reply: `text` (else `html` as text) without the quoted"
        " history and the signature; the whole text, trimmed, when it is no reply; absent"
        " when the email has no body.",
    )


class Attachment(WireModel):
    """One attachment or inline part, stored in the attachments bucket.

    A blocked or failed attachment stays in the list (with `status` and `reason`) and
    has no S3 location or URL, so the app can tell the sender what was dropped.
    """

    id: str = Field(description="Server-generated id; also the last segment of s3Key.")
    filename: str = Field(description="Sanitized, deduplicated filename (Unicode kept).")
    original_filename: str | None = Field(
        default=None, description="The decoded filename as the sender gave it, if any."
    )
    content_type: str = Field(description="Declared MIME type, full type/subtype.")
    detected_content_type: str | None = Field(
        default=None, description="Type detected from the bytes (magic numbers), if known."
    )
    size: int = Field(description="Decoded size in bytes.")
    checksum: str = Field(description="SHA-256 of the decoded bytes, lowercase hex.")
    s3_bucket: str | None = None
    s3_key: str | None = None
    presigned_url: str | None = None
    presigned_url_expires_at: Instant | None = None
    content_id: str | None = Field(
        default=None, description="Content-ID without angle brackets; resolves `cid:` in html."
    )
    disposition: Literal["inline", "attachment"] = "attachment"
    status: Literal["stored", "blocked", "failed"] = "stored"
    reason: str | None = Field(default=None, description="Why blocked or failed.")


class EmailHeaders(BaseModel):
    """Selected headers, keyed by their lowercase header names (as in the original README).

    Message ids here keep no angle brackets, like `email.messageId`.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    in_reply_to: str | None = Field(default=None, alias="in-reply-to")
    references: list[str] = Field(default_factory=list)
    auto_submitted: str | None = Field(default=None, alias="auto-submitted")
    precedence: str | None = None
    list_id: str | None = Field(default=None, alias="list-id")
    list_unsubscribe: str | None = Field(default=None, alias="list-unsubscribe")
    return_path: str | None = Field(default=None, alias="return-path")
    x_mailer: str | None = Field(default=None, alias="x-mailer")


class Email(WireModel):
    """The parsed email."""

    message_id: str | None = Field(
        default=None, description="The Message-ID header without angle brackets; absent if none."
    )
    from_: EmailAddress | None = Field(default=None, alias="from")
    sender: EmailAddress | None = Field(default=None, description="The Sender header, if any.")
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    reply_to: list[EmailAddress] = Field(default_factory=list)
    subject: str = ""
    date: Instant | None = Field(default=None, description="The Date header, if parseable.")
    body: EmailBody = Field(default_factory=EmailBody)
    attachments: list[Attachment] = Field(default_factory=list)
    headers: EmailHeaders = Field(default_factory=EmailHeaders)
    received_at: Instant = Field(description="When SES received the email.")


class RawEmailLocation(WireModel):
    """Where the unmodified MIME lives (the raw bucket, written by SES)."""

    s3_bucket: str
    s3_key: str


class Verdicts(WireModel):
    """SES receipt verdicts; UNKNOWN when the notification did not carry one."""

    spam: VerdictStatus = "UNKNOWN"
    virus: VerdictStatus = "UNKNOWN"
    spf: VerdictStatus = "UNKNOWN"
    dkim: VerdictStatus = "UNKNOWN"
    dmarc: VerdictStatus = "UNKNOWN"
    dmarc_policy: str | None = Field(
        default=None, description="none|quarantine|reject; SES sets it only when DMARC fails."
    )


class CharsetFallback(WireModel):
    """A text part whose declared charset did not decode its bytes."""

    part: str = Field(description="Which part: 'text' or 'html'.")
    declared: str | None
    used: str


class InboundMetadata(WireModel):
    """Routing and provenance."""

    routing_key: str = Field(description="The app name, or '_default' for the default queue.")
    domain: str = Field(description="Our domain the (first) matching recipient was on.")
    recipients: list[str] = Field(description="Envelope recipients that matched this route.")
    mailbox_hash: str | None = Field(
        default=None, description="The plus tag of the first matching recipient (`_app+TAG@`)."
    )
    ses_message_id: str
    raw_email: RawEmailLocation
    verdicts: Verdicts = Field(default_factory=Verdicts)
    charset_fallback: bool = False
    charset_fallbacks: list[CharsetFallback] = Field(default_factory=list)
    is_auto_reply: bool = Field(
        default=False,
        description="True for auto-replies, bounces (delivery reports) and bulk mail (RFC 3834"
        " signals; see docs/inbound.md): do not answer these automatically.",
    )
    is_bulk: bool = Field(
        default=False,
        description="True for mailing-list and bulk mail (List-Id, List-Unsubscribe,"
        " Precedence: bulk|list|junk); such mail is also isAutoReply.",
    )
    auto_submitted: str | None = Field(default=None, description="The Auto-Submitted header.")
    parse_defects: list[str] = Field(
        default_factory=list, description="MIME defects the parser noted (malformed input)."
    )
    recipient_source: Literal["envelope", "received-header", "headers"] = Field(
        default="envelope",
        description="Where the recipients came from: SES envelope (notifications), else the"
        " SES Received header or To/Cc (S3 event notifications carry no envelope).",
    )


class InboundMessage(WireModel):
    """The JSON document an app receives for one received email."""

    version: Literal["1.0"] = "1.0"
    type: Literal["email.received"] = "email.received"
    message_id: str = Field(
        description="Deterministic per (SES message id, app): uuid5; equal ids are duplicates."
    )
    timestamp: Instant = Field(description="When mailflow built this message.")
    source: Literal["mailflow"] = "mailflow"
    email: Email
    metadata: InboundMetadata
