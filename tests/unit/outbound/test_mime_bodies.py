"""Bodies as the composer writes them: boundaries, transfer encodings, exact round trips.

The composer writes bodies itself (binascii, random `=_` boundaries) instead of through
the library's generator; every choice here is checked by parsing the bytes back with both
of Python's parsers and comparing the text, HTML and attachment bytes exactly.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import json
import os
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailflow.outbound import compose as compose_module
from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
from mailflow.outbound.io import encoded_size
from mailflow.outbound.validation import ValidatedEmail, parse_message, validate
from mailflow.settings import load_settings
from tests.readme_examples import README_QUICKSTART

SETTINGS = load_settings(domains=["example.com"], apps={"app1": {}}, aws_endpoint_url="http://x")
DATE = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def validated(text: str | None = None, html: str | None = None) -> ValidatedEmail:
    data = json.loads(json.dumps(README_QUICKSTART))
    data["email"]["body"] = {k: v for k, v in (("text", text), ("html", html)) if v is not None}
    return validate(parse_message(json.dumps(data), SETTINGS), SETTINGS)


def build(
    text: str | None = None,
    html: str | None = None,
    attachments: list[LoadedAttachment] | None = None,
) -> bytes:
    email_ = validated(text, html)
    return compose(email_, attachments or [], message_id=message_id_for(email_), date=DATE)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def normalized(text: str) -> str:
    """What a text body reads as after the round trip: line ends as LF, a final one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def decoded(part: Message) -> str:
    """The part's text by the legacy API: bytes after the transfer decoding, as UTF-8."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8").replace("\r\n", "\n")


def body_parts(raw: bytes) -> dict[str, tuple[str, str]]:
    """{subtype: (Content-Transfer-Encoding, text)} of the text parts, both parsers agreeing."""
    modern = parse(raw)
    legacy = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: dict[str, tuple[str, str]] = {}
    for new, old in zip(modern.walk(), legacy.walk(), strict=True):
        if new.get_content_maintype() == "text" and not new.is_attachment():
            text = str(new.get_content()).replace("\r\n", "\n")
            assert decoded(old) == text
            found[new.get_content_subtype()] = (str(new["Content-Transfer-Encoding"]), text)
    return found


def check_wire(raw: bytes) -> None:
    """7-bit, CRLF only, and each body line within its encoding's limit."""
    assert all(b < 128 for b in raw)
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    msg = parse(raw)
    limits = {"7bit": 78, "quoted-printable": 76, "base64": 76}
    for part in msg.walk():
        if part.is_multipart():
            continue
        cte = str(part["Content-Transfer-Encoding"])
        payload = part.get_payload()
        assert isinstance(payload, str)
        lines = payload.split("\r\n")
        assert max(map(len, lines)) <= limits[cte], (cte, max(lines, key=len))


# --- Transfer encodings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cte"),
    [
        ("Hello,\nyour order is on its way.\n", "7bit"),
        ("short ASCII lines with a tab\tand = and ? and --=_ stay readable\n", "7bit"),
        ("x" * 79 + "\n", "quoted-printable"),  # a line over 78 characters
        ("NUL \x00 and form feed \x0c and DEL \x7f\n", "quoted-printable"),
        ("Dear Jörg, your order 4711 is on its way.\n", "quoted-printable"),
        # Shorter as base64 (as the library's own heuristic chose too):
        ("Grüße aus München, à bientôt\n", "base64"),
        ("你好，世界。这是一封测试邮件。" * 5, "base64"),
    ],
)
def test_transfer_encoding_choice_and_exact_round_trip(text: str, cte: str) -> None:
    raw = build(text=text)
    check_wire(raw)
    assert body_parts(raw) == {"plain": (cte, normalized(text))}


def test_a_large_body_is_base64_and_round_trips() -> None:
    html = "<p>Grüße, ein langer Newsletter.</p>\n" * 40_000  # > 1 MiB
    raw = build(text="see the HTML\n", html=html)
    check_wire(raw)
    parts = body_parts(raw)
    assert parts["html"] == ("base64", normalized(html))
    assert parts["plain"] == ("7bit", "see the HTML\n")


def test_a_200_kb_html_body_is_readable_quoted_printable() -> None:
    html = "<p>Grüße aus München: Ihre Bestellung ist unterwegs – danke!</p>\n" * 3000
    raw = build(text="Hallo\n", html=html)
    check_wire(raw)
    assert body_parts(raw)["html"] == ("quoted-printable", normalized(html))
    assert b"<p>Gr=C3=BC=C3=9Fe aus M=C3=BCnchen: Ihre Bestellung ist unterwegs" in raw


@pytest.mark.parametrize("blank", [" ", "\t"])
@pytest.mark.parametrize("length", [72, 73, 74, 75, 76, 77, 150])
def test_quoted_printable_lines_ending_in_blanks_stay_within_76(blank: str, length: int) -> None:
    """binascii.b2a_qp writes `...=20` 77 characters long for a 74-character line ending in
    a blank; the composer breaks such lines again."""
    text = ("ü" + "a" * (length - 2) + blank + "\n") * 3 + "end" + blank
    raw = build(text=text)
    check_wire(raw)
    assert body_parts(raw)["plain"] == ("quoted-printable", normalized(text))


def test_b2a_qp_still_has_the_defect_the_composer_works_around() -> None:
    """If this fails, CPython fixed b2a_qp and `_soft_break` can go."""
    encoded = binascii.b2a_qp(b"a" * 74 + b" \r\n", istext=True)
    assert max(len(line) for line in encoded.split(b"\r\n")) == 77


qp_pieces = st.sampled_from(
    [b"a", b"b" * 70, b" ", b"\t", b"=", b".", b"\xc3\xbc", b"\x00", b"\r\n", b"From ", b"-"]
)


@hsettings(max_examples=200, deadline=None)
@given(pieces=st.lists(qp_pieces | st.binary(max_size=8).map(lambda b: b.replace(b"\r", b""))))
def test_property_quoted_printable_is_rfc_2045_and_decodes_back(pieces: list[bytes]) -> None:
    # The composer's input: lines ending in CRLF, no other CR or LF.
    data = b"".join(pieces).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    encoded = compose_module._quoted_printable(data)
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b""  # ends in a line end
    assert max(map(len, lines)) <= 76
    assert not [line for line in lines if line[-1:] in (b" ", b"\t")]  # RFC 2045 6.7 (3)
    assert all(32 <= b < 127 or b == 9 for b in encoded.replace(b"\r\n", b""))
    assert binascii.a2b_qp(encoded) == data


edge_pieces = st.sampled_from(
    [
        "From ",
        ".",
        "..",
        " ",
        "\t",
        "\r\n",
        "\n",
        "\r",
        "=",
        "=_",
        "--",
        "=3D",
        "\x00",
        "\x1b",
        "\x7f",
        "ü",
        "你",
        "🎉",
        "\u2028",
        "a" * 40,
        "b" * 73,
    ]
)
edge_texts = st.lists(edge_pieces | st.text(max_size=20), max_size=40).map("".join)


@hsettings(max_examples=200, deadline=None)
@given(text=edge_texts, html=st.none() | edge_texts)
def test_property_any_text_and_html_round_trip_exactly(text: str, html: str | None) -> None:
    raw = build(text=text, html=html)
    check_wire(raw)
    parts = body_parts(raw)
    assert parts["plain"][1] == normalized(text)
    if html is not None:
        assert parts["html"][1] == normalized(html)
    assert encoded_size(len(normalized(text).replace("\n", "\r\n").encode())) >= len(
        parse(raw).get_body(preferencelist=("plain",)).get_payload()  # type: ignore[union-attr]
    )


# --- Boundaries ---------------------------------------------------------------------------


def boundaries(tokens: list[str]) -> Iterator[str]:
    yield from tokens
    raise AssertionError("the composer asked for more boundaries than the test expected")


def test_boundaries_are_random_and_cannot_occur_in_encoded_bodies() -> None:
    first, second = compose_module.new_boundary(), compose_module.new_boundary()
    assert first != second
    assert first.startswith("=_")
    assert len(first) == 34
    # Neither encoding can produce the `=_` every boundary starts with.
    every_byte = bytes(range(256)) * 3 + b"=_--=_\r\n"
    assert b"=_" not in binascii.b2a_qp(every_byte + b"\r\n", istext=True)
    assert b"=_" not in binascii.b2a_base64(every_byte)


def test_encoded_bodies_holding_the_boundary_keep_the_structure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The boundary is not looked for in quoted-printable or base64 bodies: it cannot be there."""
    token = "=_" + "0" * 32
    delimiter = f"--{token}"
    tokens = boundaries([token, "=_" + "1" * 32])
    monkeypatch.setattr(compose_module, "new_boundary", lambda: next(tokens))
    text = f"Grüße\n{delimiter}\n{delimiter}--\nend\n"  # quoted-printable
    html = f"<p>你好，世界。这是一封测试邮件。</p>\n{delimiter}--\n" * 20  # base64
    payload = f"\r\n{delimiter}--\r\n".encode() * 100
    attachment = LoadedAttachment("a.bin", "application/octet-stream", payload)
    raw = build(text=text, html=html, attachments=[attachment])
    check_wire(raw)
    msg = parse(raw)
    assert msg.get_boundary() == "=_" + "1" * 32
    (alternative, attached) = msg.iter_parts()
    assert alternative.get_boundary() == token
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert body_parts(raw) == {
        "plain": ("quoted-printable", normalized(text)),
        "html": ("base64", normalized(html)),
    }
    assert attached.get_payload(decode=True) == payload
    assert not msg.defects
    assert all(not part.defects for part in msg.walk())


def test_a_7bit_body_holding_the_boundary_gets_another_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only 7bit text could hold a boundary: it is looked at, and a colliding one redrawn."""
    taken, fresh, outer = ("=_" + c * 32 for c in "abc")
    text = f"plain ASCII\n--{taken}\nmore\n--{taken}--\n"
    tokens = boundaries([taken, fresh, outer])
    monkeypatch.setattr(compose_module, "new_boundary", lambda: next(tokens))
    raw = build(
        text=text,
        html="<p>x</p>",
        attachments=[LoadedAttachment("a.bin", "application/octet-stream", b"x")],
    )
    msg = parse(raw)
    assert msg.get_boundary() == outer
    (alternative, _) = msg.iter_parts()
    assert alternative.get_boundary() == fresh
    assert body_parts(raw)["plain"] == ("7bit", text)


def test_the_outer_boundary_differs_from_the_inner_one(monkeypatch: pytest.MonkeyPatch) -> None:
    same, other = "=_" + "d" * 32, "=_" + "e" * 32
    tokens = boundaries([same, same, other])
    monkeypatch.setattr(compose_module, "new_boundary", lambda: next(tokens))
    raw = build(
        text="a",
        html="<p>b</p>",
        attachments=[LoadedAttachment("a.bin", "application/octet-stream", b"x")],
    )
    msg = parse(raw)
    assert (msg.get_boundary(), next(msg.iter_parts()).get_boundary()) == (other, same)


# --- Copies -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 57 * 1024 - 1, 57 * 1024, 57 * 1024 + 1, 3_000_001])
def test_attachments_of_any_size_round_trip(size: int) -> None:
    data = os.urandom(size)
    raw = build(text="see attached", attachments=[LoadedAttachment("d.bin", "x/y", data)])
    check_wire(raw)
    (part,) = parse(raw).iter_attachments()
    assert part.get_payload(decode=True) == data
    payload = part.get_payload()
    assert isinstance(payload, str)
    assert len(payload) == encoded_size(size)  # the budget's arithmetic, exactly


def test_compose_holds_the_attachment_encoded_once() -> None:
    """Memory while composing is the message itself and small change: no list of lines,
    no second copy of the encoded attachment (the library's generator held several)."""
    data = os.urandom(4 * 1024 * 1024)
    email_ = validated(text="see attached")
    attachment = LoadedAttachment("d.bin", "application/pdf", data)
    message_id = message_id_for(email_)
    tracemalloc.start()
    try:
        raw = compose(email_, [attachment], message_id=message_id, date=DATE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(raw) > encoded_size(len(data))
    assert peak < len(raw) + 512 * 1024
