"""`a2b_base64` is binascii's decoder on every input, faster: same bytes, same errors."""

from __future__ import annotations

import base64
import binascii
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.inbound.b64 import a2b_base64

# Large enough for the fast path: 96 KiB of base64 in 76-character CRLF lines.
BODY = base64.encodebytes(os.urandom(72 * 1024)).replace(b"\n", b"\r\n")
# The alphabet's edges, padding, line ends, junk, 8-bit bytes: where decoders part ways.
EDGES = b"QUJD=\r\n+/!*\x80 -_"
HOSTILE = st.binary(max_size=40).map(lambda b: bytes(EDGES[c % len(EDGES)] for c in b))


def outcome(decode: object, data: bytes | memoryview) -> tuple[str, bytes | str]:
    try:
        return "ok", decode(data)  # type: ignore[operator]
    except Exception as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=250, deadline=None)
@given(head=HOSTILE, inside=HOSTILE, at=st.integers(0, len(BODY)), tail=HOSTILE)
def test_large_hostile_bodies_decode_exactly_as_binascii_does(
    head: bytes, inside: bytes, at: int, tail: bytes
) -> None:
    data = head + BODY[:at] + inside + BODY[at:] + tail
    assert outcome(a2b_base64, data) == outcome(binascii.a2b_base64, data)


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        b"QQ==",  # a completed pad
        b"QQ==QUJD\r\n",  # data after a completed pad: pybase64 refuses, binascii stops
        b"QQ==junk!\r\n",
        b"QUJD==QQ==",  # stray pad at a quad boundary is skipped by both
        b"QQ=",  # incomplete padding: both raise
        b"Q",  # one character too many
        b"\x80\xff",  # 8-bit junk
    ],
)
def test_edge_tails_decode_exactly_as_binascii_does(tail: bytes) -> None:
    data = BODY + tail
    assert outcome(a2b_base64, data) == outcome(binascii.a2b_base64, data)


def test_a_view_into_the_raw_email_decodes_without_a_copy_of_its_own() -> None:
    email = b"headers\r\n\r\n" + BODY + b"--boundary--\r\n"
    view = memoryview(email)[11 : 11 + len(BODY)]
    assert a2b_base64(view) == binascii.a2b_base64(BODY)


def test_text_payloads_take_binascii() -> None:
    assert a2b_base64(BODY.decode()) == binascii.a2b_base64(BODY)
    assert outcome(a2b_base64, "QQ=") == outcome(binascii.a2b_base64, b"QQ=")  # type: ignore[arg-type]
