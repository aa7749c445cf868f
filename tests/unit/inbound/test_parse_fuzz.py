"""Bounded-time fuzzing of the parser with mutated corpus files (issue 9, item 4).

Every `.eml` of `tests/fixtures/eml/` is mutated by a seeded RNG (byte flips,
truncations, duplicated and removed boundary lines, header explosions, deep nesting,
hostile charsets and encodings, splices of other files) and each result goes the whole
pure path an email takes: parse, every attachment's `data()`, the attachment names, the
sanitized body and the app message's JSON. Nothing may raise but the documented
`PolicyRejected("unparseable_email")`, and no input may take long.

The sequence of inputs is fixed by the seed; the wall-clock budget only decides how far
along it a slow machine gets, so a failure always reproduces with the same seed. For a
longer local run: `PARSE_FUZZ_SECONDS=600 PARSE_FUZZ_INPUTS=1000000 PARSE_FUZZ_SEED=7 pytest -s
this_file` (not `MAILFLOW_*`: tests/conftest.py clears those).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mailflow.contracts.inbound import RawEmailLocation
from mailflow.errors import PolicyRejected
from mailflow.inbound import message as build
from mailflow.inbound.attachments import attachment_names
from mailflow.inbound.mime import MAX_DEFECTS
from mailflow.inbound.parse import parse_bytes
from mailflow.inbound.routing import Destination
from tests.unit.inbound.conftest import CORPUS

SEED = int(os.environ.get("PARSE_FUZZ_SEED", "20260309"))
# 6 s keeps `make check` under a minute; PARSE_FUZZ_SECONDS=120 for a longer hunt.
BUDGET_SECONDS = float(os.environ.get("PARSE_FUZZ_SECONDS", "6"))
MAX_INPUTS = int(os.environ.get("PARSE_FUZZ_INPUTS", "6000"))
SLOW_INPUT_SECONDS = 5.0  # the parser's limits bound the worst input near 2 s here

# Bytes that mean something to a MIME or header parser.
SPECIAL = [
    b"(", b")", b"<", b">", b'"', b"\\", b":", b";", b",", b"@", b"=?", b"?=", b"\r", b"\n",
    b"\r\n", b"--", b"\x00", b"\xff", b"\x80", b"=", b" ", b"\t", b".", b"*", b"'", b"%",
]  # fmt: skip
HOSTILE_VALUES = [
    b"(" * 5000 + b"a@b.test",
    b"(a)" * 1300,
    b"." * 4000,
    b"," * 4000,
    b"g:" + b";" * 2000,
    b'"\\' * 2000,
    b"<" * 3000,
    b"=?utf-8?q?a?= " * 300,
    b"=?unicode-escape?q?=5Cud800?= <a@b.test>",
    b"=?utf-7?q?+2D3-?= <a@b.test>",
    b"=?" * 3000,
    b"text/plain; charset=" + b"(" * 3000,
    b'multipart/mixed; boundary="' + b";" * 3000 + b'"',
    b"attachment; filename*0*=utf-8''" + b"%ff" * 1000,
    b"\xff\xfe" * 500,
]
HEADER_NAMES = [
    b"From", b"To", b"Cc", b"Reply-To", b"Sender", b"Subject", b"Date", b"Message-ID",
    b"In-Reply-To", b"References", b"Content-Type", b"Content-Disposition",
    b"Content-Transfer-Encoding", b"Content-ID", b"MIME-Version", b"Received",
    b"Authentication-Results", b"X-SES-Spam-Verdict",
]  # fmt: skip
CHARSETS = [b"unicode-escape", b"undefined", b"punycode", b"utf-7", b"utf-16", b"idna", b"rot13",
            b"x-unknown", b"\xff", b"utf-8''", b'"', b"base64"]  # fmt: skip
ENCODINGS = [b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"8bit", b"binary",
             b"bogus", b"(((", b""]  # fmt: skip
HEADER_LINE = re.compile(rb"(?m)^([A-Za-z-]+):[^\r\n]*\r?\n")
BOUNDARY_LINE = re.compile(rb"(?m)^--[^\r\n]*\r?\n")


def corpus_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))}


def _flip(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        if not out:
            break
        pos = rng.randrange(len(out))
        out[pos : pos + 1] = (
            rng.choice(SPECIAL) if rng.random() < 0.7 else bytes([rng.randrange(256)])
        )
    return bytes(out)


def _truncate(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _boundaries(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    lines = list(BOUNDARY_LINE.finditer(data))
    if not lines:
        return _flip(rng, data, _)
    line = rng.choice(lines)
    action = rng.choice(["drop", "duplicate", "explode", "close"])
    if action == "drop":
        return data[: line.start()] + data[line.end() :]
    if action == "close":  # turn an opening boundary into the closing one, early
        return data[: line.end() - 2] + b"--" + data[line.end() - 2 :]
    times = rng.randint(2, 5) if action == "duplicate" else rng.randint(200, 2000)
    return data[: line.start()] + line.group() * times + data[line.start() :]


def _header_explosion(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    headers = list(HEADER_LINE.finditer(data))
    if not headers:
        return rng.choice(HEADER_NAMES) + b": " + rng.choice(HOSTILE_VALUES) + b"\r\n" + data
    target = rng.choice(headers)
    action = rng.choice(["value", "value", "repeat", "insert", "fold"])
    if action == "value":  # the header's value becomes a hostile one
        return (
            data[: target.start()]
            + target.group(1)
            + b": "
            + rng.choice(HOSTILE_VALUES)
            + b"\r\n"
            + data[target.end() :]
        )
    if action == "repeat":
        times = rng.randint(10, 3000)
        return data[: target.start()] + target.group() * times + data[target.end() :]
    if action == "fold":  # one header folded over thousands of lines
        folded = target.group().rstrip(b"\r\n") + b"\r\n (x)" * rng.randint(100, 3000) + b"\r\n"
        return data[: target.start()] + folded + data[target.end() :]
    new = rng.choice(HEADER_NAMES) + b": " + rng.choice(HOSTILE_VALUES) + b"\r\n"
    return data[: target.start()] + new + data[target.start() :]


def _nesting(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    depth = rng.choice([5, 20, 60, 300, 1200])
    if rng.random() < 0.5:
        wrap = b"".join(
            b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i)
            for i in range(depth)
        )
    else:
        wrap = b"Content-Type: message/rfc822\r\n\r\n" * depth
    return wrap + data


def _many_parts(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    count = rng.choice([50, 900, 1100, 5000])
    part = rng.choice([b"--p\r\n\r\n", b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n"])
    return (
        b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + part * count + b"--p--\r\n" + data
    )


def _charset(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    swapped = re.sub(rb"(?i)charset=\"?[^\s;\"]+\"?", b"charset=" + rng.choice(CHARSETS), data)
    if swapped == data:
        swapped = b"Content-Type: text/html; charset=" + rng.choice(CHARSETS) + b"\r\n" + data
    return swapped


def _encoding(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    replacement = b"Content-Transfer-Encoding: " + rng.choice(ENCODINGS)
    swapped = re.sub(rb"(?im)^Content-Transfer-Encoding:[^\r\n]*", replacement, data, count=1)
    return swapped if swapped != data else replacement + b"\r\n" + data


def _line_endings(rng: random.Random, data: bytes, _: list[bytes]) -> bytes:
    return data.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]))


def _splice(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    other = rng.choice(others)
    start = rng.randrange(len(other) + 1)
    piece = other[start : start + rng.randint(1, 4000)]
    at = rng.randrange(len(data) + 1)
    return data[:at] + piece + data[at:]


MUTATIONS: list[Callable[[random.Random, bytes, list[bytes]], bytes]] = [
    _flip, _flip, _truncate, _boundaries, _boundaries, _header_explosion, _header_explosion,
    _header_explosion, _nesting, _many_parts, _charset, _encoding, _line_endings, _splice,
]  # fmt: skip


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = rng.choice(MUTATIONS)(rng, data, others)
    return data


def deliver(raw: bytes) -> str | None:
    """The pure path of one email: parse, decode, name, sanitize, build the JSON."""
    try:
        parsed = parse_bytes(raw)
    except PolicyRejected as rejected:
        if rejected.code != "unparseable_email":
            raise
        return None
    assert len(parsed.defects) <= MAX_DEFECTS
    for attachment in parsed.attachments:
        assert isinstance(attachment.data(), bytes)
    attachment_names(parsed)
    wire = build.build_message(
        parsed=parsed,
        body=build.readable_body(parsed, sanitize=True),
        destination=Destination(key="app1", domain="example.com", recipients=["_app1@example.com"]),
        ses_message_id="fuzz",
        raw=RawEmailLocation(s3_bucket="b", s3_key="k"),
        received_at=datetime.now(UTC),
        verdicts=parsed.ses_verdicts,
        attachments=[],
        recipient_source="envelope",
        now=datetime.now(UTC),
    ).to_wire()
    json.loads(wire)
    return wire


def test_mutated_corpus_never_breaks_the_pure_path(record_property: Callable[..., None]) -> None:
    files = corpus_files()
    assert len(files) >= 25
    originals = list(files.values())
    rng = random.Random(SEED)
    started = time.monotonic()
    runs, rejected, slowest = 0, 0, (0.0, "")
    while runs < MAX_INPUTS and time.monotonic() - started < BUDGET_SECONDS:
        name = list(files)[runs % len(files)]
        raw = mutate(rng, files[name], originals)
        began = time.monotonic()
        try:
            if deliver(raw) is None:
                rejected += 1
        except Exception as exc:  # keep the input for the report
            pytest.fail(f"seed {SEED}, input {runs} ({name}): {type(exc).__name__}: {exc}")
        took = time.monotonic() - began
        if took > slowest[0]:
            slowest = (took, f"input {runs} ({name}, {len(raw)} bytes)")
        runs += 1
    record_property("fuzz_inputs", runs)
    print(f"\nfuzz: {runs} inputs, {rejected} rejected, slowest {slowest[0]:.2f}s: {slowest[1]}")
    assert runs >= 200, "the machine is too slow for the fuzz to mean anything"
    assert slowest[0] < SLOW_INPUT_SECONDS, f"seed {SEED}: {slowest[1]} took {slowest[0]:.1f}s"
