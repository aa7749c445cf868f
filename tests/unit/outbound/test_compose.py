"""MIME composition, checked by parsing the bytes back with the standard library."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailflow.errors import MailflowError
from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
from mailflow.outbound.validation import ValidatedEmail, parse_message, validate
from mailflow.settings import Settings, load_settings
from tests.readme_examples import README_QUICKSTART

DATE = datetime(2025, 10, 31, 12, 34, 56, tzinfo=UTC)


def build(
    body: str, settings: Settings, attachments: list[LoadedAttachment] | None = None
) -> tuple[ValidatedEmail, EmailMessage, bytes]:
    validated = validate(parse_message(body, settings), settings)
    raw = compose(validated, attachments or [], message_id=message_id_for(validated), date=DATE)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return validated, parsed, raw


def content(part: EmailMessage) -> str:
    """Decoded text with the wire's CRLF line ends as LF."""
    return str(part.get_content()).replace("\r\n", "\n")


def test_text_only(make_body: Callable[..., str], unit_settings: Settings) -> None:
    _, msg, raw = build(make_body(README_QUICKSTART), unit_settings)
    assert msg.get_content_type() == "text/plain"
    assert content(msg) == "This is a test response from Mailflow\n"
    assert msg["Subject"] == "Test Response"
    assert msg["From"] == "App1 <_app1@example.com>"
    assert msg["To"] == "recipient@example.net"
    assert parsedate_to_datetime(msg["Date"]) == DATE
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert b"\r\n" in raw
    assert all(b < 128 for b in raw)


def test_html_only(make_body: Callable[..., str], unit_settings: Settings) -> None:
    _, msg, _ = build(make_body(**{"email.body": {"html": "<p>Hi</p>"}}), unit_settings)
    assert msg.get_content_type() == "text/html"
    assert content(msg).strip() == "<p>Hi</p>"


def test_text_and_html_is_alternative_with_html_last(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    _, msg, _ = build(make_body(), unit_settings)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    body = msg.get_body(preferencelist=("html",))
    assert body is not None
    assert content(body).strip() == "<p>HTML response</p>"


def test_attachments_make_mixed_and_parse_back_byte_exact(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    pdf = bytes(range(256)) * 100
    csv = "name,city\nJörg,München\n".encode()
    atts = [
        LoadedAttachment("report.pdf", "application/pdf", pdf),
        LoadedAttachment("Übersicht – 2025.csv", "text/csv", csv),
    ]
    _, msg, _ = build(make_body(), unit_settings, atts)
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(preferencelist=("html", "plain"))
    assert body is not None
    assert body.get_content_type() == "text/html"
    found = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_attachments()
    ]
    assert found == [
        ("report.pdf", "application/pdf", pdf),
        ("Übersicht – 2025.csv", "text/csv", csv),
    ]


def test_message_rfc822_attachment_is_shipped_opaque(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    raw_eml = b"From: a@b.c\r\nSubject: x\r\n\r\nbody \xff\r\n"
    _, msg, _ = build(
        make_body(), unit_settings, [LoadedAttachment("fwd.eml", "message/rfc822", raw_eml)]
    )
    (part,) = list(msg.iter_attachments())
    assert part.get_filename() == "fwd.eml"
    assert part.get_payload(decode=True) == raw_eml


def test_non_ascii_subject_names_and_bodies(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    subject = "Grüße aus München – 你好 🎉 " + "sehr lang " * 12
    _, msg, raw = build(
        make_body(
            **{
                "email.subject": subject,
                "email.from.name": "Zoë Ågren, Support",
                "email.to": [{"address": "joerg@münchen.de", "name": 'Jörg "der Große"'}],
                "email.body": {"text": "Grüße 你好\n", "html": "<p>Grüße 你好</p>"},
            }
        ),
        unit_settings,
    )
    assert msg["Subject"] == subject
    assert getaddresses([msg["From"]]) == [("Zoë Ågren, Support", "_app1@example.com")]
    assert getaddresses([msg["To"]]) == [('Jörg "der Große"', "joerg@xn--mnchen-3ya.de")]
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None
    assert content(text) == "Grüße 你好\n"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert all(b < 128 for b in raw)


def test_reply_to_cc_and_bcc_absent_from_headers(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    validated, msg, raw = build(
        make_body(
            **{
                "email.cc": [{"address": "cc@example.net", "name": "C C"}],
                "email.bcc": [{"address": "secret@example.net"}],
                "email.replyTo": [{"address": "reply@example.net"}, {"address": "r2@example.net"}],
            }
        ),
        unit_settings,
    )
    assert msg["Cc"] == "C C <cc@example.net>"
    assert [a for _, a in getaddresses([msg["Reply-To"]])] == [
        "reply@example.net",
        "r2@example.net",
    ]
    assert msg["Bcc"] is None
    assert b"secret@example.net" not in raw
    assert "secret@example.net" in validated.recipients


def test_message_id_on_sender_domain_and_stable(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    validated, msg, _ = build(
        make_body(**{"email.from.address": "support@bücher.de"}), unit_settings
    )
    mid = msg["Message-ID"]
    assert mid.startswith("<")
    assert mid.endswith("@xn--bcher-kva.de>")
    assert mid == message_id_for(validated)
    other, _, _ = build(make_body(**{"email.subject": "changed"}), unit_settings)
    assert message_id_for(other) != message_id_for(validated)


def test_threading_headers_folded_single_brackets(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    refs = [f"<ref{i}.{'x' * 30}@mail.example.net>" for i in range(8)]
    _, msg, raw = build(
        make_body(
            **{
                "email.headers": {
                    "in-reply-to": "<<parent@mail.example.net>>",
                    "references": " ".join(r.strip("<>") for r in refs),
                }
            }
        ),
        unit_settings,
    )
    assert msg["In-Reply-To"] == "<parent@mail.example.net>"
    assert msg["References"].split() == refs
    references_block = raw.split(b"References:")[1].split(b"\r\n")
    assert len(references_block[0]) < 78
    assert references_block[1].startswith(b" ")
    assert b"<<" not in raw
    assert b">>" not in raw


def test_auto_submitted_can_be_turned_off_and_priority(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    _, msg, _ = build(make_body(options={"autoSubmitted": "no", "priority": "high"}), unit_settings)
    assert msg["Auto-Submitted"] is None
    assert msg["X-Priority"].startswith("1")
    assert msg["Importance"] == "high"


def norm(text: str) -> str:
    return " ".join(text.split())


SETTINGS = load_settings(domains=["example.com"], apps={"app1": {}}, aws_endpoint_url="http://x")
printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120
)
# Display names without RFC 5322 specials, so that a decoded header can be split back
# into name and address without re-implementing quoting (specials: example tests above).
plain_names = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters='()<>[]:;@\\,."'
    ),
    max_size=80,
)


@hsettings(max_examples=100, deadline=None)
@given(
    subject=printable,
    name=plain_names,
    text=st.text(max_size=300),
    # CPython's get_filename() strips one pair of <...> around a name (email.utils.unquote),
    # whatever the encoding: a reader's quirk, not the message's.
    filename=printable.filter(
        lambda s: (
            s.strip() != ""
            and "/" not in s
            and "\\" not in s
            and s == s.strip()
            and not (s.startswith("<") and s.endswith(">"))
        )
    ),
)
def test_property_composed_message_parses_back(
    subject: str, name: str, text: str, filename: str
) -> None:
    data = json.loads(json.dumps(README_QUICKSTART))
    data["email"]["subject"] = subject
    data["email"]["from"]["name"] = name
    data["email"]["body"] = {"text": text}
    validated = validate(parse_message(json.dumps(data), SETTINGS), SETTINGS)
    raw = compose(
        validated,
        [LoadedAttachment(filename, "application/octet-stream", b"\x00\x01")],
        message_id=message_id_for(validated),
        date=DATE,
    )
    assert all(b < 128 for b in raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    # Folding and unfolding may change runs of blanks, nothing else.
    assert norm(str(msg["Subject"])) == norm(subject)
    # The modern parser (policy.default) wrongly keeps the blank between two adjacent
    # encoded words of a display name (RFC 2047 6.2 says drop it); the legacy decoder
    # gets it right, and so do mail clients.
    legacy = email.message_from_bytes(raw)
    decoded = str(make_header(decode_header(str(legacy["From"]))))
    ((parsed_name, address),) = getaddresses([decoded])
    assert (norm(parsed_name), address) == (norm(name), "_app1@example.com")
    assert len(msg.keys()) == len(set(k.lower() for k in msg))  # no header smuggled in
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    # Line endings are normalized to CRLF on the wire and LF when parsed back.
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert content(body).rstrip("\n") == expected.rstrip("\n") or not text.strip()
    (att,) = list(msg.iter_attachments())
    assert att.get_filename() == filename


@hsettings(max_examples=300, deadline=None)
@given(
    address=st.emails()
    | st.text(max_size=40)
    | st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=15), st.text(max_size=15))
)
def test_property_any_recipient_is_refused_or_round_trips(address: str) -> None:
    """Hostile recipient strings: a clear refusal, or exactly that one mailbox in To."""
    data = json.loads(json.dumps(README_QUICKSTART))
    data["email"]["to"] = [{"address": address, "name": "R"}]
    outcome = validate_or_code(json.dumps(data))
    if isinstance(outcome, str):
        assert outcome in {"invalid_address", "header_injection", "invalid_message"}
        return
    raw = compose(outcome, [], message_id=message_id_for(outcome), date=DATE)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    (recipient,) = outcome.recipients
    assert getaddresses([str(msg["To"])]) == [("R", recipient)]
    assert recipient.isascii()
    assert not set(recipient) & {"\r", "\n", " "}
    assert msg["Bcc"] is None
    assert msg["Cc"] is None


def validate_or_code(body: str) -> ValidatedEmail | str:
    try:
        return validate(parse_message(body, SETTINGS), SETTINGS)
    except MailflowError as exc:
        return exc.code
