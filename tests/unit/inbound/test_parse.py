"""MIME parsing over the corpus: every quirk yields the fields an app needs."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.contracts.inbound import RawEmailLocation
from mailflow.inbound import message as build
from mailflow.inbound.attachments import attachment_names
from mailflow.inbound.parse import decode_text_bytes, parse_bytes
from mailflow.inbound.routing import Destination
from tests.fixtures.eml.make_corpus import PDF_SMALL, PNG_1X1, corpus
from tests.unit.inbound.conftest import corpus_bytes


def test_committed_corpus_matches_its_generator() -> None:
    for name, data in corpus().items():
        assert corpus_bytes(name) == data, f"{name} differs from make_corpus.py"
    assert len(corpus()) >= 25


def test_plain_email_fields() -> None:
    parsed = parse_bytes(corpus_bytes("plain.eml"))
    assert parsed.message_id == "plain-1@sender.test"
    assert parsed.from_ is not None
    assert (parsed.from_.address, parsed.from_.name) == ("alice@sender.test", "Alice Example")
    assert [a.address for a in parsed.to] == ["_app1@example.com"]
    assert parsed.subject == "Plain text hello"
    assert parsed.text == "Hello app1,\nthis is a plain text email.\n"
    assert parsed.html is None
    assert isinstance(parsed.date, datetime)
    assert parsed.date.utcoffset() is not None
    assert parsed.attachments == []
    assert parsed.defects == []
    assert not parsed.charset_fallbacks


def test_alternative_has_both_bodies() -> None:
    parsed = parse_bytes(corpus_bytes("alternative.eml"))
    assert parsed.text is not None
    assert "Plain version" in parsed.text
    assert parsed.html is not None
    assert "<b>version</b>" in parsed.html


def test_attachments_keep_full_type_and_bytes() -> None:
    parsed = parse_bytes(corpus_bytes("attachments.eml"))
    assert [(a.filename, a.content_type, a.disposition) for a in parsed.attachments] == [
        ("report.pdf", "application/pdf", "attachment"),
        ("pixel.png", "image/png", "attachment"),
    ]
    assert parsed.attachments[0].data() == PDF_SMALL
    assert parsed.attachments[1].data() == PNG_1X1


def test_inline_images_keep_content_id_with_and_without_filename() -> None:
    named = parse_bytes(corpus_bytes("inline-image-named.eml")).attachments
    unnamed = parse_bytes(corpus_bytes("inline-image-unnamed.eml")).attachments
    assert [(a.filename, a.content_id, a.disposition) for a in named] == [
        ("logo.png", "logo@sender.test", "inline")
    ]
    assert [(a.filename, a.content_id, a.disposition) for a in unnamed] == [
        (None, "part1.abc@sender.test", "inline")
    ]
    assert unnamed[0].data() == PNG_1X1


def test_declared_charsets_are_honoured() -> None:
    latin1 = parse_bytes(corpus_bytes("iso-8859-1.eml"))
    assert latin1.text is not None
    assert "café crème à Noël" in latin1.text
    assert latin1.subject == "Café crème"
    assert latin1.from_ is not None
    assert latin1.from_.name == "François"
    cp1252 = parse_bytes(corpus_bytes("windows-1252.eml"))
    assert cp1252.text is not None
    assert "“Quoted” – costs €20." in cp1252.text
    japanese = parse_bytes(corpus_bytes("iso-2022-jp.eml"))
    assert japanese.text is not None
    assert "こんにちは、世界。" in japanese.text
    assert japanese.subject == "こんにちは"
    assert japanese.from_ is not None
    assert japanese.from_.name == "山田"
    for parsed in (latin1, cp1252, japanese):
        assert parsed.charset_fallbacks == []


def test_wrong_charset_declaration_falls_back_and_says_so() -> None:
    parsed = parse_bytes(corpus_bytes("wrong-charset.eml"))
    assert parsed.text is not None
    assert "Grüße aus Köln" in parsed.text
    assert [(f.part, f.declared, f.used) for f in parsed.charset_fallbacks] == [
        ("text", "utf-8", "windows-1252")
    ]


def test_decode_text_bytes_chain() -> None:
    assert decode_text_bytes("Grüße".encode(), "iso-8859-1") == ("Grüße", "utf-8")
    assert decode_text_bytes("Grüße".encode("latin-1"), "iso-8859-1") == ("Grüße", "iso-8859-1")
    assert decode_text_bytes("日本".encode("iso-2022-jp"), None) == ("日本", "iso-2022-jp")
    assert decode_text_bytes(b"abc", "x-no-such-charset") == ("abc", "utf-8")
    assert decode_text_bytes(b"\x81\xff", "utf-8")[1] == "windows-1252"


def test_rfc2047_subject_and_display_name() -> None:
    parsed = parse_bytes(corpus_bytes("rfc2047-subject.eml"))
    assert parsed.subject == "Prüfung der Rechnung €"
    assert parsed.from_ is not None
    assert parsed.from_.name == "Jörg Müller"


def test_rfc2231_and_rfc2047_filenames_are_decoded() -> None:
    rfc2231 = parse_bytes(corpus_bytes("rfc2231-filename.eml")).attachments
    assert [a.filename for a in rfc2231] == ["Übersicht Quartal 2.pdf"]
    rfc2047 = parse_bytes(corpus_bytes("non-ascii-filename.eml")).attachments
    assert [a.filename for a in rfc2047] == ["Résumé 履歴書.pdf"]


def test_attached_message_is_one_attachment_not_walked_into() -> None:
    parsed = parse_bytes(corpus_bytes("nested-rfc822.eml"))
    assert parsed.text is not None
    assert "Forwarding" in parsed.text
    assert "Inner body text" not in parsed.text
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("The original.eml", "message/rfc822")
    ]
    inner = parse_bytes(parsed.attachments[0].data())
    assert inner.subject == "The original"
    assert [a.filename for a in inner.attachments] == ["inner.pdf"]


def test_threading_headers_without_angle_brackets() -> None:
    parsed = parse_bytes(corpus_bytes("threading-reply.eml"))
    assert parsed.headers.in_reply_to == "order-2@example.com"
    assert parsed.headers.references == ["order-1@example.com", "order-2@example.com"]


def test_no_message_id_is_none() -> None:
    assert parse_bytes(corpus_bytes("no-message-id.eml")).message_id is None


def test_malformed_mime_keeps_the_body_and_notes_defects() -> None:
    parsed = parse_bytes(corpus_bytes("malformed-mime.eml"))
    assert parsed.text is not None
    assert "The body survives." in parsed.text
    assert "CloseBoundaryNotFoundDefect" in parsed.defects
    assert [a.filename for a in parsed.attachments] == ["bad.pdf"]


def test_auto_reply_signals() -> None:
    assert parse_bytes(corpus_bytes("auto-reply.eml")).is_auto_reply is True
    assert parse_bytes(corpus_bytes("plain.eml")).is_auto_reply is False
    bounce = b"From: MAILER-DAEMON@mx.test\r\nTo: a@example.com\r\nSubject: fail\r\n\r\nx"
    assert parse_bytes(bounce).is_auto_reply is True
    bulk = b"From: news@x.test\r\nPrecedence: bulk\r\nSubject: n\r\n\r\nx"
    assert parse_bytes(bulk).is_auto_reply is True
    explicit_no = b"From: p@x.test\r\nAuto-Submitted: no\r\nSubject: n\r\n\r\nx"
    assert parse_bytes(explicit_no).is_auto_reply is False


def test_ses_prepended_headers_give_recipient_and_verdicts() -> None:
    raw = (
        b"Return-Path: <a@sender.test>\r\n"
        b"Received: from mx.sender.test by inbound-smtp.us-east-1.amazonaws.com with SMTP id"
        b" abc\r\n for _app1@example.com; Tue, 03 Mar 2026 09:15:00 +0000\r\n"
        b"X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: FAIL\r\n"
        b"Authentication-Results: amazonses.com; spf=softfail smtp.mailfrom=x; dkim=pass;"
        b" dmarc=fail header.from=x\r\n"
        b"Received: from forged by attacker for _app2@example.com; Tue, 03 Mar 2026\r\n"
        b"X-SES-Virus-Verdict: PASS\r\n"
        b"From: a@sender.test\r\nSubject: s\r\n\r\nbody"
    )
    parsed = parse_bytes(raw)
    assert parsed.ses_recipient == "_app1@example.com"
    v = parsed.ses_verdicts
    assert (v.spam, v.virus, v.spf, v.dkim, v.dmarc) == ("PASS", "FAIL", "FAIL", "PASS", "FAIL")


def test_received_header_not_from_ses_is_not_trusted() -> None:
    raw = b"Received: from evil by mx.evil.test for _app2@example.com; Tue\r\nSubject: s\r\n\r\nx"
    assert parse_bytes(raw).ses_recipient is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parsed = parse_bytes(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + data)
    for attachment in parsed.attachments:
        attachment.data()


_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))


@settings(max_examples=100, deadline=None)
@given(
    subject=st.text(_PRINTABLE, max_size=80),
    filename=st.text(_PRINTABLE, min_size=1, max_size=60).filter(str.strip),
    body=st.text(max_size=300),
)
def test_round_trip_of_generated_messages(subject: str, filename: str, body: str) -> None:
    message = EmailMessage(policy=policy.default)
    message["From"] = "x@sender.test"
    message["Subject"] = subject
    message.set_content(body)
    message.add_attachment(
        b"data", maintype="application", subtype="octet-stream", filename=filename
    )
    parsed = parse_bytes(message.as_bytes())
    assert parsed.subject == " ".join(message["Subject"].split())
    assert len(parsed.attachments) == 1
    assert parsed.attachments[0].data() == b"data"


def test_raw_8bit_headers_become_text_not_surrogates() -> None:
    utf8 = parse_bytes(
        "From: Jörg <jörg@x.test>\r\nSubject: Grüße €\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="Über.pdf"\r\n'
        "\r\nx\r\n--b--\r\n".encode()
    )
    assert utf8.subject == "Grüße €"
    assert utf8.from_ is not None
    assert utf8.from_.name == "Jörg"
    assert [a.filename for a in utf8.attachments] == ["Über.pdf"]
    latin1 = parse_bytes("Subject: Café\r\nFrom: Zoë <z@x.test>\r\n\r\nx".encode("latin-1"))
    assert latin1.subject == "Caf\ufffd"
    assert latin1.from_ is not None
    assert latin1.from_.name == "Zo\ufffd"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_header_bytes_give_json_encodable_fields(data: bytes) -> None:
    from mailflow.contracts.inbound import Email

    parsed = parse_bytes(
        b"From: " + data + b"\r\nSubject: " + data + b"\r\nTo: " + data + b"\r\n\r\nx"
    )
    email = Email(
        from_=parsed.from_, to=parsed.to, subject=parsed.subject, received_at=datetime.now(),
        headers=parsed.headers,
    )  # fmt: skip
    email.model_dump_json(by_alias=True)


HEADERS = [
    "From", "To", "Cc", "Reply-To", "Sender", "Date", "Message-ID", "In-Reply-To", "References",
    "Subject", "Content-Type", "Content-Disposition", "Content-ID", "Content-Transfer-Encoding",
    "Auto-Submitted", "Received", "Authentication-Results",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(HEADERS), st.binary(max_size=80)), max_size=6))
def test_hostile_headers_never_break_parsing(headers: list[tuple[str, bytes]]) -> None:
    head = b"".join(
        name.encode() + b": " + value.replace(b"\n", b" ") + b"\r\n" for name, value in headers
    )
    part = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        + head
        + b"\r\nbody\r\n--b--\r\n"
    )
    for raw in (head + b"\r\nbody", part):
        parsed = parse_bytes(raw)
        for attachment in parsed.attachments:
            attachment.data()
        attachment_names(parsed)
        build.build_message(
            parsed=parsed,
            body=build.readable_body(parsed, sanitize=True),
            destination=Destination(
                key="app1", domain="example.com", recipients=["_app1@example.com"]
            ),
            ses_message_id="x",
            raw=RawEmailLocation(s3_bucket="b", s3_key="k"),
            received_at=datetime.now(UTC),
            verdicts=parsed.ses_verdicts,
            attachments=[],
            recipient_source="envelope",
            now=datetime.now(UTC),
        ).to_wire()
