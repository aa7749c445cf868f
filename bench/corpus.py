"""The benchmark corpus: every email and outbound message the suite sends, made here.

Deterministic (a seeded `random.Random`, no network, no files), so two runs and two trees
measure the same bytes. Only the standard library is imported: `bench/pure.py` loads this
file by path inside a subprocess whose `mailflow` may come from another source tree, and
nothing here may pull in either tree.

Inbound emails are raw MIME as a sender's MTA hands it to SES (SES's own trace and
verdict headers are added by `mailflow.ops.inject` at injection time). Every email has
the placeholder `SEQ_MARK` in its Message-ID; `numbered()` makes each copy unique.
Outbound cases are the fields of an app's JSON plus the attachment bytes, which the
harness stores in S3 and the JSON references (docs/outbound.md).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import quopri
import random
import textwrap
from dataclasses import dataclass, field

MIB = 1024 * 1024
SEED = 20260303
SEQ_MARK = b"@@SEQ0000@@"  # 11 bytes, replaced by an 11-byte number per copy
CRLF = b"\r\n"
# The inbound limit (MAILFLOW_INBOUND__MAX_EMAIL_BYTES) is 40 MiB for the *stored*
# object, which carries SES's headers (about 700 bytes) on top of the sender's bytes.
MAX_EMAIL_BYTES = 40 * MIB
SES_HEADROOM = 16 * 1024
SENDER = "Dana Sender <dana@sender.example.net>"
APP_ADDRESS = "_app1@example.com"


@dataclass(frozen=True)
class InboundCase:
    """One inbound email shape; `raw()` builds (and caches) its bytes."""

    name: str
    title: str
    n_full: int
    n_quick: int
    maker: str

    def raw(self) -> bytes:
        return _RAW_MAKERS[self.maker]()


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutboundCase:
    """One outbound message shape: bodies and attachments (stored in S3 by the harness)."""

    name: str
    title: str
    n_full: int
    n_quick: int
    subject: str
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


_WORDS = (
    "the order invoice meeting schedule please confirm attached report quarter numbers"
    " shipping delay customer support thanks regards update project team review budget"
    " Grüße für déjà naïve tomorrow morning afternoon"
)
_VOCABULARY = tuple(_WORDS.split(" "))


def _rng(label: str) -> random.Random:
    return random.Random(f"{SEED}/{label}")  # noqa: S311  (reproducible test data)


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_VOCABULARY) for _ in range(count))


def _pdf(size: int, label: str) -> bytes:
    """`size` bytes that start like a PDF (so type detection says application/pdf)."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    return head + _rng(label).randbytes(max(0, size - len(head)))


def _b64_lines(data: bytes) -> bytes:
    """base64 in 76-character lines ending in CRLF, as MTAs write it."""
    return base64.encodebytes(data).replace(b"\n", CRLF)


def _headers(subject: str, extra: tuple[str, ...] = ()) -> bytes:
    lines = (
        f"From: {SENDER}",
        f"To: App One <{APP_ADDRESS}>",
        f"Subject: {subject}",
        "Date: Tue, 03 Mar 2026 10:15:00 +0100",
        "Message-ID: <" + SEQ_MARK.decode() + ".bench@sender.example.net>",
        "MIME-Version: 1.0",
        *extra,
    )
    return "\r\n".join(lines).encode() + CRLF


@functools.cache
def plain_reply() -> bytes:
    """A ~2 KiB text/plain reply with quoted history and a signature (Gmail style)."""
    rng = _rng("plain")
    new = textwrap.fill("Hi team, " + _words(rng, 40) + ".", 72)
    quoted = "\n".join("> " + line for line in textwrap.wrap(_words(rng, 170), 70))
    body = (
        f"{new}\n\nThanks,\nDana\n\n-- \nDana Sender | Example Net\n\n"
        f"On Mon, 2 Mar 2026 at 17:02, App One <{APP_ADDRESS}> wrote:\n{quoted}\n"
    )
    head = _headers(
        "Re: Your order #4711",
        (
            "In-Reply-To: <order-4711@example.com>",
            "References: <root-4711@example.com> <order-4711@example.com>",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ),
    )
    return head + CRLF + body.replace("\n", "\r\n").encode()


def newsletter_html(size: int, label: str = "newsletter") -> str:
    """HTML shaped like a real newsletter: tables, inline styles, links, images, a script."""
    rng = _rng(label)
    rows = [
        '<html><head><style>p{color:red}</style></head><body><table width="600" '
        'style="border:0;font-family:Arial">'
    ]
    length = len(rows[0])
    while length < size:
        n = rng.randrange(1_000_000)
        row = (
            f'<tr><td style="padding:4px;color:#333">Item {n} &amp; {_words(rng, 8)} '
            f'<a href="https://shop.example.net/p/{n}?utm_source=mail" onclick="track({n})">'
            f'buy</a> <img src="cid:img{n % 7}@x" width="40" height="40" alt="p{n}">'
            f"<script>x({n})</script></td></tr>\n"
        )
        rows.append(row)
        length += len(row)
    rows.append("</table></body></html>")
    return "".join(rows)


@functools.cache
def html_newsletter() -> bytes:
    """multipart/alternative, ~64 KiB of quoted-printable HTML and its text version."""
    html = newsletter_html(60_000)
    text = textwrap.fill(_words(_rng("newsletter-text"), 900), 76)
    boundary = b"=_alt_bench"
    head = _headers(
        "Spring sale: 40 % off everything",
        (
            "List-Id: <news.sender.example.net>",
            "List-Unsubscribe: <https://sender.example.net/u/123>",
            "Precedence: bulk",
            f'Content-Type: multipart/alternative; boundary="{boundary.decode()}"',
        ),
    )
    return (
        head
        + CRLF
        + b"--"
        + boundary
        + CRLF
        + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + text.replace("\n", "\r\n").encode()
        + CRLF
        + b"--"
        + boundary
        + CRLF
        + b"Content-Type: text/html; charset=utf-8\r\n"
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + quopri.encodestring(html.encode()).replace(b"\n", CRLF)
        + CRLF
        + b"--"
        + boundary
        + b"--"
        + CRLF
    )


def _mixed(subject: str, body_part: bytes, attachments: list[tuple[str, bytes]]) -> bytes:
    boundary = b"=_mixed_bench"
    head = _headers(subject, (f'Content-Type: multipart/mixed; boundary="{boundary.decode()}"',))
    parts = [head, CRLF, b"--", boundary, CRLF, body_part, CRLF]
    for filename, data in attachments:
        parts += [
            b"--",
            boundary,
            CRLF,
            f'Content-Type: application/pdf; name="{filename}"\r\n'.encode(),
            f'Content-Disposition: attachment; filename="{filename}"\r\n'.encode(),
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            _b64_lines(data),
        ]
    parts += [b"--", boundary, b"--", CRLF]
    return b"".join(parts)


_TEXT_PART = (
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Hello,\r\nplease find the documents attached.\r\n\r\nDana\r\n"
)


@functools.cache
def two_attachments() -> bytes:
    """Text and two 1 MB (1,000,000 byte) PDF attachments, base64: about 2.7 MB."""
    files = [(f"statement-{i}.pdf", _pdf(1_000_000, f"att-{i}")) for i in (1, 2)]
    return _mixed("Statements for March", _TEXT_PART, files)


def _encoded_len(n: int) -> int:
    """Length of `_b64_lines` output for n input bytes (57 bytes per 78-byte line)."""
    full, rest = divmod(n, 57)
    return full * 78 + (0 if rest == 0 else -(-rest // 3) * 4 + 2)


def _sized(total: int, subject: str, label: str, body_part: bytes) -> bytes:
    """An email of `total` bytes (give or take one): `body_part` plus a PDF filling the rest."""
    shell = _mixed(subject, body_part, [("data.pdf", b"")])
    room = total - len(shell)
    n = room * 57 // 78
    while _encoded_len(n) < room:
        n += 1
    while _encoded_len(n) > room:
        n -= 1
    email = _mixed(subject, body_part, [("data.pdf", _pdf(n, label))])
    # The few bytes base64's 4-byte steps leave over: empty lines after the last boundary.
    return email + CRLF * ((total - len(email)) // 2)


def _html_part(size: int, label: str) -> bytes:
    html = newsletter_html(size, label)
    return (
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + quopri.encodestring(html.encode()).replace(b"\n", CRLF)
    )


@functools.cache
def ten_mb() -> bytes:
    """10,000,000 bytes: a 100 KB newsletter body and one ~7.3 MB PDF."""
    return _sized(10_000_000, "Quarterly report (10 MB)", "ten", _html_part(100_000, "ten-html"))


@functools.cache
def forty_mb() -> bytes:
    """Just under the 40 MiB inbound limit once SES's headers are added."""
    return _sized(MAX_EMAIL_BYTES - SES_HEADROOM, "Scans (40 MB)", "forty", _TEXT_PART)


_RAW_MAKERS = {
    "plain": plain_reply,
    "html": html_newsletter,
    "two_1mb": two_attachments,
    "ten_mb": ten_mb,
    "forty_mb": forty_mb,
}

INBOUND: tuple[InboundCase, ...] = (
    InboundCase("in-plain", "inbound plain reply (~2 KiB)", 200, 10, "plain"),
    InboundCase("in-html", "inbound HTML newsletter (~70 KiB)", 100, 5, "html"),
    InboundCase("in-2x1mb", "inbound 2 x 1 MB attachments", 20, 2, "two_1mb"),
    InboundCase("in-10mb", "inbound 10 MB", 5, 1, "ten_mb"),
    InboundCase("in-40mb", "inbound 40 MB (limit - 16 KiB)", 3, 1, "forty_mb"),
)


def numbered(raw: bytes, seq: int) -> bytes:
    """`raw` with a unique Message-ID (the placeholder sits in the headers, near the start)."""
    return raw.replace(SEQ_MARK, b"%011d" % seq, 1)


@functools.cache
def _outbound_cases() -> tuple[OutboundCase, ...]:
    rng = _rng("outbound")
    text = textwrap.fill("Hello Ana, " + _words(rng, 150) + ".", 76) + "\n\n-- \nApp One\n"
    long_text = textwrap.fill(_words(rng, 300), 76) + "\n"
    html = newsletter_html(20_000, "outbound-html")
    return (
        OutboundCase("out-text", "outbound text (~1 KiB)", 200, 10, "Your receipt", text, None),
        OutboundCase(
            "out-html", "outbound HTML + text (~22 KiB)", 200, 5, "News für Sie", long_text, html
        ),
        OutboundCase(
            "out-1mib",
            "outbound 1 MiB attachment",
            20,
            2,
            "Invoice attached",
            text,
            None,
            (Attachment("invoice.pdf", "application/pdf", _pdf(MIB, "out-1mib")),),
        ),
        OutboundCase(
            "out-10mib",
            "outbound 10 MiB attachment",
            5,
            1,
            "Archive attached",
            text,
            None,
            (Attachment("archive.pdf", "application/pdf", _pdf(10 * MIB, "out-10mib")),),
        ),
    )


def outbound_cases() -> tuple[OutboundCase, ...]:
    return _outbound_cases()


def attachment_key(case: OutboundCase, index: int) -> str:
    """Where the harness stores an outbound attachment (the app's own prefix)."""
    return f"outbound/app1/bench/{case.name}-{index}.pdf"


def outbound_json(case: OutboundCase, correlation_id: str, bucket: str, seq: int) -> str:
    """The app's message for one send of `case` (docs/outbound.md)."""
    body: dict[str, str] = {}
    if case.text is not None:
        body["text"] = case.text
    if case.html is not None:
        body["html"] = case.html
    email: dict[str, object] = {
        "from": {"address": APP_ADDRESS, "name": "App One"},
        "to": [{"address": f"customer{seq}@example.net"}],
        "subject": f"{case.subject} #{seq}",
        "body": body,
    }
    if case.attachments:
        email["attachments"] = [
            {
                "filename": a.filename,
                "contentType": a.content_type,
                "s3Bucket": bucket,
                "s3Key": attachment_key(case, i),
            }
            for i, a in enumerate(case.attachments)
        ]
    return json.dumps(
        {"version": "1.0", "correlationId": correlation_id, "source": "app1", "email": email}
    )


def fingerprint() -> dict[str, str]:
    """sha256 (first 16 hex) of every case, so a report shows both trees saw the same bytes."""
    prints = {c.name: hashlib.sha256(c.raw()).hexdigest()[:16] for c in INBOUND}
    for case in outbound_cases():
        digest = hashlib.sha256(outbound_json(case, "x", "b", 0).encode())
        for a in case.attachments:
            digest.update(a.data)
        prints[case.name] = digest.hexdigest()[:16]
    return prints
