"""Pure validation of an outbound message: from raw SQS body to a send-ready plan.

Everything an app can get wrong is found here, before any AWS call, and reported with a
stable error code (see docs/outbound.md) and a message that names the offending field.
No I/O: settings and the message in, a `ValidatedEmail` or a `MailflowError` out.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header

from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from mailflow.contracts.outbound import AttachmentRef, EmailAddress, OutboundMessage
from mailflow.errors import PolicyRejected, ValidationFailed
from mailflow.settings import AppConfig, Settings

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: any of them in a
# header value can end the header early (injection) or corrupt it.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MIME_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
_MSG_ID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,900}$")  # printable ASCII minus < > and space
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


@dataclass(frozen=True)
class Mailbox:
    """A checked address: `address` is ASCII (IDN domains in punycode), ready for SES."""

    address: str
    name: str | None = None


@dataclass(frozen=True)
class AttachmentPlan:
    """An attachment whose source was checked against the app's allowed locations."""

    filename: str
    content_type: str
    bucket: str
    key: str


@dataclass(frozen=True)
class ValidatedEmail:
    """Everything composition and sending need, already normalized."""

    app: str
    correlation_id: str
    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...]
    subject: str
    text: str | None
    html: str | None
    attachments: tuple[AttachmentPlan, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    priority: str | None
    auto_submitted: str
    scheduled_send_time: datetime | None
    payload_hash: str
    tracking: bool = False

    @property
    def recipients(self) -> tuple[str, ...]:
        """The SES envelope: To, Cc and Bcc (Bcc never appears in a header)."""
        return tuple(m.address for m in (*self.to, *self.cc, *self.bcc))


def raw_source(body: str) -> tuple[str | None, str | None]:
    """Best-effort (source, correlationId) of a body that may not even validate.

    Used to tell the app about a failure when its message is malformed.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    source = data.get("source")
    cid = data.get("correlationId", data.get("correlation_id"))
    return (
        source if isinstance(source, str) else None,
        cid if isinstance(cid, str) else None,
    )


def parse_message(body: str, settings: Settings) -> OutboundMessage:
    """JSON -> model; a failure names every bad field (`email.subject: ...`)."""
    source, _ = raw_source(body)
    app = source if source in settings.apps else None
    try:
        return OutboundMessage.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:10]
        ]
        raise ValidationFailed(
            "invalid outbound message: " + "; ".join(problems),
            code="invalid_message",
            app=app,
        ) from None


def payload_hash(message: OutboundMessage) -> str:
    """SHA-256 of what the email *is* (source, correlationId, email, options).

    `timestamp` and `version` are left out: an app that re-sends the same email with a
    fresh timestamp is sending the same email, not a conflicting one.
    """
    canonical = message.model_dump(
        mode="json", by_alias=True, include={"source", "correlation_id", "email", "options"}
    )
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def validate(message: OutboundMessage, settings: Settings) -> ValidatedEmail:
    """Check the message against the contract and the sending app's permissions."""
    app = message.source
    if app not in settings.apps:
        raise ValidationFailed(f"source {app!r} is not a configured app", code="unknown_app")
    try:
        return _validate_for_app(message, app, settings)
    except (ValidationFailed, PolicyRejected) as exc:
        exc.app = app
        raise


def _validate_for_app(message: OutboundMessage, app: str, settings: Settings) -> ValidatedEmail:
    email = message.email
    config = settings.apps[app]
    check_header_value("correlationId", message.correlation_id)
    check_header_value("email.subject", email.subject)
    sender = _mailbox("email.from", email.from_)
    if not sender_allowed(sender.address, app, config, settings.domains):
        raise PolicyRejected(
            f"app {app!r} may not send as email.from: use _{app}@<one of "
            f"{', '.join(settings.domains)}>, an alias of the app or an allowed sender",
            code="sender_not_allowed",
        )
    to = _mailboxes("email.to", email.to)
    cc = _mailboxes("email.cc", email.cc)
    bcc = _mailboxes("email.bcc", email.bcc)
    total = len(to) + len(cc) + len(bcc)
    if total == 0:
        raise ValidationFailed(
            "no recipients: give at least one of to, cc, bcc", code="no_recipients"
        )
    if total > settings.outbound.max_recipients:
        raise ValidationFailed(
            f"{total} recipients; at most {settings.outbound.max_recipients} (to + cc + bcc)",
            code="too_many_recipients",
        )
    if email.body.text is None and email.body.html is None:
        raise ValidationFailed("email.body needs text, html or both", code="empty_body")
    attachments = tuple(
        _attachment(f"email.attachments.{i}", ref, app, config, settings)
        for i, ref in enumerate(email.attachments)
    )
    body_bytes = len((email.body.text or "").encode()) + len((email.body.html or "").encode())
    if body_bytes > settings.outbound.max_message_bytes:
        raise PolicyRejected(
            f"bodies are {body_bytes} bytes; the message limit is "
            f"{settings.outbound.max_message_bytes}",
            code="message_too_large",
        )
    return ValidatedEmail(
        app=app,
        correlation_id=message.correlation_id,
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=_mailboxes("email.replyTo", email.reply_to),
        subject=email.subject,
        text=email.body.text,
        html=email.body.html,
        attachments=attachments,
        in_reply_to=_msg_id("email.headers.in-reply-to", email.headers.in_reply_to),
        references=tuple(
            _msg_id(f"email.headers.references.{i}", ref) or ""
            for i, ref in enumerate(email.headers.references)
        ),
        priority=message.options.priority,
        auto_submitted=message.options.auto_submitted or settings.outbound.auto_submitted,
        scheduled_send_time=message.options.scheduled_send_time,
        payload_hash=payload_hash(message),
        tracking=message.options.tracking,
    )


def check_header_value(field: str, value: str) -> None:
    """Reject CR, LF and every other control character (header injection)."""
    match = _CONTROL.search(value)
    if match:
        raise PolicyRejected(
            f"{field} contains control character U+{ord(match.group()):04X}; header values"
            " must be a single line",
            code="header_injection",
            details={"field": field},
        )


def check_no_hidden_controls(field: str, value: str) -> None:
    """Reject RFC 2047 encoded words that decode to control characters.

    Used for the tokens mailflow writes verbatim (addresses, message ids), where text
    cannot be re-encoded: a lenient decoder downstream would otherwise turn
    `=?utf-8?b?...?=` into a line break. (Free text is encoded instead; see compose.)
    """
    for word in _ENCODED_WORD.findall(value):
        try:
            decoded = str(make_header(decode_header(word)))
        except (ValueError, LookupError, UnicodeError):
            continue  # not a decodable encoded word: it stays literal text everywhere
        check_header_value(f"{field} (decoded RFC 2047 word)", decoded)


def _mailbox(field: str, value: EmailAddress) -> Mailbox:
    check_header_value(f"{field}.address", value.address)
    check_no_hidden_controls(f"{field}.address", value.address)
    if value.name is not None:
        check_header_value(f"{field}.name", value.name)
    return Mailbox(normalize_address(field, value.address), value.name or None)


def _mailboxes(field: str, values: list[EmailAddress]) -> tuple[Mailbox, ...]:
    return tuple(_mailbox(f"{field}.{i}", v) for i, v in enumerate(values))


def normalize_address(field: str, address: str) -> str:
    """RFC 5321/5322 check; the result is ASCII with an IDNA (punycode) domain.

    SES does not speak SMTPUTF8, so a non-ASCII *local part* cannot be sent and is
    rejected here rather than by SES later; a non-ASCII *domain* is fine once encoded.
    """
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValidationFailed(
            f"{field} is not a valid address: {exc}", code="invalid_address"
        ) from None
    if result.ascii_email is None:
        raise ValidationFailed(
            f"{field} has a non-ASCII local part, which SES cannot send",
            code="invalid_address",
        )
    return result.ascii_email


def ascii_domain(domain: str) -> str:
    """A domain in its ASCII (IDNA) form, for comparing configured and given domains."""
    try:
        return domain.strip().lower().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return domain.strip().lower()


def sender_allowed(address: str, app: str, config: AppConfig, domains: tuple[str, ...]) -> bool:
    """May `app` send as `address`? `_app@`, its aliases on our domains, or listed senders."""
    address = address.lower()
    if address in {s.lower() for s in config.allowed_senders}:
        return True
    local, _, domain = address.rpartition("@")
    if domain not in {ascii_domain(d) for d in domains}:
        return False
    if local == f"_{app}":
        return True
    for alias in config.aliases:
        if "@" in alias:
            alias_local, _, alias_domain = alias.rpartition("@")
            if f"{alias_local}@{ascii_domain(alias_domain)}" == address:
                return True
        elif alias == local:
            return True
    return False


def allowed_attachment_sources(
    app: str, config: AppConfig, settings: Settings
) -> list[tuple[str, str]]:
    """(bucket, key prefix) pairs an app may attach from; prefix '' means the whole bucket."""
    sources = [
        (settings.attachments_bucket, f"outbound/{app}/"),
        (settings.attachments_bucket, f"inbound/{app}/"),
    ]
    for entry in config.attachment_sources:
        bucket, _, prefix = entry.strip().strip("/").partition("/")
        sources.append((bucket, f"{prefix.rstrip('/')}/" if prefix else ""))
    return sources


def attachment_allowed(
    bucket: str, key: str, app: str, config: AppConfig, settings: Settings
) -> bool:
    """True when (bucket, key) lies under one of the app's sources.

    Prefixes are matched as directories (`outbound/app1/` never matches
    `outbound/app10/...`), and keys with `.`/`..` segments are refused outright: S3 does
    not normalise them, but proxies and S3-compatible stores in front of it might.
    """
    if any(part in {".", ".."} for part in key.split("/")):
        return False
    return any(
        bucket == b and key.startswith(p)
        for b, p in allowed_attachment_sources(app, config, settings)
    )


def _attachment(
    field: str, ref: AttachmentRef, app: str, config: AppConfig, settings: Settings
) -> AttachmentPlan:
    check_header_value(f"{field}.filename", ref.filename)
    filename = ref.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not filename:
        raise ValidationFailed(
            f"{field}.filename is empty after removing directories", code="invalid_attachment"
        )
    content_type = ref.content_type or guess_content_type(filename)
    if not _MIME_TYPE.match(content_type):
        raise ValidationFailed(
            f"{field}.contentType {content_type!r} is not a MIME type", code="invalid_attachment"
        )
    if not attachment_allowed(ref.s3_bucket, ref.s3_key, app, config, settings):
        allowed = ", ".join(
            f"s3://{b}/{p}" for b, p in allowed_attachment_sources(app, config, settings)
        )
        raise PolicyRejected(
            f"{field}: app {app!r} may not attach s3://{ref.s3_bucket}/{ref.s3_key};"
            f" allowed: {allowed}",
            code="attachment_forbidden",
        )
    return AttachmentPlan(filename, content_type.lower(), ref.s3_bucket, ref.s3_key)


def guess_content_type(filename: str) -> str:

    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def _msg_id(field: str, value: str | None) -> str | None:
    """`<id>` from `id` or `<id>`: ids are never double-bracketed."""
    if value is None:
        return None
    check_header_value(field, value)
    check_no_hidden_controls(field, value)
    bare = value.strip()
    while bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1].strip()
    if not _MSG_ID.match(bare):
        raise ValidationFailed(
            f"{field} is not a message id (printable ASCII, no spaces or <>)",
            code="invalid_header",
        )
    return f"<{bare}>"
