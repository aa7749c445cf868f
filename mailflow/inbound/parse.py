"""Raw MIME -> `ParsedEmail` (pure; no I/O, no policy).

Parsed with `email.policy.default`, which decodes RFC 2047 headers and RFC 2231/2047
parameters. What the standard library leaves to us:

- text bodies are decoded strictly with the declared charset, and when that fails (a
  wrong declaration is common) with UTF-8, ISO-2022-JP (when escape sequences show it)
  and finally Windows-1252; every fallback is recorded so the app can know;
- a `message/rfc822` part is an attachment (a forwarded email), never walked into;
- an inline part keeps its Content-ID whether or not it has a filename;
- attachment payloads are decoded lazily, one at a time, to bound memory on 40 MB mail;
- malformed structure never raises: what the parser complained about lands in `defects`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import IO, Any, Literal

from mailflow.contracts.inbound import CharsetFallback, EmailAddress, EmailHeaders, Verdicts

_MSGID = re.compile(r"<([^<>\s]+)>")
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_ISO2022_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(B")


@dataclass
class ParsedAttachment:
    """A non-body part. `data()` decodes it on demand (keep at most one decoded at a time)."""

    part: Message
    content_type: str
    filename: str | None
    content_id: str | None
    disposition: Literal["inline", "attachment"]

    def data(self) -> bytes:
        """The decoded bytes; an attached email is serialized back to MIME."""
        if self.content_type == "message/rfc822":
            inner = self.part.get_payload(0) if self.part.is_multipart() else None
            if isinstance(inner, Message):
                return inner.as_bytes(policy=policy.default)
        encoded = self.part.get_payload()
        if (
            isinstance(encoded, str)
            and self.part.get("Content-Transfer-Encoding", "").strip().lower() == "base64"
        ):
            try:
                # One copy, not the stdlib's four (it splits lines and joins them
                # again): a 30 MB attachment costs 30 MB here, not about 170 MB.
                return binascii.a2b_base64(encoded)
            except (binascii.Error, ValueError):
                pass  # padding errors or 8-bit junk: the stdlib repairs what it can
        payload = self.part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""


@dataclass
class ParsedEmail:
    """Everything the inbound message needs from the MIME, before policy and storage."""

    message_id: str | None = None
    from_: EmailAddress | None = None
    sender: EmailAddress | None = None
    to: list[EmailAddress] = field(default_factory=list)
    cc: list[EmailAddress] = field(default_factory=list)
    reply_to: list[EmailAddress] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    headers: EmailHeaders = field(default_factory=EmailHeaders)
    charset_fallbacks: list[CharsetFallback] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    is_auto_reply: bool = False
    # What SES wrote on top of the raw email (used when the notification had no envelope).
    ses_recipient: str | None = None
    ses_verdicts: Verdicts = field(default_factory=Verdicts)


def parse_bytes(raw: bytes) -> ParsedEmail:
    """Parse a complete email held in memory."""
    return parse_message(BytesParser(policy=policy.default).parsebytes(raw))


def parse_file(stream: IO[bytes]) -> ParsedEmail:
    """Parse from a file object (a spooled download), without a second copy in memory."""
    return parse_message(BytesParser(policy=policy.default).parse(stream))


def parse_message(message: Message) -> ParsedEmail:
    parsed = ParsedEmail()
    _read_headers(message, parsed)
    _read_parts(message, parsed)
    parsed.defects.extend(_defects(message))
    parsed.is_auto_reply = _is_auto_reply(message, parsed)
    parsed.ses_recipient = _ses_recipient(message)
    parsed.ses_verdicts = _ses_verdicts(message)
    return parsed


# -- headers -----------------------------------------------------------------------------


def _header(message: Message, name: str) -> str | None:
    """A header as decoded text; None when absent; never raises on malformed input."""
    try:
        value = message.get(name)
    except Exception:  # a header the registry cannot parse at all
        raw = _raw_values(message, name)
        value = raw[0] if raw else None
    if value is None:
        return None
    return clean_text(" ".join(str(value).split()))


def clean_text(text: str) -> str:
    """Undo the parser's surrogate escapes of raw 8-bit header bytes.

    Raw UTF-8 in headers (RFC 6532, and common anyway) becomes real text; other bytes
    become U+FFFD. Lone surrogates would otherwise make the JSON unencodable.
    """
    if text.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")


def _raw_values(message: Message, name: str) -> list[str]:
    """A header's unparsed values (the registry's parser can raise on hostile input)."""
    return [str(v) for k, v in message.raw_items() if k.lower() == name.lower()]


def _addresses(message: Message, name: str) -> list[EmailAddress]:
    try:
        header: Any = message.get(name)
        found: tuple[Address, ...] = tuple(header.addresses) if header is not None else ()
        result: list[EmailAddress] = []
        for addr in found:
            spec = addr.addr_spec if addr.username else ""
            if spec and spec != "<>":
                display = clean_text(addr.display_name) if addr.display_name else None
                result.append(EmailAddress(address=clean_text(spec), name=display))
    except Exception:
        return _addresses_fallback(message, name)
    return result


def _addresses_fallback(message: Message, name: str) -> list[EmailAddress]:
    from email.utils import getaddresses

    values = _raw_values(message, name)
    return [
        EmailAddress(address=clean_text(addr), name=clean_text(display) or None)
        for display, addr in getaddresses(values)
        if "@" in addr
    ]


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _MSGID.findall(value)
    return found or [part for part in value.split() if part]


def _read_headers(message: Message, parsed: ParsedEmail) -> None:
    ids = _message_ids(_header(message, "Message-ID"))
    parsed.message_id = ids[0] if ids else None
    senders = _addresses(message, "From")
    parsed.from_ = senders[0] if senders else None
    sender = _addresses(message, "Sender")
    parsed.sender = sender[0] if sender else None
    parsed.to = _addresses(message, "To")
    parsed.cc = _addresses(message, "Cc")
    parsed.reply_to = _addresses(message, "Reply-To")
    parsed.subject = _header(message, "Subject") or ""
    parsed.date = _date(message)
    in_reply_to = _message_ids(_header(message, "In-Reply-To"))
    parsed.headers = EmailHeaders.model_validate(
        {
            "in-reply-to": in_reply_to[0] if in_reply_to else None,
            "references": _message_ids(_header(message, "References")),
            "auto-submitted": _header(message, "Auto-Submitted"),
            "precedence": _header(message, "Precedence"),
            "list-id": _header(message, "List-Id"),
            "list-unsubscribe": _header(message, "List-Unsubscribe"),
            "return-path": _header(message, "Return-Path"),
            "x-mailer": _header(message, "X-Mailer"),
        }
    )


def _date(message: Message) -> datetime | None:
    try:
        value: Any = message.get("Date")
        stamp = getattr(value, "datetime", None)
        if isinstance(stamp, datetime):
            return stamp
        return parsedate_to_datetime(str(value)) if value else None
    except Exception:  # any malformed Date is simply no date
        return None


def _is_auto_reply(message: Message, parsed: ParsedEmail) -> bool:
    """RFC 3834 and common practice: answering these automatically makes mail loops."""
    auto = (parsed.headers.auto_submitted or "").lower()
    if auto and not auto.startswith("no"):
        return True
    if any(message.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponse")):
        return True
    if (parsed.headers.precedence or "").lower() in _AUTO_PRECEDENCE:
        return True
    if (parsed.headers.return_path or "").strip() == "<>":
        return True
    sender = parsed.from_.address.lower() if parsed.from_ else ""
    return sender.startswith(("mailer-daemon@", "postmaster@"))


# -- what SES wrote into the raw email ----------------------------------------------------

_FOR_CLAUSE = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+)>?", re.IGNORECASE)
_AUTH_RESULT = re.compile(r"\b(spf|dkim|dmarc)=(\w+)", re.IGNORECASE)
_AUTH_STATUS = {
    "pass": "PASS",
    "fail": "FAIL",
    "softfail": "FAIL",
    "hardfail": "FAIL",
    "neutral": "GRAY",
    "none": "GRAY",
    "temperror": "PROCESSING_FAILED",
    "permerror": "PROCESSING_FAILED",
}


def _ses_recipient(message: Message) -> str | None:
    """The envelope recipient SES names in the Received header it prepended (top-most)."""
    received = message.get_all("Received", failobj=[])
    if not received:
        return None
    top = str(received[0])
    if "amazonaws.com" not in top and "amazonses.com" not in top:
        return None
    match = _FOR_CLAUSE.search(top)
    return match.group(1) if match else None


def _ses_verdicts(message: Message) -> Verdicts:
    """Verdicts from SES's own headers; the first occurrence is SES's (it prepends)."""
    values: dict[str, str] = {}
    for name, header in (("spam", "X-SES-Spam-Verdict"), ("virus", "X-SES-Virus-Verdict")):
        value = (_header(message, header) or "").upper()
        if value in {"PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"}:
            values[name] = value
    results = message.get_all("Authentication-Results", failobj=[])
    ses_results = [str(r) for r in results if str(r).strip().lower().startswith("amazonses.com")]
    if ses_results:
        for method, result in _AUTH_RESULT.findall(ses_results[0]):
            values.setdefault(method.lower(), _AUTH_STATUS.get(result.lower(), "GRAY"))
    return Verdicts.model_validate(values)


# -- parts --------------------------------------------------------------------------------


def _leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order; an attached message is a leaf (it is one attachment)."""
    if part.get_content_type() == "message/rfc822":
        yield part
        return
    if part.is_multipart():
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message):
                yield from _leaves(child)
        return
    yield part


def _read_parts(message: Message, parsed: ParsedEmail) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    for part in _leaves(message):
        if _is_body(part, message):
            kind: Literal["text", "html"] = (
                "html" if part.get_content_type() == "text/html" else "text"
            )
            decoded = _decode_text(part, kind, parsed)
            (htmls if kind == "html" else texts).append(decoded)
        else:
            parsed.attachments.append(_attachment(part))
    parsed.text = "\n".join(texts) if texts else None
    parsed.html = "\n".join(htmls) if htmls else None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name and part.get_content_type() != "message/rfc822":
        name = part.get_param("name", header="content-type")  # type: ignore[assignment]
        name = str(name) if isinstance(name, str) else None
    return clean_text(name) if name else None


def _is_body(part: Message, root: Message) -> bool:
    """A text/plain or text/html part that is not an attachment is (part of) the body."""
    if part.get_content_type() not in {"text/plain", "text/html"}:
        return False
    disposition = _disposition(part)
    if disposition == "attachment":
        return False
    # A named text part inside a multipart/mixed (not the root) is a text attachment.
    return part is root or disposition == "inline" or _filename(part) is None


def _content_id(part: Message) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    text = clean_text(str(value).strip())
    return text[1:-1].strip() if text.startswith("<") and text.endswith(">") else text or None


def _attachment(part: Message) -> ParsedAttachment:
    content_id = _content_id(part)
    disposition = _disposition(part)
    inline = disposition == "inline" or (disposition is None and content_id is not None)
    filename = _filename(part)
    if filename is None and part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0) if part.is_multipart() else None
        subject = _header(inner, "Subject") if isinstance(inner, Message) else None
        filename = f"{subject or 'message'}.eml"
    return ParsedAttachment(
        part=part,
        content_type=part.get_content_type(),
        filename=filename,
        content_id=content_id,
        disposition="inline" if inline else "attachment",
    )


def _declared_charset(part: Message) -> str | None:
    charset = part.get_param("charset")
    return str(charset).strip().strip('"').lower() if isinstance(charset, str) else None


def _decode_text(part: Message, kind: Literal["text", "html"], parsed: ParsedEmail) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    declared = _declared_charset(part)
    text, used = decode_text_bytes(data, declared)
    if used != (declared or "us-ascii") and not (declared is None and used == "utf-8"):
        parsed.charset_fallbacks.append(CharsetFallback(part=kind, declared=declared, used=used))
    return text.replace("\r\n", "\n")  # wire line endings are not content


def decode_text_bytes(data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode text bytes, trusting the declaration only as far as the bytes allow.

    Returns the text and the charset actually used. A single-byte declaration decodes
    any bytes, so valid multi-byte UTF-8 under such a label (a very common mistake, and
    one Latin-1 text almost never produces by chance) is read as UTF-8. Windows-1252 ends
    the chain because it decodes nearly anything; its few undefined bytes become U+FFFD.
    """
    candidates: list[str] = []
    if any(esc in data for esc in _ISO2022_ESCAPES) and declared in {None, "us-ascii", "ascii"}:
        candidates.append("iso-2022-jp")
    if declared and _is_single_byte(declared) and _is_multibyte_utf8(data):
        candidates.append("utf-8")
    if declared:
        candidates.append(declared)
    candidates.append("utf-8")
    for charset in candidates:
        try:
            return data.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("windows-1252", errors="replace"), "windows-1252"


def _is_single_byte(charset: str) -> bool:
    return charset.startswith(("iso-8859", "iso8859", "latin", "windows-125", "cp125"))


def _is_multibyte_utf8(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _defects(message: Message) -> list[str]:
    names: list[str] = []
    for part in message.walk():
        for defect in getattr(part, "defects", []):
            name = type(defect).__name__
            if name not in names:
                names.append(name)
    return names
