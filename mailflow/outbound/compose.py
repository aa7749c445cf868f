"""Pure MIME composition with the standard library's `email` package.

The message is 7-bit clean (quoted-printable or base64 bodies, RFC 2047 encoded words,
RFC 2231 filenames), so it survives any relay and SES without 8BITMIME/SMTPUTF8. Lines
end in CRLF.

Every header value built from an app's input is encoded and folded here and written
verbatim (`PreFoldedHeader`), never handed to the library's header parser: that parser
*decodes* RFC 2047 encoded words it finds in plain text, so a subject such as
`=?utf-8?b?SW52b2ljZQ0KQmNjOiBl...?=` (base64 of "Invoice\r\nBcc: e...") came out as a
real `Bcc:` line. Text that could be mistaken for an encoded word is itself encoded, so
a decoder shows the app's literal text and no decoder can turn it into a header line.

Shapes: text -> text/plain; html -> text/html; both -> multipart/alternative (text first,
so the preferred html is last); attachments -> multipart/mixed around that body.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.message import EmailMessage, MIMEPart
from email.policy import Policy
from email.utils import format_datetime, formataddr
from urllib.parse import quote

from mailflow.feedback.event import SEND_TOKEN_HEADER
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


_LONGEST_PLAIN_WORD = 70


def _plain_ascii(text: str) -> bool:
    """May `text` be written as it is? ASCII, no encoded-word opener, foldable words."""
    return (
        text.isascii()
        and "=?" not in text
        and all(len(word) <= _LONGEST_PLAIN_WORD for word in text.split())
    )


def encoded_text(header: str, text: str, linesep: str = "\r\n") -> str:
    """Unstructured header text (a subject): folded ASCII, or RFC 2047 encoded words.

    The legacy `Header` encoder splits long text into encoded words on character
    boundaries with *no* meaningful blank between them (RFC 2047 6.2), so decoding
    restores the text exactly, `=?...?=` sequences included.
    """
    charset = "us-ascii" if _plain_ascii(text) else "utf-8"
    return Header(text, charset, header_name=header).encode(linesep=linesep)


def _mailbox_text(header: str, mailbox: Mailbox, linesep: str) -> str:
    """`name <addr>`: plain ASCII names quoted as needed, others as encoded words."""
    if not mailbox.name:
        return mailbox.address
    if _plain_ascii(mailbox.name):
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
    linesep = MIME_POLICY.linesep
    msg["Subject"] = PreFoldedHeader("Subject", encoded_text("Subject", email.subject, linesep))
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    # Message ids were checked to be printable ASCII without blanks or brackets.
    if email.in_reply_to:
        msg["In-Reply-To"] = PreFoldedHeader("In-Reply-To", email.in_reply_to)
    if email.references:
        msg["References"] = PreFoldedHeader("References", f"{linesep} ".join(email.references))
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
    send_token: str | None = None,
) -> bytes:
    """The complete RFC 5322 message as bytes (Bcc deliberately absent).

    `send_token` names this send attempt (`SEND_TOKEN_HEADER`); SES echoes the headers in
    its events, which is how an attempt cut off mid-call learns whether it went out.
    """
    msg = EmailMessage(policy=MIME_POLICY)
    _headers(msg, email, message_id, date)
    if send_token:
        msg[SEND_TOKEN_HEADER] = send_token
    _body(msg, email)
    if attachments and msg.get_content_type() != "multipart/mixed":
        msg.make_mixed()
    for attachment in attachments:
        # typeshed types the payload as the container's own class; any MIMEPart is valid.
        msg.attach(_attachment_part(attachment))  # type: ignore[arg-type]
    return msg.as_bytes(policy=MIME_POLICY)


def _attachment_part(attachment: LoadedAttachment) -> MIMEPart:
    maintype, _, subtype = attachment.content_type.partition("/")
    if maintype in {"multipart", "message"}:
        # Such parts may not be base64-encoded (RFC 2046) and arbitrary bytes cannot
        # be trusted to be 7-bit: ship them opaque; the filename keeps the extension.
        maintype, subtype = "application", "octet-stream"
    part = MIMEPart(policy=MIME_POLICY)
    part.set_content(attachment.data, maintype=maintype, subtype=subtype)
    part["Content-Disposition"] = PreFoldedHeader(
        "Content-Disposition", disposition(attachment.filename, MIME_POLICY.linesep)
    )
    return part


_PARAMETER_CHUNK = 60
# Written as a quoted string only when no parser could read it two ways: no quotes,
# backslashes, brackets, `;`, `=` or `?` (encoded words), and short enough for one line.
_PLAIN_FILENAME = re.compile(r"^[A-Za-z0-9 ._\-+()\[\]&,!#$%@~']{1,60}$")


def disposition(filename: str, linesep: str = "\r\n") -> str:
    """`attachment` with the filename as a quoted string, or RFC 2231 when it must be.

    Lenient parsers decode encoded words even inside quoted strings (and CPython reads
    `"<>"` as empty), so any name beyond a plain set of characters is only ever given
    percent-encoded (`filename*=utf-8''...`), split into numbered continuations
    (`filename*0*=`, ...) to keep lines short.
    """
    if _PLAIN_FILENAME.match(filename):
        return f'attachment; filename="{filename}"'
    encoded = quote(filename, safe="")
    chunks = _split_percent_encoded(encoded, _PARAMETER_CHUNK)
    if len(chunks) == 1:
        return f"attachment; filename*=utf-8''{encoded}"
    parts = [f"filename*0*=utf-8''{chunks[0]}"]
    parts += [f"filename*{i}*={chunk}" for i, chunk in enumerate(chunks[1:], start=1)]
    return "attachment;" + linesep + " " + (";" + linesep + " ").join(parts)


def _split_percent_encoded(text: str, size: int) -> list[str]:
    """Chunks of at most `size` characters that never cut a `%XX` escape in two."""
    chunks: list[str] = []
    while text:
        cut = min(size, len(text))
        percent = text.rfind("%", max(0, cut - 2), cut)
        if percent != -1 and cut < len(text):
            cut = percent
        chunks.append(text[:cut])
        text = text[cut:]
    return chunks
