"""Pure MIME composition with the standard library's `email` package.

The message is 7-bit clean (quoted-printable or base64 bodies, RFC 2047 encoded words,
RFC 2231 filenames), so it survives any relay and SES without 8BITMIME/SMTPUTF8. Lines
end in CRLF and long headers are folded by the `SMTP` policy.

Shapes: text -> text/plain; html -> text/html; both -> multipart/alternative (text first,
so the preferred html is last); attachments -> multipart/mixed around that body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, formataddr

from mailflow.outbound.validation import Mailbox, ValidatedEmail

# 7bit: never emit raw 8-bit bytes (SES and some relays reject them without 8BITMIME).
MIME_POLICY = policy.SMTP.clone(cte_type="7bit")

_PRIORITY_HEADERS = {
    "high": (("X-Priority", "1 (Highest)"), ("Importance", "high")),
    "low": (("X-Priority", "5 (Lowest)"), ("Importance", "low")),
}


@dataclass(frozen=True)
class LoadedAttachment:
    """An attachment's bytes, fetched and size-checked by the I/O shell."""

    filename: str
    content_type: str
    data: bytes


def message_id_for(email: ValidatedEmail) -> str:
    """A Message-ID on the sender's domain (one of ours), stable for one logical email.

    Derived from (source, correlationId, payload hash): a retry of the same email keeps
    its id, and a different email that reuses a correlationId after 24 h gets a new one.
    """
    digest = hashlib.sha256(
        f"{email.app}\x00{email.correlation_id}\x00{email.payload_hash}".encode()
    ).hexdigest()[:40]
    domain = email.sender.address.rpartition("@")[2]
    return f"<{digest}.{email.app}@{domain}>"


class PreFoldedHeader(str):
    """A header value we encoded and folded ourselves; the policy emits it verbatim.

    `email.policy` keeps any value that has a `name` and a `fold()` as it is. We need
    that for address headers: the modern folder drops a real space when it splits a
    non-ASCII display name into several encoded words at that space (found by the
    hypothesis test; CPython 3.11), so "Jörg ¡Hola"-like names could lose a blank.
    """

    name: str

    def __new__(cls, name: str, value: str) -> PreFoldedHeader:
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _mailbox_text(header: str, mailbox: Mailbox, linesep: str) -> str:
    """`name <addr>`: ASCII names quoted as needed, others as RFC 2047 encoded words.

    The legacy `Header` encoder splits long names into encoded words on character
    boundaries with *no* meaningful blank between them (RFC 2047 6.2), so decoding
    restores the name exactly.
    """
    if not mailbox.name:
        return mailbox.address
    if mailbox.name.isascii():
        return formataddr((mailbox.name, mailbox.address))
    words = Header(mailbox.name, "utf-8", header_name=header).encode(linesep=linesep)
    return f"{words} <{mailbox.address}>"


def _address_header(header: str, mailboxes: tuple[Mailbox, ...]) -> PreFoldedHeader:
    linesep = MIME_POLICY.linesep
    value = f",{linesep} ".join(_mailbox_text(header, m, linesep) for m in mailboxes)
    return PreFoldedHeader(header, value)


def _headers(msg: EmailMessage, email: ValidatedEmail, message_id: str, date: datetime) -> None:
    msg["From"] = _address_header("From", (email.sender,))
    if email.to:
        msg["To"] = _address_header("To", email.to)
    if email.cc:
        msg["Cc"] = _address_header("Cc", email.cc)
    if email.reply_to:
        msg["Reply-To"] = _address_header("Reply-To", email.reply_to)
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if email.in_reply_to:
        msg["In-Reply-To"] = email.in_reply_to
    if email.references:
        msg["References"] = " ".join(email.references)
    if email.auto_submitted != "no":
        msg["Auto-Submitted"] = email.auto_submitted
        # Ask Exchange/Outlook not to answer with out-of-office replies (mail loops).
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in _PRIORITY_HEADERS.get(email.priority or "", ()):
        msg[name] = value


def _body(msg: EmailMessage, email: ValidatedEmail) -> None:
    if email.text is not None:
        msg.set_content(email.text, subtype="plain", charset="utf-8")
        if email.html is not None:
            msg.add_alternative(email.html, subtype="html", charset="utf-8")
    else:
        msg.set_content(email.html or "", subtype="html", charset="utf-8")


def compose(
    email: ValidatedEmail,
    attachments: list[LoadedAttachment],
    *,
    message_id: str,
    date: datetime,
) -> bytes:
    """The complete RFC 5322 message as bytes (Bcc deliberately absent)."""
    msg = EmailMessage(policy=MIME_POLICY)
    _headers(msg, email, message_id, date)
    _body(msg, email)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if maintype in {"multipart", "message"}:
            # Such parts may not be base64-encoded (RFC 2046) and arbitrary bytes cannot
            # be trusted to be 7-bit: ship them opaque; the filename keeps the extension.
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return msg.as_bytes(policy=MIME_POLICY)
