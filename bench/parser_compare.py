"""fast-mail-parser against mailflow's parser, field by field, and speed (issue 13, item 3).

    .venv/bin/python bench/parser_compare.py [--cpython-data DIR] [--examples N]
        [--no-speed] [--registry]

Inputs: every .eml under tests/fixtures (eml/, replies/), one HTML email per XSS vector
of tests/fixtures/xss, and CPython's email test data (`--cpython-data`, skipped when
absent). Each is parsed by `mailflow.inbound.parse.parse_bytes` (ours) and by
`fast_mail_parser.parse_email` (theirs), and each field an app receives is compared
after the normalisation a fair comparison needs (whitespace runs in the subject, CRLF
in bodies, message ids read from fast-mail-parser's raw header with our own rule, since
it parses none). Then: what each does with defective input, what the Python API
exposes, speed on generated mail (2 KiB, 1 MB, 10 MB, 40 MB; CPU time, best of a few
runs) and, with `--registry`, its release history and wheel coverage (pip's ordinary
`pip index versions` and `pip download --no-deps`, nothing else).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

# The repository root, for tests.* (the corpus helpers); mailflow is installed.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import fast_mail_parser as fmp

from mailflow.inbound.mime import CHUNK, build_tree
from mailflow.inbound.parse import ParsedEmail, parse_bytes, parse_message
from tests.fixtures.eml.make_corpus import big_email
from tests.unit.inbound import golden

MSGID = re.compile(r"<([^<>\s]+)>")
Pair = tuple[Any, Any]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def inputs(cpython_data: Path) -> dict[str, bytes]:
    return {
        **golden.fixture_emails(),
        **golden.xss_emails(),
        **golden.cpython_emails(cpython_data),
    }


# -- field by field -----------------------------------------------------------------------


def header(mail: Any, name: str) -> str | None:
    for key, values in mail.headers.items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    return None


def ids(value: str | None) -> list[str]:
    if not value:
        return []
    return MSGID.findall(value) or value.split()


def body(parts: list[str]) -> str | None:
    return "\n".join(p.replace("\r\n", "\n") for p in parts) if parts else None


def addresses(ours: list[Any], theirs: list[Any]) -> Pair:
    return [(a.address, a.name) for a in ours], [(a.address, a.display_name) for a in theirs]


FIELDS: dict[str, Callable[[ParsedEmail, Any], Pair]] = {
    "subject": lambda o, t: (o.subject, " ".join(t.subject.split())),
    "from": lambda o, t: addresses([o.from_] if o.from_ else [], [t.from_] if t.from_ else []),
    "to": lambda o, t: addresses(o.to, t.to),
    "cc": lambda o, t: addresses(o.cc, t.cc),
    "message-id": lambda o, t: (o.message_id, (ids(header(t, "Message-ID")) or [None])[0]),
    "in-reply-to": lambda o, t: (
        o.headers.in_reply_to,
        (ids(header(t, "In-Reply-To")) or [None])[0],
    ),
    "references": lambda o, t: (o.headers.references, ids(header(t, "References"))),
    "date": lambda o, t: (
        o.date.timestamp() if o.date else None,
        t.date_parsed.timestamp() if t.date_parsed else None,
    ),
    "text body": lambda o, t: (o.text, body(t.text_plain)),
    "html body": lambda o, t: (o.html, body(t.text_html)),
    "attachment count": lambda o, t: (len(o.attachments), len(t.attachments)),
    "attachment names": lambda o, t: (
        [a.filename for a in o.attachments],
        [a.filename or None for a in t.attachments],
    ),
    "attachment types": lambda o, t: (
        [a.content_type for a in o.attachments],
        [a.mimetype.lower() for a in t.attachments],
    ),
    "attachment bytes": lambda o, t: (
        [sha(a.data()) for a in o.attachments],
        [sha(a.content) for a in t.attachments],
    ),
    "charset fallback noted": lambda o, t: (
        bool(o.charset_fallbacks),
        any(w.kind == "charset-fallback" for w in t.warnings),
    ),
    "defect noted": lambda o, t: (bool(o.defects), bool(t.warnings)),
}


def compare(emails: dict[str, bytes], examples: int) -> None:
    same = dict.fromkeys(FIELDS, 0)
    differ: dict[str, list[str]] = {name: [] for name in FIELDS}
    raised: dict[str, str] = {}
    for name, raw in emails.items():
        ours = parse_bytes(raw)
        try:
            theirs = fmp.parse_email(raw)
        except fmp.ParseError as exc:
            raised[name] = f"{type(exc).__name__}: {str(exc)[:70]}"
            continue
        for field, pick in FIELDS.items():
            mine, other = pick(ours, theirs)
            if mine == other:
                same[field] += 1
            else:
                differ[field].append(f"{name}: ours {short(mine)} / fmp {short(other)}")
    print(f"\n## Field by field ({len(emails)} emails; fast-mail-parser raised on {len(raised)})\n")
    print(f"{'field':24} {'same':>5} {'differ':>6}  first difference")
    for field in FIELDS:
        first = differ[field][0] if differ[field] else ""
        print(f"{field:24} {same[field]:5d} {len(differ[field]):6d}  {first[:150]}")
    if examples > 1:
        for field in FIELDS:
            for line in differ[field][1:examples]:
                print(f"  {field}: {line[:160]}")
    print("\nRejected whole by fast-mail-parser (mailflow parsed each, noting defects):")
    for name, why in raised.items():
        print(f"  {name}: {why}")


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- defects ------------------------------------------------------------------------------

HOSTILE: dict[str, bytes] = {
    "bad base64 in one attachment": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\n\r\nbody\r\n--b\r\nContent-Type: image/png\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n--b--\r\n",
    "missing closing boundary": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
    "multipart without boundary": b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n",
    "declared UTF-8, bytes Latin-1": b"Content-Type: text/plain; charset=utf-8\r\n\r\nK\xf6ln",
    "unknown charset": b"Content-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9",
    "raw Latin-1 in a header": b"From: J\xf6rg <j@x.test>\r\n\r\nx",
    "5000 '(' in From": b"From: " + b"(" * 5000 + b"a@b.test\r\nTo: g:;;\r\n\r\nb",
    "subject of 200 KB": b"Subject: " + b"a" * 200_000 + b"\r\n\r\nx",
    "NUL in a header": b"Subject: a\x00b\r\n\r\nx",
    "no header/body separator": b"From: a@b.test\r\nthis is body\r\n",
    "2,000 nested multiparts": b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i)
        for i in range(2000)
    )
    + b"Content-Type: text/plain\r\n\r\nhi\r\n",
    "5,000 parts": b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
    + b'--p\r\nContent-Type: application/pdf; name="f.pdf"\r\n\r\n%PDF\r\n' * 5000
    + b"--p--\r\n",
    "20,000 headers": b"From: a@b.test\r\n" + b"X-Junk: y\r\n" * 20_000 + b"\r\nx",
    "1.2 million lines": b"Subject: s\r\n\r\n" + b"\n" * 1_200_000,
}


def defects() -> None:
    print("\n## Defective and hostile input\n")
    print(f"{'input':32} {'mailflow':46} fast-mail-parser")
    for name, raw in HOSTILE.items():
        began = time.process_time()
        ours = parse_bytes(raw)
        mine = f"{(time.process_time() - began) * 1000:6.1f} ms {','.join(ours.defects)[:34]}"
        began = time.process_time()
        try:
            theirs = fmp.parse_email(raw)
            kinds = sorted({w.kind for w in theirs.warnings})
            what = f"warnings {kinds}" if kinds else "silent"
            what += f"; from={theirs.from_.address if theirs.from_ else None}"
            what += f" att={len(theirs.attachments)} text={[len(t) for t in theirs.text_plain][:2]}"
        except fmp.ParseError as exc:
            what = f"RAISES {type(exc).__name__} (whole email lost)"
        took = (time.process_time() - began) * 1000
        print(f"{name:32} {mine:46} {took:6.1f} ms {what}")
    print(
        "\n  mailflow for comparison: "
        f"from={parse_bytes(HOSTILE['raw Latin-1 in a header']).from_}, "
        f"text={parse_bytes(HOSTILE['declared UTF-8, bytes Latin-1']).text!r} "
        f"(fallbacks {parse_bytes(HOSTILE['declared UTF-8, bytes Latin-1']).charset_fallbacks})"
    )


# -- the Python API -----------------------------------------------------------------------


def api() -> None:
    probe = (
        b"From: =?utf-8?q?J=C3=B6rg?= <j@x.test>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"Received: from a\r\n (folded)\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n--b\r\n"
        b'Content-Type: image/png; name="a.png"\r\nContent-ID: <c1@x>\r\n'
        b"Content-Disposition: inline\r\nX-Part: kept?\r\n\r\nPNG\r\n--b--\r\n"
    )
    mail = fmp.parse_email(probe)
    tree = fmp.parse_email_tree(probe)
    leaf = tree.children[1]
    attachment = mail.attachments[0]
    rows = [
        ("per-part headers (flat API)", str(hasattr(attachment, "headers"))),
        ("per-part headers (parse_email_tree)", f"{leaf.headers.get('X-Part')}"),
        ("Content-ID", repr(attachment.content_id)),
        ("disposition", repr(attachment.disposition)),
        ("raw header values", f"Subject={mail.headers.get('Subject')} (RFC 2047 decoded)"),
        ("folding kept", f"Received={mail.headers.get('Received')}"),
        ("address header text", f"From={mail.headers.get('From')} (decoded, not as received)"),
        ("part charset / charset used", f"{[a for a in dir(tree.children[0]) if 'charset' in a]}"),
        ("defects", f"{[a for a in dir(mail) if 'defect' in a]}; warnings={mail.warnings}"),
        ("message/rfc822", "attachment (decoded bytes); tree: children"),
        ("limits", "input 100 MiB, nesting 256; no part, header or line limit"),
    ]
    print("\n## What the Python API exposes\n")
    for what, answer in rows:
        print(f"  {what:38} {answer}")


# -- speed --------------------------------------------------------------------------------


def cpu_ms(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        run()
        best = min(best, time.process_time() - began)
    return best * 1000


def speed() -> None:
    plain = golden.fixture_emails()["eml/plain.eml"]
    line = b"x" * 70 + b"\r\n"
    mails = {
        "2 KiB": plain.replace(b"email.\r\n", b"email.\r\n" + line * ((2048 - len(plain)) // 72)),
        "1 MB": big_email(attachment_bytes=750_000),
        "10 MB": big_email(attachment_bytes=7_500_000),
        "40 MB": big_email(attachment_bytes=30_000_000),
    }
    print("\n## Speed (CPU ms, best of N; 'with data' decodes every attachment)\n")
    print(
        f"{'mail':7} {'bytes':>10} {'mailflow':>9} {'+ data':>8} {'feedparser':>11}"
        f" {'fmp full':>9} {'fmp lazy':>9} {'+ content':>10}"
    )
    for name, raw in mails.items():
        repeat = 50 if name == "2 KiB" else 3

        def ours(raw: bytes = raw) -> None:
            parse_bytes(raw)

        def ours_data(raw: bytes = raw) -> None:
            for attachment in parse_bytes(raw).attachments:
                attachment.data()

        def feed(raw: bytes = raw) -> None:
            parse_message(build_tree(raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK)))

        def lazy_content(raw: bytes = raw) -> None:
            for attachment in fmp.parse_email(raw, mode="lazy").attachments:
                len(attachment.content)

        print(
            f"{name:7} {len(raw):10d} {cpu_ms(ours, repeat):9.2f} {cpu_ms(ours_data, repeat):8.2f}"
            f" {cpu_ms(feed, 1 if len(raw) > 5_000_000 else repeat):11.2f}"
            f" {cpu_ms(lambda raw=raw: fmp.parse_email(raw), repeat):9.2f}"
            f" {cpu_ms(lambda raw=raw: fmp.parse_email(raw, mode='lazy'), repeat):9.2f}"
            f" {cpu_ms(lazy_content, repeat):10.2f}"
        )


# -- maintenance --------------------------------------------------------------------------

PLATFORMS = ["manylinux2014_x86_64", "manylinux2014_aarch64", "musllinux_1_2_x86_64",
             "musllinux_1_2_aarch64"]  # fmt: skip
PYTHONS = ["3.11", "3.12", "3.13"]


def maintenance(registry: bool) -> None:
    dist = metadata.distribution("fast-mail-parser")
    meta = dist.metadata
    licence = [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    wheel = (dist.read_text("WHEEL") or "").split("Tag:", 1)[-1].split()[0]
    sbom = next((f for f in dist.files or [] if str(f).endswith(".cyclonedx.json")), None)
    crates = re.findall(r'"name":\s*"(mailparse|mail-parser)"', sbom.read_text() if sbom else "")
    print("\n## Maintenance\n")
    print(f"  installed             {meta['Name']} {meta['Version']} ({wheel})")
    print(f"  licence               {licence} ; Requires-Python {meta['Requires-Python']}")
    status = [c for c in meta.get_all("Classifier") or [] if "Status" in c]
    print(f"  status                {status}")
    print(f"  Rust crate            {sorted(set(crates))} (the staktrace crate, not mail-parser)")
    if not registry:
        print("  registry              (run with --registry for release history and wheels)")
        return
    pip = [sys.executable, "-m", "pip"]
    versions = subprocess.run(  # noqa: S603  (our own interpreter, fixed arguments)
        [*pip, "index", "versions", "fast-mail-parser"], check=False, capture_output=True, text=True
    ).stdout.strip()
    available = [line for line in versions.splitlines() if line.startswith("Available")]
    print(f"  releases              {available[0] if available else versions or '?'}")
    with tempfile.TemporaryDirectory() as where:
        for platform in PLATFORMS:
            found = []
            for python in PYTHONS:
                done = subprocess.run(  # noqa: S603
                    [*pip, "download", "--no-deps", "--only-binary=:all:", "--platform",
                     platform, "--python-version", python, "-d", where,
                     f"fast-mail-parser=={meta['Version']}"],
                    check=False, capture_output=True, text=True,
                )  # fmt: skip
                found.append(f"{python}:{'ok' if done.returncode == 0 else 'NO'}")
            print(f"  wheel {platform:24} {' '.join(found)}")
        print(f"  files                 {sorted(p.name for p in Path(where).iterdir())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpython-data", type=Path, default=golden.CPYTHON_DATA)
    parser.add_argument("--examples", type=int, default=1, help="differences shown per field")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--registry", action="store_true", help="ask PyPI through pip")
    args = parser.parse_args()
    emails = inputs(args.cpython_data)
    if not golden.cpython_emails(args.cpython_data):
        print(f"(no CPython email test data at {args.cpython_data}: skipped)")
    compare(emails, args.examples)
    defects()
    api()
    if not args.no_speed:
        speed()
    maintenance(args.registry)


if __name__ == "__main__":
    main()
