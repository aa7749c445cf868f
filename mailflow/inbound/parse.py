"""Raw MIME -> `ParsedEmail` (pure; no I/O, no policy).

Parsed with `email.policy.default`, which decodes RFC 2047 headers and RFC 2231/2047
parameters. What the standard library leaves to us:

- text bodies are decoded strictly with the declared charset, and when that fails (a
  wrong declaration is common) with UTF-8, ISO-2022-JP (when escape sequences show it)
  and finally Windows-1252; every fallback is recorded so the app can know;
- a `message/rfc822` part is an attachment (a forwarded email), never walked into;
- an inline part keeps its Content-ID whether or not it has a filename;
- attachment payloads are decoded lazily, one at a time, to bound memory on 40 MB mail;
  a large body is not even held as text (`mailflow.inbound.body`): it is decoded from
  the raw email when asked for;
- malformed structure never raises: what the parser complained about lands in `defects`.

The tree is built by `mailflow.inbound.fastmime`: the standard library's feed parser
run over the whole email instead of line by line (the same tree; about ten times
faster from 1 MB up). Every byte is hostile: the parsing itself runs under limits
(`mailflow.inbound.mime`), each breach a named defect in `defects`, and everything read
afterwards goes through accessors that fall back to the raw text. When nothing can be
read at all, parsing raises `PolicyRejected` with code `unparseable_email`: a permanent,
recorded failure, never a retry loop.
"""

from __future__ import annotations

import binascii
import codecs
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import IO, Any, Literal

from mailflow.contracts.inbound import CharsetFallback, EmailAddress, EmailHeaders, Verdicts
from mailflow.inbound.b64 import a2b_base64
from mailflow.inbound.body import RawBody, SharedFile
from mailflow.inbound.fastmime import build_tree_fast
from mailflow.inbound.mime import (
    CHUNK,
    LINESEP,
    MAX_DEPTH,
    MAX_HEADER_CHARS,
    MAX_PARTS,
    MIME_TYPE,
    BoundedPart,
    Defects,
    SafePolicy,
    Unparsed,
    unparseable,
)

_MSGID = re.compile(r"<([^<>\s]+)>")
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponse")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe")
# Microsoft's X-Auto-Response-Suppress values that ask for no automatic answer.
_SUPPRESS_AUTO = frozenset({"all", "oof", "autoreply"})
_ISO2022_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(B")

_NOT_ADDRESS = re.compile(r'[\s()<>,;:"\\]+')
# Codecs that are no charset at all: they interpret backslash escapes (and can produce
# lone surrogates, which no JSON encoder accepts) or refuse everything.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "undefined", "punycode", "idna"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


# Serializing an attached email: headers exactly as received (no refolding, which would
# run them through the registry again).
_SERIALIZE = SafePolicy(refold_source="none")


@dataclass
class ParsedAttachment:
    """A non-body part. `data()` decodes it on demand (keep at most one decoded at a time)."""

    part: Message
    content_type: str
    filename: str | None
    content_id: str | None
    disposition: Literal["inline", "attachment"]

    def data(self) -> bytes:
        """The decoded bytes; an attached email is serialized back to MIME. Never raises:
        a part beyond decoding is returned in its transfer encoding rather than lost."""
        try:
            return self._decoded()
        except Exception:  # not seen in fuzzing; the encoded form beats an exception
            return _undecoded(self.part)

    def _decoded(self) -> bytes:
        if self.content_type == "message/rfc822":
            inner = _children(self.part)
            if inner:
                return inner[0].as_bytes(policy=_SERIALIZE)
        base64 = str(self.part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64"
        raw = self.part.raw_body() if isinstance(self.part, BoundedPart) else None
        # An ASCII body kept as raw bytes is exactly the text get_payload() would return,
        # without making it: decode straight from the raw email.
        encoded: Any = raw.ascii_bytes() if raw is not None and base64 else None
        if encoded is None:
            encoded = self.part.get_payload()
        if isinstance(encoded, str | bytes | memoryview) and base64:
            try:
                # One copy, not the stdlib's four (it splits lines and joins them
                # again): a 30 MB attachment costs 30 MB here, not about 170 MB.
                return a2b_base64(encoded)
            except (binascii.Error, ValueError):
                pass  # padding errors or 8-bit junk: the stdlib repairs what it can
        payload = self.part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""


def _undecoded(part: Message) -> bytes:
    try:
        payload = part.get_payload()
        return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    except Exception:
        return b""


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
    is_bulk: bool = False
    # What SES wrote on top of the raw email (used when the notification had no envelope).
    ses_recipient: str | None = None
    ses_verdicts: Verdicts = field(default_factory=Verdicts)


def parse_bytes(raw: bytes) -> ParsedEmail:
    """Parse a complete email held in memory (large bodies keep referring to `raw`)."""
    return parse_message(build_tree_fast(bytes(raw)))


def parse_file(stream: IO[bytes]) -> ParsedEmail:
    """Parse from a file object (a spooled download), read into memory once.

    When the stream is a real file, the large bodies are then read from it again when
    used (`mailflow.inbound.body.FileBody`) and the copy in memory is dropped: a 40 MB
    email does not stay in memory while it is being delivered.
    """
    file = _shared_file(stream)
    offset = stream.tell() if file is not None else 0
    tree = build_tree_fast(_read_all(stream))
    if file is not None:
        for part in tree.walk():
            if isinstance(part, BoundedPart) and isinstance(raw := part.raw_body(), RawBody):
                part.keep_raw_body(raw.in_file(file, offset))
    return parse_message(tree)


def _shared_file(stream: IO[bytes]) -> SharedFile | None:
    """A descriptor of our own onto the stream's file, when it is a seekable real file
    (and the system reads at an offset: `os.pread`, not on Windows)."""
    try:
        if hasattr(os, "pread") and stream.seekable():
            return SharedFile(stream.fileno())
    except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is an OSError
        pass
    return None


def _read_all(stream: IO[bytes]) -> bytes:
    """Everything left in `stream`, in one allocation when the stream can tell its size;
    its own errors propagate (a failed read is no defect of the email)."""
    first = stream.read()
    more = stream.read()  # a stream may answer read() with less than everything
    if not more:
        return first
    pieces = [first, more]
    while more := stream.read(CHUNK):
        pieces.append(more)
    return b"".join(pieces)


def parse_message(message: Message) -> ParsedEmail:
    """Read a parsed message; malformed input never raises (see the module docstring).

    Raises `PolicyRejected` (`unparseable_email`) only when reading fails as a whole.
    """
    try:
        return _read_message(message)
    except MemoryError:
        raise
    except Exception as exc:
        raise unparseable(exc) from exc


def _read_message(message: Message) -> ParsedEmail:
    found = Defects()
    parsed = ParsedEmail()
    _read_headers(message, parsed, found)
    _read_parts(message, parsed, found)
    parsed.is_bulk = _is_bulk(message, parsed)
    parsed.is_auto_reply = parsed.is_bulk or _is_automated(message, parsed, found)
    parsed.ses_recipient = _ses_recipient(message)
    parsed.ses_verdicts = _ses_verdicts(message)
    for part in _parts(message, found, whole=True):
        for defect in getattr(part, "defects", []):
            found.add(getattr(defect, "mailflow_name", None) or type(defect).__name__)
    parsed.defects = found.names
    return parsed


# -- headers -----------------------------------------------------------------------------


def _get(message: Message, name: str, found: Defects) -> Any:
    """A header as the registry parsed it, or its raw text (`Unparsed`); None when absent.

    Messages parsed here never raise on reading a header; one parsed elsewhere (with
    `policy.default`) may, and is treated the same way.
    """
    try:
        value = message.get(name)
    except Exception:
        raw = _raw_values(message, name)
        value = Unparsed(raw[0][:MAX_HEADER_CHARS], "HeaderParseError") if raw else None
    if isinstance(value, Unparsed):
        found.add(f"{value.reason}:{name}")
    return value


def _header(message: Message, name: str, found: Defects) -> str | None:
    """A header as decoded text, whitespace collapsed; None when absent."""
    value = _get(message, name, found)
    if value is None:
        return None
    text = _decode_words(value) if isinstance(value, Unparsed) else str(value)
    return clean_text(" ".join(text.split()))


def _decode_words(text: str) -> str:
    """RFC 2047 encoded words in raw text, decoded where they can be (best effort)."""
    if "=?" not in text:  # decode_header is linear (64 KB of encoded words: 50 ms)
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def clean_text(text: str) -> str:
    """Undo the parser's surrogate escapes of raw 8-bit header bytes.

    Raw UTF-8 in headers (RFC 6532, and common anyway) becomes real text; other bytes
    become U+FFFD. Lone surrogates would otherwise make the JSON unencodable; those
    that are no escaped byte (a codec such as `unicode-escape` makes them) become
    U+FFFD too.
    """
    if text.isascii() or not _SURROGATE.search(text):
        return text
    text = _LONE_SURROGATE.sub("\ufffd", text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")


def _raw_values(message: Message, name: str) -> list[str]:
    """A header's unparsed values, unfolded (for what SES wrote, and as a last resort)."""
    try:
        return [
            "".join(LINESEP.split(str(v)))
            for k, v in message.raw_items()
            if k.lower() == name.lower()
        ]
    except Exception:
        return []


def _has_header(message: Message, name: str) -> bool:
    try:
        return any(k.lower() == name.lower() for k in message)
    except Exception:
        return False


def _addresses(message: Message, name: str, found: Defects) -> list[EmailAddress]:
    value = _get(message, name, found)
    if value is None:
        return []
    if not isinstance(value, Unparsed):
        try:
            return _registry_addresses(value.addresses)
        except Exception:  # a header object without usable addresses
            found.add(f"HeaderParseError:{name}")
    return _scan_addresses(str(value))


def _registry_addresses(addresses: Iterable[Address]) -> list[EmailAddress]:
    result: list[EmailAddress] = []
    for addr in addresses:
        spec = addr.addr_spec if addr.username else ""
        if spec and spec != "<>":
            display = clean_text(addr.display_name) if addr.display_name else None
            result.append(EmailAddress(address=clean_text(spec), name=display))
    return result


def _scan_addresses(text: str) -> list[EmailAddress]:
    """Mailboxes from a header the registry could not read: forgiving, and linear.

    An entry's address is its last `<...>`, or else its first word with an `@`; the rest
    of the entry, RFC 2047-decoded, is the display name. When an unclosed comment or
    quote swallowed everything, every word with an `@` is an address.
    """
    entries, unclosed = _scan_entries(text)
    found = [mailbox for entry in entries if (mailbox := _scan_mailbox(entry)) is not None]
    if not found and unclosed:
        found = [EmailAddress(address=clean_text(w)) for w in _NOT_ADDRESS.split(text) if "@" in w]
    return found


def _scan_entries(text: str) -> tuple[list[str], bool]:
    """An address list's entries, and whether a comment or a quote was left open.

    Comments are dropped (their nesting counted, not recursed into); entries split at
    commas and semicolons outside quotes and angle brackets; a group's name (`team:`)
    is skipped.
    """
    entries: list[str] = []
    current: list[str] = []
    depth, quoted, angle, escaped = 0, False, False, False
    for ch in text:
        if escaped:
            escaped = False
            if not depth:
                current.append(ch)
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif depth:
            depth += 1 if ch == "(" else -1 if ch == ")" else 0
        elif quoted:
            quoted = ch != '"'
            if quoted:
                current.append(ch)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
        elif ch in ",;:" and not angle:
            if ch != ":":
                entries.append("".join(current))
            current = []
        else:
            angle = (angle or ch == "<") and ch != ">"
            current.append(ch)
    entries.append("".join(current))
    return entries, bool(depth or quoted)


def _scan_mailbox(entry: str) -> EmailAddress | None:
    start, end = entry.rfind("<"), entry.rfind(">")
    if 0 <= start < end:
        address, name = entry[start + 1 : end].strip(), entry[:start] + entry[end + 1 :]
    else:
        address = next((word for word in entry.split() if "@" in word), "")
        name = entry.replace(address, "", 1)
    address = address.strip("<>")
    if "@" not in address or any(ch.isspace() for ch in address):
        return None
    display = clean_text(" ".join(_decode_words(name).split()))
    return EmailAddress(address=clean_text(address), name=display or None)


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _MSGID.findall(value)
    return found or [part for part in value.split() if part]


def _read_headers(message: Message, parsed: ParsedEmail, found: Defects) -> None:
    ids = _message_ids(_header(message, "Message-ID", found))
    parsed.message_id = ids[0] if ids else None
    senders = _addresses(message, "From", found)
    parsed.from_ = senders[0] if senders else None
    sender = _addresses(message, "Sender", found)
    parsed.sender = sender[0] if sender else None
    parsed.to = _addresses(message, "To", found)
    parsed.cc = _addresses(message, "Cc", found)
    parsed.reply_to = _addresses(message, "Reply-To", found)
    parsed.subject = _header(message, "Subject", found) or ""
    parsed.date = _date(message, found)
    in_reply_to = _message_ids(_header(message, "In-Reply-To", found))
    parsed.headers = EmailHeaders.model_validate(
        {
            "in-reply-to": in_reply_to[0] if in_reply_to else None,
            "references": _message_ids(_header(message, "References", found)),
            "auto-submitted": _header(message, "Auto-Submitted", found),
            "precedence": _header(message, "Precedence", found),
            "list-id": _header(message, "List-Id", found),
            "list-unsubscribe": _header(message, "List-Unsubscribe", found),
            "return-path": _header(message, "Return-Path", found),
            "x-mailer": _header(message, "X-Mailer", found),
        }
    )


def _date(message: Message, found: Defects) -> datetime | None:
    value = _get(message, "Date", found)
    stamp = getattr(value, "datetime", None)
    if isinstance(stamp, datetime):
        return stamp
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except Exception:  # any malformed Date is simply no date
        return None


def _is_bulk(message: Message, parsed: ParsedEmail) -> bool:
    """Mailing-list and bulk mail (RFC 2369, RFC 2919, the Precedence convention)."""
    if (parsed.headers.precedence or "").strip().lower() in _BULK_PRECEDENCE:
        return True
    return any(_has_header(message, h) for h in _LIST_HEADERS)


def _is_automated(message: Message, parsed: ParsedEmail, found: Defects) -> bool:
    """Auto-replies and bounces (RFC 3834, RFC 3464 and common practice): answering
    these automatically makes mail loops."""
    auto = (parsed.headers.auto_submitted or "").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if any(_has_header(message, h) for h in _AUTO_HEADERS):
        return True
    if (parsed.headers.precedence or "").strip().lower() in _AUTO_PRECEDENCE:
        return True
    suppress = _header(message, "X-Auto-Response-Suppress", found) or ""
    if _SUPPRESS_AUTO & {token.strip().lower() for token in suppress.split(",")}:
        return True
    if (parsed.headers.return_path or "").replace(" ", "") == "<>":
        return True
    # A delivery status notification or a read receipt (RFC 3462's multipart/report).
    if _content_type(message, found) == "multipart/report":
        return True
    sender = parsed.from_.address.lower() if parsed.from_ else ""
    return sender.startswith(("mailer-daemon@", "postmaster@"))


# -- what SES wrote into the raw email ----------------------------------------------------
# Read from the raw values: SES writes plain ASCII, and nothing a sender adds below it
# can make these raise.

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
    received = _raw_values(message, "Received")
    if not received:
        return None
    top = received[0]
    if "amazonaws.com" not in top and "amazonses.com" not in top:
        return None
    match = _FOR_CLAUSE.search(top)
    return clean_text(match.group(1)) if match else None


def _ses_verdicts(message: Message) -> Verdicts:
    """Verdicts from SES's own headers; the first occurrence is SES's (it prepends)."""
    values: dict[str, str] = {}
    for name, header in (("spam", "X-SES-Spam-Verdict"), ("virus", "X-SES-Virus-Verdict")):
        raw = _raw_values(message, header)
        value = raw[0].strip().upper() if raw else ""
        if value in {"PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"}:
            values[name] = value
    results = _raw_values(message, "Authentication-Results")
    ses_results = [r for r in results if r.strip().lower().startswith("amazonses.com")]
    if ses_results:
        for method, result in _AUTH_RESULT.findall(ses_results[0]):
            values.setdefault(method.lower(), _AUTH_STATUS.get(result.lower(), "GRAY"))
    return Verdicts.model_validate(values)


# -- parts --------------------------------------------------------------------------------


def _children(part: Message) -> list[Message]:
    payload = part.get_payload() if part.is_multipart() else None
    return [child for child in payload if isinstance(child, Message)] if payload else []


def _parts(root: Message, found: Defects, *, whole: bool) -> Iterator[Message]:
    """Parts in document order, without recursion, at most MAX_DEPTH deep and MAX_PARTS many.

    With `whole`, every part, those of attached emails included; otherwise the leaves of
    this email: an attached email is one leaf (it is one attachment, never walked into).
    """
    stack: list[tuple[Message, int]] = [(root, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            found.add("MimeNestingTooDeep")
            continue
        seen += 1
        if seen > MAX_PARTS + 1:  # the root is no attached part
            found.add("TooManyParts")
            return
        if whole:
            yield part
        elif not part.is_multipart() or _content_type(part, found) == "message/rfc822":
            yield part
            continue
        stack.extend((child, depth + 1) for child in reversed(_children(part)))


def _read_parts(message: Message, parsed: ParsedEmail, found: Defects) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    for part in _parts(message, found, whole=False):
        try:
            if _is_body(part, message, found):
                kind: Literal["text", "html"] = (
                    "html" if _content_type(part, found) == "text/html" else "text"
                )
                decoded = _decode_text(part, kind, parsed)
                (htmls if kind == "html" else texts).append(decoded)
            else:
                parsed.attachments.append(_attachment(part, found))
        except Exception as exc:  # not seen in fuzzing: the part is left out, by name
            found.add(f"PartError:{type(exc).__name__}")
    parsed.text = "\n".join(texts) if texts else None
    parsed.html = "\n".join(htmls) if htmls else None


def _content_type(part: Message, found: Defects) -> str:
    """`type/subtype`, lowercase; a malformed declaration gives the part's default type."""
    _get(part, "Content-Type", found)  # records a declaration the registry could not read
    try:
        ctype = part.get_content_type()
        return ctype if MIME_TYPE.fullmatch(ctype) else part.get_default_type()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message, found: Defects) -> str | None:
    _get(part, "Content-Disposition", found)
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value if value in {"inline", "attachment"} else None


def _filename(part: Message, found: Defects) -> str | None:
    try:
        name: Any = part.get_filename()
        if not name and _content_type(part, found) != "message/rfc822":
            name = part.get_param("name", header="content-type")
    except Exception:
        return None
    if not isinstance(name, str) or not name:
        return None
    return clean_text(_decode_words(name)) or None


def _is_body(part: Message, root: Message, found: Defects) -> bool:
    """A text/plain or text/html part that is not an attachment is (part of) the body."""
    if _content_type(part, found) not in {"text/plain", "text/html"}:
        return False
    disposition = _disposition(part, found)
    if disposition == "attachment":
        return False
    # A named text part inside a multipart/mixed (not the root) is a text attachment.
    return part is root or disposition == "inline" or _filename(part, found) is None


def _content_id(part: Message, found: Defects) -> str | None:
    text = _header(part, "Content-ID", found)
    if text is None:
        return None
    return text[1:-1].strip() if text.startswith("<") and text.endswith(">") else text or None


def _attachment(part: Message, found: Defects) -> ParsedAttachment:
    content_type = _content_type(part, found)
    content_id = _content_id(part, found)
    disposition = _disposition(part, found)
    inline = disposition == "inline" or (disposition is None and content_id is not None)
    filename = _filename(part, found)
    if filename is None and content_type == "message/rfc822":
        inner = _children(part)
        subject = _header(inner[0], "Subject", Defects()) if inner else None
        filename = f"{subject or 'message'}.eml"
    return ParsedAttachment(
        part=part,
        content_type=content_type,
        filename=filename,
        content_id=content_id,
        disposition="inline" if inline else "attachment",
    )


def _declared_charset(part: Message) -> str | None:
    try:
        charset = part.get_param("charset")
    except Exception:
        return None
    return str(charset).strip().strip('"').lower() if isinstance(charset, str) else None


def _decode_text(part: Message, kind: Literal["text", "html"], parsed: ParsedEmail) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = _undecoded(part)
    data = payload if isinstance(payload, bytes) else b""
    declared = _declared_charset(part)
    text, used = decode_text_bytes(data, declared)
    if used != (declared or "us-ascii") and not (declared is None and used == "utf-8"):
        parsed.charset_fallbacks.append(
            CharsetFallback(part=kind, declared=clean_text(declared or "") or None, used=used)
        )
    return text.replace("\r\n", "\n")  # wire line endings are not content


def decode_text_bytes(data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode text bytes, trusting the declaration only as far as the bytes allow.

    Returns the text and the charset actually used. A single-byte declaration decodes
    any bytes, so valid multi-byte UTF-8 under such a label (a very common mistake, and
    one Latin-1 text almost never produces by chance) is read as UTF-8. Windows-1252 ends
    the chain because it decodes nearly anything; its few undefined bytes become U+FFFD.
    A declaration that names no real charset (`unicode-escape`, `undefined`, ...) is
    passed over, and so is any result with a lone surrogate (no JSON can carry one).
    """
    candidates: list[str] = []
    if any(esc in data for esc in _ISO2022_ESCAPES) and declared in {None, "us-ascii", "ascii"}:
        candidates.append("iso-2022-jp")
    if declared and _is_single_byte(declared) and _is_multibyte_utf8(data):
        candidates.append("utf-8")
    if declared and _is_charset(declared):
        candidates.append(declared)
    candidates.append("utf-8")
    for charset in candidates:
        text = _decoded_as(data, charset)
        if text is not None:
            return text, charset
    return data.decode("windows-1252", errors="replace"), "windows-1252"


def _decoded_as(data: bytes, charset: str) -> str | None:
    try:
        text = data.decode(charset)
    except Exception:  # LookupError, UnicodeError, and whatever an odd codec raises
        return None
    return None if _SURROGATE.search(text) else text


def _is_charset(name: str) -> bool:
    try:
        info = codecs.lookup(name)
    except Exception:
        return False
    return info.name not in _NOT_CHARSETS and getattr(info, "_is_text_encoding", True)


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
