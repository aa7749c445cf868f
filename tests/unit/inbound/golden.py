"""Golden snapshot of the inbound parse: what every corpus email becomes (issue 13, item 4).

For each input, the snapshot holds every `ParsedEmail` field (attachments by their
metadata and the SHA-256 of `data()`) and the app message `build_message` makes of it,
with fixed ids and times. It was written with the session-start parser (before the
fast path), so a test comparing today's output with it proves the parser's output did
not change:

    PYTHONPATH=/tmp/mailflow-before python tests/unit/inbound/golden.py --write

The inputs: every .eml under tests/fixtures, an HTML email per XSS vector of
tests/fixtures/xss, CPython's own email test data (`--cpython-data`, skipped when
absent; its files are recorded by SHA-256 so another copy is only compared if equal)
and the structural edge cases of `edge_cases()` (boundaries, nesting, limits).

    python tests/unit/inbound/golden.py --digests [--mutated N]

prints one digest line per input (and per fuzz-mutated corpus input, seeded), so two
parsers can be compared with `diff` (run it once with PYTHONPATH=/tmp/mailflow-before).

Standalone on purpose: only `mailflow` and the standard library are imported, so the
script runs against any copy of the package.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailflow.contracts.inbound import Attachment, RawEmailLocation
from mailflow.inbound import attachments as inspection
from mailflow.inbound import message as build
from mailflow.inbound.config import InboundSettings
from mailflow.inbound.parse import ParsedEmail, parse_bytes, parse_file
from mailflow.inbound.routing import Destination

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden" / "parse-golden.json"
CPYTHON_DATA = Path("/root/.pyenv/versions/3.13.0/lib/python3.13/test/test_email/data")
FIXED = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
LONG = 4000  # characters kept verbatim in the snapshot
DESTINATION = Destination(key="app1", domain="example.com", recipients=["_app1@example.com"])


def sha(data: bytes | str) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


# -- inputs -------------------------------------------------------------------------------


def fixture_emails() -> dict[str, bytes]:
    """Every .eml under tests/fixtures, by its path there."""
    return {
        str(path.relative_to(FIXTURES)): path.read_bytes()
        for path in sorted(FIXTURES.rglob("*.eml"))
    }


def xss_emails() -> dict[str, bytes]:
    """One text/html email per published XSS vector (quoted-printable, UTF-8)."""
    import quopri

    vectors = json.loads((FIXTURES / "xss" / "cheatsheet-vectors.json").read_text("utf-8"))
    emails: dict[str, bytes] = {}
    for index, vector in enumerate(vectors["vectors"]):
        body = quopri.encodestring(vector["vector"].encode("utf-8")).replace(b"\n", b"\r\n")
        emails[f"xss/vector-{index:03d}"] = (
            b"From: x@sender.test\r\nTo: _app1@example.com\r\nSubject: vector\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body + b"\r\n"
        )
    return emails


def cpython_emails(directory: Path) -> dict[str, bytes]:
    """CPython's email test messages (test_email/data/msg_*.txt), when present."""
    if not directory.is_dir():
        return {}
    return {f"cpython/{p.name}": p.read_bytes() for p in sorted(directory.glob("msg_*.txt"))}


def _part(headers: bytes, body: bytes) -> bytes:
    return headers + b"\r\n" + body


def edge_cases() -> dict[str, bytes]:
    """Structures a boundary splitter can get wrong, each small (seeded, reproducible)."""
    rng = random.Random(13)
    blob = bytes(rng.randrange(256) for _ in range(40_000))
    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    head = b"From: a@b.test\r\nTo: _app1@example.com\r\nSubject: edge\r\nMIME-Version: 1.0\r\n"
    mixed = head + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    text = b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    attach = (
        b'--b\r\nContent-Type: application/octet-stream; name="x.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64
    )
    cases: dict[str, bytes] = {
        "basic": mixed + text + attach + b"--b--\r\n",
        "lf-only": (mixed + text + attach + b"--b--\r\n").replace(b"\r\n", b"\n"),
        "cr-only": (mixed + text + attach + b"--b--\r\n").replace(b"\r\n", b"\r"),
        "mixed-line-ends": mixed + text.replace(b"\r\n", b"\n") + attach + b"--b--\r",
        "no-close": mixed + text + attach,
        "no-close-no-newline": mixed + text + b"--b\r\n\r\nlast",
        "close-at-eof-no-newline": mixed + text + b"--b--",
        "close-trailing-ws": mixed + text + b"--b-- \t\r\nepilogue\r\n",
        "open-trailing-ws": mixed + b"--b  \r\n\r\nx\r\n--b--\r\n",
        "preamble-epilogue": mixed + b"preamble\r\nmore\r\n" + text + b"--b--\r\n\r\nepi\r\n",
        "epilogue-crlf-only": mixed + text + b"--b--\r\n\r\n",
        "no-start": mixed + b"nothing here\r\n--c\r\n",
        "no-boundary-param": head + b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n",
        "empty-boundary": head + b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nx\r\n',
        "regex-boundary": head
        + b'Content-Type: multipart/mixed; boundary="(a.*+?)[b]"\r\n\r\n'
        + b"--(a.*+?)[b]\r\n\r\nx\r\n--(a.*+?)[b]--\r\n",
        "boundary-prefix-lines": mixed
        + b"--b\r\n\r\nx\r\n--bb\r\n--b-x\r\n --b\r\n--b--x\r\n--b--\r\n",
        "duplicate-boundaries": mixed + b"--b\r\n--b\r\n--b\r\n\r\nx\r\n--b--\r\n--b--\r\n",
        "empty-parts": mixed + b"--b\r\n--b\r\n\r\n--b\r\n\r\n\r\n--b--\r\n",
        "part-without-headers": mixed + b"--b\r\n\r\nno headers\r\n--b--\r\n",
        "part-no-separator": mixed + b"--b\r\nContent-Type: text/plain\r\nbody?\r\n--b--\r\n",
        "part-only-headers": mixed + b"--b\r\nContent-Type: text/plain\r\n--b--\r\n",
        "nested": mixed
        + b'--b\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        + b"--b1\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        + b"--b1\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b1--\r\n"
        + attach
        + b"--b--\r\n",
        "nested-inner-unclosed": mixed
        + b'--b\r\nContent-Type: multipart/alternative; boundary="i"\r\n\r\n'
        + b"--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        + attach
        + b"--b--\r\n",
        "nested-same-boundary": mixed
        + b'--b\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
        "rfc822-in-multipart": mixed
        + b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        + b"From: in@x.test\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
        + b"--c\r\nContent-Type: text/plain\r\n\r\ninner body\r\n--c--\r\n"
        + b"--b--\r\n",
        "rfc822-unterminated-inner": mixed
        + b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        + b"Subject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n"
        + b"--b--\r\n",
        "delivery-status": head
        + b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        + b"--r\r\nContent-Type: text/plain\r\n\r\nbounced\r\n"
        + b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        + b"Reporting-MTA: dns; x.test\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\n"
        + b"Action: failed\r\n\r\n--r--\r\n",
        "digest": head
        + b'Content-Type: multipart/digest; boundary="d"\r\n\r\n'
        + b"--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n--d\r\n\r\nSubject: two\r\n\r\nsecond\r\n"
        + b"--d--\r\n",
        "cte-on-multipart": head
        + b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: base64\r\n'
        + b"\r\n--b\r\n\r\nx\r\n--b--\r\n",
        "unixfrom": b"From someone Tue Mar  3 10:00:00 2026\r\n" + mixed + text + b"--b--\r\n",
        "misplaced-unixfrom": mixed
        + b"--b\r\nContent-Type: text/plain\r\nFrom x\r\nX-A: 1\r\n\r\nx\r\n--b--\r\n",
        "continuation-first": mixed
        + b"--b\r\n folded\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
        "colon-first": mixed + b"--b\r\n: nameless\r\n\r\nx\r\n--b--\r\n",
        "eight-bit": mixed
        + b"--b\r\nContent-Type: text/plain; charset=latin-1\r\n\r\ncaf\xe9 \xff\x80\r\n--b--\r\n",
        "nul-and-controls": mixed + b"--b\r\n\r\na\x00b\x0bc\x0cd\x1ce\x85\r\n--b--\r\n",
        "boundary-8bit": head
        + b'Content-Type: multipart/mixed; boundary="\xe9\xff"\r\n\r\n--\xe9\xff\r\n\r\nx\r\n'
        + b"--\xe9\xff--\r\n",
        "header-case": head.lower()
        + b'CONTENT-TYPE: MULTIPART/MIXED; BOUNDARY="Q"\r\n\r\n--Q\r\n\r\nx\r\n--Q--\r\n',
        "two-content-types": head
        + b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Type: text/plain\r\n\r\n'
        + text
        + b"--b--\r\n",
        "deep-nesting": b"".join(
            b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i)
            for i in range(40)
        )
        + b"Content-Type: text/plain\r\n\r\nhi\r\n",
        "deep-rfc822": b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n" * 40
        + b"Subject: innermost\r\n\r\nhi\r\n",
        "too-many-parts": head
        + b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
        + b'--p\r\nContent-Type: application/pdf; name="f.pdf"\r\n\r\n%PDF\r\n' * 1100
        + b"--p--\r\n",
        "too-many-headers": b"From: a@b.test\r\n" + b"X-Junk: y\r\n" * 10_010 + b"\r\nx",
        "long-header": b"Subject: " + b"a" * 70_000 + b"\r\n\r\nx",
        "long-mime-header": mixed
        + b"--b\r\nContent-Type: text/plain; x="
        + b"y" * 9000
        + b"\r\n\r\nx\r\n--b--\r\n",
        "hostile-from": b"From: " + b"(" * 5000 + b"a@b.test\r\nTo: g:;;\r\nSubject: s\r\n\r\nb",
        "base64-bad-padding": mixed
        + b'--b\r\nContent-Type: application/pdf; name="p.pdf"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=junk\r\n=\r\n--b--\r\n",
        "qp-attachment": mixed
        + b'--b\r\nContent-Type: text/csv; name="a.csv"\r\nContent-Disposition: attachment\r\n'
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + b"a=3Db,c\r\nsoft=\r\nbreak\r\n--b--\r\n",
        "big-text-body": mixed
        + b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + b"line of text \xc3\xa9\r\n" * 20_000
        + b"--b--\r\n",
        "crlf-split-at-chunk": mixed
        + b"--b\r\nContent-Type: text/plain\r\n\r\n"
        + b"x" * (65536 - len(mixed) - 38)
        + b"\r\n--b--\r\n",
    }
    return cases


def all_inputs(cpython_data: Path) -> dict[str, bytes]:
    return {
        **fixture_emails(),
        **xss_emails(),
        **cpython_emails(cpython_data),
        **{f"edge/{k}": v for k, v in edge_cases().items()},
    }


# -- snapshot -----------------------------------------------------------------------------


def parsed_fields(parsed: ParsedEmail) -> dict[str, Any]:
    """Every ParsedEmail field, JSON-ready; attachments by metadata and decoded digest."""
    attachments = []
    for att in parsed.attachments:
        data = att.data()
        attachments.append(
            {
                "content_type": att.content_type,
                "filename": att.filename,
                "content_id": att.content_id,
                "disposition": att.disposition,
                "size": len(data),
                "sha256": sha(data),
            }
        )

    def dump(value: Any) -> Any:
        return value.model_dump(mode="json", by_alias=True) if value is not None else None

    return {
        "message_id": parsed.message_id,
        "from": dump(parsed.from_),
        "sender": dump(parsed.sender),
        "to": [dump(a) for a in parsed.to],
        "cc": [dump(a) for a in parsed.cc],
        "reply_to": [dump(a) for a in parsed.reply_to],
        "subject": parsed.subject,
        "date": parsed.date.isoformat() if parsed.date else None,
        "text": parsed.text,
        "html": parsed.html,
        "attachments": attachments,
        "headers": parsed.headers.model_dump(mode="json", by_alias=True),
        "charset_fallbacks": [dump(c) for c in parsed.charset_fallbacks],
        "defects": parsed.defects,
        "is_auto_reply": parsed.is_auto_reply,
        "is_bulk": parsed.is_bulk,
        "ses_recipient": parsed.ses_recipient,
        "ses_verdicts": dump(parsed.ses_verdicts),
    }


def app_message(parsed: ParsedEmail) -> str:
    """The JSON an app would receive, with fixed ids and times (no S3: nothing stored)."""
    settings = InboundSettings()
    stored: list[Attachment] = []
    names = inspection.attachment_names(parsed)
    for index, (part, name) in enumerate(zip(parsed.attachments, names, strict=True)):
        found = inspection.inspect(part, name, settings)
        stored.append(
            Attachment(
                id=build.attachment_id("golden", DESTINATION.key, index),
                filename=name,
                original_filename=part.filename,
                content_type=part.content_type,
                detected_content_type=found.verdict.detected_type,
                size=len(found.data),
                checksum=found.checksum,
                content_id=part.content_id,
                disposition=part.disposition,
                status="stored" if found.verdict.allowed else "blocked",
                reason=found.verdict.reason,
            )
        )
    return build.build_message(
        parsed=parsed,
        body=build.readable_body(parsed, sanitize=True),
        destination=DESTINATION,
        ses_message_id="golden",
        raw=RawEmailLocation(s3_bucket="raw", s3_key="inbound/golden"),
        received_at=FIXED,
        verdicts=parsed.ses_verdicts,
        attachments=stored,
        recipient_source="envelope",
        now=FIXED,
    ).to_wire()


def abbreviated(value: Any) -> Any:
    """Long strings and lists as their digest (the file stays small; equality still holds)."""
    if isinstance(value, str) and len(value) > LONG:
        return {"sha256": sha(value), "chars": len(value), "head": value[:200]}
    if isinstance(value, list) and len(value) > 20:
        return {"sha256": sha(json.dumps(value)), "items": len(value), "head": value[:3]}
    if isinstance(value, list):
        return [abbreviated(v) for v in value]
    if isinstance(value, dict):
        return {k: abbreviated(v) for k, v in value.items()}
    return value


def snapshot(raw: bytes) -> dict[str, Any]:
    """The parse of `raw` (through `parse_file`, as the pipeline reads it) and its message."""
    try:
        parsed = parse_file(io.BytesIO(raw))
    except Exception as exc:  # the documented PolicyRejected, or a regression to catch
        return {"input_sha256": sha(raw), "raises": f"{type(exc).__name__}: {exc}"}
    wire = app_message(parsed)
    return {
        "input_sha256": sha(raw),
        "parsed": abbreviated(parsed_fields(parsed)),
        "message": abbreviated(json.loads(wire)),
        "message_sha256": sha(wire),
    }


def digest(raw: bytes) -> str:
    """One line for `diff`: the snapshot of `raw` through parse_bytes, hashed."""
    try:
        parsed = parse_bytes(raw)
        text = json.dumps(parsed_fields(parsed), sort_keys=True) + app_message(parsed)
    except Exception as exc:
        text = f"raises {type(exc).__name__}: {exc}"
    return sha(text)


def mutated(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """The fuzz test's mutations of the corpus (tests/unit/inbound/test_parse_fuzz.py)."""
    sys.path.insert(0, str(FIXTURES.parents[1]))
    from tests.unit.inbound.test_parse_fuzz import corpus_files, mutate

    files = corpus_files()
    originals = list(files.values())
    rng = random.Random(seed)
    for index in range(count):
        name = list(files)[index % len(files)]
        yield f"mutated/{seed}/{index}/{name}", mutate(rng, files[name], originals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpython-data", type=Path, default=CPYTHON_DATA)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"write {GOLDEN.name}")
    mode.add_argument("--digests", action="store_true", help="print a digest per input")
    parser.add_argument("--mutated", type=int, default=0, help="with --digests: N fuzz inputs")
    parser.add_argument("--seed", type=int, default=20260309)
    args = parser.parse_args()
    inputs = all_inputs(args.cpython_data)
    if args.write:
        snapshots = {name: snapshot(raw) for name, raw in inputs.items()}
        GOLDEN.parent.mkdir(exist_ok=True)
        lines = [f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in snapshots.items()]
        GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")  # one input a line: diffable
        print(f"wrote {len(snapshots)} snapshots to {GOLDEN}")
        return
    for name, raw in [*inputs.items(), *mutated(args.mutated, args.seed)]:
        print(f"{digest(raw)}  {name}")


if __name__ == "__main__":
    main()
