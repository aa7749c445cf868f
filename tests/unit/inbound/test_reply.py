"""`email.body.strippedText`: the new text of a reply, through the real parse path.

Every tests/fixtures/replies/<client>-<lang>.eml goes from raw bytes to the app
message's JSON, and its `strippedText` must be exactly <name>.expected.txt.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailflow.contracts.inbound import RawEmailLocation, Verdicts
from mailflow.inbound import message as build
from mailflow.inbound.parse import parse_bytes
from mailflow.inbound.reply import html_to_text, strip_reply
from mailflow.inbound.routing import Destination

REPLIES = Path(__file__).resolve().parents[2] / "fixtures" / "replies"
NAMES = sorted(p.stem for p in REPLIES.glob("*.eml"))
NOW = datetime(2024, 6, 3, 10, 30, tzinfo=UTC)


def wire(raw: bytes, *, sanitize: bool = True) -> dict[str, object]:
    """The JSON an app receives for `raw`."""
    parsed = parse_bytes(raw)
    message = build.build_message(
        parsed=parsed,
        body=build.readable_body(parsed, sanitize=sanitize),
        destination=Destination(key="app1", domain="example.com", recipients=["_app1@example.com"]),
        ses_message_id="sesid",
        raw=RawEmailLocation(s3_bucket="raw", s3_key="inbound/sesid"),
        received_at=NOW,
        verdicts=Verdicts(),
        attachments=[],
        recipient_source="envelope",
        now=NOW,
    )
    document: dict[str, object] = json.loads(message.to_wire())
    return document


def stripped(raw: bytes) -> object:
    email = wire(raw)["email"]
    assert isinstance(email, dict)
    return email["body"].get("strippedText")


def test_the_corpus_covers_every_client_and_language() -> None:
    required = {
        "gmail-en", "gmail-de", "gmail-fr", "gmail-es", "gmail-zh", "gmail-ja",
        "outlook-en", "outlook-de", "outlook-fr", "outlook-es", "apple-mail-en",
        "apple-mail-de", "thunderbird-en", "thunderbird-fr", "iphone-en", "android-en",
        "outlook-html-only-en", "not-a-reply-en",
    }  # fmt: skip
    assert required <= set(NAMES)
    assert all((REPLIES / f"{name}.expected.txt").is_file() for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_stripped_text_is_the_new_text_only(name: str) -> None:
    expected = (REPLIES / f"{name}.expected.txt").read_text(encoding="utf-8")
    assert stripped((REPLIES / f"{name}.eml").read_bytes()) == expected


def test_html_only_reply_is_read_from_the_html() -> None:
    document = wire((REPLIES / "outlook-html-only-en.eml").read_bytes())
    email = document["email"]
    assert isinstance(email, dict)
    assert "text" not in email["body"]
    assert email["body"]["strippedText"].startswith("Hi,")


def test_html_only_reply_without_sanitizing_hides_head_and_styles() -> None:
    document = wire((REPLIES / "outlook-html-only-en.eml").read_bytes(), sanitize=False)
    email = document["email"]
    assert isinstance(email, dict)
    assert email["body"]["strippedText"] == (
        REPLIES / "outlook-html-only-en.expected.txt"
    ).read_text(encoding="utf-8")


def test_no_body_means_no_stripped_text() -> None:
    raw = b"From: a@example.net\r\nTo: _app1@example.com\r\nSubject: empty\r\n"
    raw += b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n"
    document = wire(raw)
    email = document["email"]
    assert isinstance(email, dict)
    assert email["body"] == {}


def test_not_a_reply_is_the_whole_text() -> None:
    text = "Hello,\n\nplease call me.\n\nFrom: Anna\nBest regards,\nAnna\n"
    assert strip_reply(text) == text.strip("\n")


def test_an_inline_quote_in_the_middle_is_kept() -> None:
    text = "As you said:\n> ship on Monday\nthat works.\n"
    assert strip_reply(text) == "As you said:\n> ship on Monday\nthat works."


def test_a_trailing_quote_without_attribution_is_history() -> None:
    assert strip_reply("Agreed.\n\n> Shall we ship?\n> Bob\n") == "Agreed."


def test_prose_that_looks_like_an_attribution_is_kept() -> None:
    text = "On Monday the team wrote: a plan.\nIt follows below.\n"
    assert strip_reply(text) == text.strip("\n")


def test_signature_delimiter_ends_the_text() -> None:
    assert strip_reply("Yes.\n\n-- \nBob\n+1 555 0100\n") == "Yes."


def test_a_tagline_that_does_not_end_the_text_is_kept() -> None:
    text = "Sent from my iPhone is what my mail said.\nOdd, right?"
    assert strip_reply(text) == text


def test_blockquotes_become_quoted_lines() -> None:
    html = "<div>Fine.</div><blockquote><p>Question?</p><blockquote>Older</blockquote></blockquote>"
    assert html_to_text(html) == "Fine.\n> Question?\n> > Older"


def test_hostile_text_costs_linear_time() -> None:
    """Thousands of attributions, header lines and quotes: a quadratic scan takes minutes."""
    started = time.monotonic()
    for line in ("On x wrote:", "From: x", "> x", "On " * 100):
        strip_reply(f"{line}\n" * 5_000)
    html_to_text("<blockquote><div>" * 5_000 + "x" * 100_000)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "attribution",
    [
        "Em seg., 3 de jun. de 2024 às 10:12, Ana <ana@example.net> escreveu:",
        "Il giorno lun 3 giu 2024 alle ore 10:12 Anna <anna@example.net> ha scritto:",
        "Op ma 3 jun 2024 om 10:12 schreef Anne <anne@example.net>:",
    ],
    ids=["pt", "it", "nl"],
)
def test_other_languages_attributions(attribution: str) -> None:
    assert strip_reply(f"Ok.\n\n{attribution}\n\n> earlier\n") == "Ok."
