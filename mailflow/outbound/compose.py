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

Headers go through the library's policy (`fold_binary`), exactly as its generator writes
them. Bodies do not: they are encoded by C code (binascii, pybase64) and written once
into the message's bytes, under random `=_...` boundaries that no encoded body can
contain (see the Bodies section: the generator's boundary scan, per-line writes and
pure-Python quoted-printable were two thirds of the CPU of a 1 MiB attachment).
"""

from __future__ import annotations

import binascii
import hashlib
import io
import re
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.message import EmailMessage, MIMEPart
from email.policy import Policy
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import quote

import pybase64

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


# --- Bodies -------------------------------------------------------------------------------
#
# The library's generator is not used for bodies: it scans every encoded body for the
# multipart boundary (`_make_boundary`, a regex over each line of a 10 MB attachment) and
# writes the body line by line, and its quoted-printable encoder is pure Python. Here each
# body is encoded once by C code (binascii's quoted-printable; pybase64's SIMD base64,
# ~20x binascii's: 2 ms for 10 MiB, not 40) and copied once, into the message's bytes.

_CRLF = b"\r\n"
# RFC 2045 6.7/6.8: encoded lines of at most 76 characters; 57 bytes are one base64 line.
_ENCODED_LINE = 76
_BASE64_LINE_BYTES = 57
_BASE64_BLOCK_LINES = 1024
_BASE64_BLOCK_BYTES = _BASE64_LINE_BYTES * _BASE64_BLOCK_LINES
# Splits one block's base64 into its 76-character lines in a single C call.
_BASE64_BLOCK = struct.Struct(f"{_ENCODED_LINE}s" * _BASE64_BLOCK_LINES)
# Written as it is (7bit) only when readable and safe everywhere: printable ASCII, tab,
# and CRLF line ends, lines no longer than the policy's 78 (RFC 5322 2.1.1's SHOULD).
_SEVEN_BIT_BYTES = bytes([9, 10, 13, *range(32, 127)])
_SEVEN_BIT_LINE = 78
# Above this, text bodies are base64 (C, ~10x faster than quoted-printable) whatever
# they contain: a readable source matters for a letter, not for a megabyte of markup.
_QUOTED_PRINTABLE_MAX_BYTES = 1024 * 1024


def base64_size(raw_bytes: int) -> int:
    """Bytes `raw_bytes` take base64-encoded here: 76-character lines, each with CRLF."""
    b64 = -(-raw_bytes // 3) * 4
    return b64 + -(-b64 // _ENCODED_LINE) * 2


@dataclass(frozen=True, slots=True)
class _Base64:
    """Bytes to be base64-encoded straight into the message when it is written."""

    data: bytes


_Segment = bytes | _Base64


@dataclass(frozen=True)
class _Part:
    """A MIME entity before it is written: its content headers and its body."""

    headers: tuple[tuple[str, str], ...]
    body: tuple[_Segment, ...]
    # The body as written, when it is 7bit text: the only kind that could hold a boundary.
    literal: bytes | None = None


def _header_block(items: Iterable[tuple[str, Any]]) -> bytes:
    """Header lines as the library's generator writes them (`policy.fold_binary`)."""
    return b"".join(MIME_POLICY.fold_binary(name, value) for name, value in items)


def _part_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    holder = MIMEPart(policy=MIME_POLICY)
    for name, value in headers:
        holder[name] = value
    return _header_block(holder.raw_items())


def _crlf_text(text: str) -> bytes:
    """UTF-8 with every line end (CR, LF, CRLF) as CRLF and a final line end, as the
    library's text content manager normalizes it."""
    data = text.encode("utf-8")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    return data.replace(b"\n", _CRLF)


def _longest_line(data: bytes) -> int:
    return max(map(len, data.split(_CRLF)))


def _quoted_printable(data: bytes) -> bytes:
    """RFC 2045 6.7 quoted-printable of CRLF-terminated lines, by `binascii.b2a_qp`.

    `b2a_qp` writes soft line breaks with the line end it finds first (CRLF here, as
    `data` ends in one), escapes `=`, 8-bit bytes, controls and whitespace before a line
    end, but it escapes that whitespace after deciding where to break: a 74-character
    line ending in a blank comes out as 77 characters (`...=20`). Such lines, and any
    other too long, are broken again here without splitting an `=XX` escape.
    """
    encoded = binascii.b2a_qp(data, istext=True)
    lines = encoded.split(_CRLF)
    if max(map(len, lines)) <= _ENCODED_LINE:
        return encoded
    return _CRLF.join(_soft_break(line) for line in lines)


def _soft_break(line: bytes) -> bytes:
    pieces: list[bytes] = []
    while len(line) > _ENCODED_LINE:
        cut = _ENCODED_LINE - 1  # room for the soft break's `=`
        if line[cut - 1 : cut] == b"=":
            cut -= 1
        elif line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        pieces.append(line[:cut] + b"=")
        line = line[cut:]
    pieces.append(line)
    return _CRLF.join(pieces)


def _text_part(text: str, subtype: str) -> _Part:
    """A text/* part: 7bit when it can be, else the shorter of quoted-printable and base64.

    Like the library's heuristic (which compares the two on the first ten lines): mostly
    ASCII text stays readable as quoted-printable, other scripts go as base64.
    """
    data = _crlf_text(text)
    content_type = ("Content-Type", f'text/{subtype}; charset="utf-8"')
    if not data.translate(None, _SEVEN_BIT_BYTES) and _longest_line(data) <= _SEVEN_BIT_LINE:
        return _Part((content_type, ("Content-Transfer-Encoding", "7bit")), (data,), data)
    if len(data) <= _QUOTED_PRINTABLE_MAX_BYTES:
        encoded = _quoted_printable(data)
        if len(encoded) <= base64_size(len(data)):
            cte = ("Content-Transfer-Encoding", "quoted-printable")
            return _Part((content_type, cte), (encoded,))
    return _Part((content_type, ("Content-Transfer-Encoding", "base64")), (_Base64(data),))


def _attachment_part(attachment: LoadedAttachment) -> _Part:
    maintype, _, subtype = attachment.content_type.partition("/")
    if maintype in {"multipart", "message"}:
        # Such parts may not be base64-encoded (RFC 2046) and arbitrary bytes cannot
        # be trusted to be 7-bit: ship them opaque; the filename keeps the extension.
        maintype, subtype = "application", "octet-stream"
    headers = (
        ("Content-Type", f"{maintype}/{subtype}"),
        ("Content-Transfer-Encoding", "base64"),
        (
            "Content-Disposition",
            PreFoldedHeader(
                "Content-Disposition", disposition(attachment.filename, MIME_POLICY.linesep)
            ),
        ),
    )
    return _Part(headers, (_Base64(attachment.data),))


def new_boundary() -> str:
    """A random boundary that no quoted-printable or base64 body can contain.

    `=_` never occurs in either encoding (`=` is escaped as `=3D` or ends a line as a
    soft break; base64 has no `_`), so only 7bit bodies need a look (`_boundary`), and
    nothing scans an encoded body. 128 random bits: an app cannot plant a collision.
    """
    return "=_" + secrets.token_hex(16)


def _boundary(literals: list[bytes]) -> str:
    """A fresh boundary whose delimiter line occurs in none of `literals` (7bit bodies,
    and the delimiters of enclosing or enclosed multiparts)."""
    while True:
        boundary = new_boundary()
        delimiter = b"--" + boundary.encode("ascii")
        if not any(delimiter in literal for literal in literals):
            return boundary


def _multipart(subtype: str, parts: list[_Part]) -> _Part:
    """multipart/`subtype` around `parts`: delimiter, part, delimiter, ..., close."""
    literals = [part.literal for part in parts if part.literal is not None]
    boundary = _boundary(literals)
    delimiter = b"--" + boundary.encode("ascii")
    body: list[_Segment] = []
    for index, part in enumerate(parts):
        body.append((_CRLF if index else b"") + delimiter + _CRLF)
        body += (_part_headers(part.headers), _CRLF, *part.body)
    body.append(_CRLF + delimiter + b"--" + _CRLF)
    headers = (("Content-Type", f'multipart/{subtype}; boundary="{boundary}"'),)
    # What an enclosing multipart must not use: these bodies and this delimiter.
    return _Part(headers, tuple(body), b"\n".join([*literals, delimiter]))


def _body(email: ValidatedEmail) -> _Part:
    if email.text is None:
        return _text_part(email.html or "", "html")
    text = _text_part(email.text, "plain")
    if email.html is None:
        return text
    # Text first, so the preferred HTML is last (RFC 2046 5.1.4).
    return _multipart("alternative", [text, _text_part(email.html, "html")])


def _write(segments: list[_Segment]) -> bytes:
    """The message's bytes, built in one buffer of the exact final size.

    `BytesIO` over a fresh `bytes` object of that size writes into it in place and
    `getvalue()` returns that very object (CPython shares the buffer while nothing else
    refers to it), so a large attachment exists twice at most, raw and encoded, never as
    a list of lines plus the joined copy. Should the size be off, the result is still
    exact: `truncate()` drops unwritten room and writes past the end grow the buffer.
    """
    size = sum(base64_size(len(s.data)) if isinstance(s, _Base64) else len(s) for s in segments)
    out = io.BytesIO(bytes(size))
    for segment in segments:
        if isinstance(segment, _Base64):
            _write_base64(out, segment.data)
        else:
            out.write(segment)
    out.truncate()
    return out.getvalue()


def _write_base64(out: io.BytesIO, data: bytes) -> None:
    """Base64 in 76-character CRLF lines, block by block, straight into `out`.

    A block is 1024 lines (57 KiB in): one `b64encode` call and one struct split, so
    a 10 MiB attachment costs ~180 calls instead of ~180,000 per-line encodes and writes.
    """
    view = memoryview(data)
    whole = len(data) - len(data) % _BASE64_BLOCK_BYTES
    for start in range(0, whole, _BASE64_BLOCK_BYTES):
        block = pybase64.b64encode(view[start : start + _BASE64_BLOCK_BYTES])
        out.write(_CRLF.join(_BASE64_BLOCK.unpack(block)))
        out.write(_CRLF)
    if whole < len(data):
        tail = pybase64.b64encode(view[whole:])
        lines = [tail[i : i + _ENCODED_LINE] for i in range(0, len(tail), _ENCODED_LINE)]
        out.write(_CRLF.join(lines))
        out.write(_CRLF)


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
    msg["MIME-Version"] = "1.0"
    body = _body(email)
    if attachments:
        body = _multipart("mixed", [body, *map(_attachment_part, attachments)])
    for name, value in body.headers:
        msg[name] = value
    return _write([_header_block(msg.raw_items()), _CRLF, *body.body])


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
