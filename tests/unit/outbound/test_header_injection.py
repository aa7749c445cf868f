"""No app input can create a header line: hostile values in every field that reaches one.

Each example is validated and composed as the worker would, then the bytes are parsed
back by both of Python's parsers. Either validation refuses the message with a clear
code, or the header set is exactly the one mailflow meant to write (nothing added,
nothing duplicated, no part's headers replaced) and the app's text round-trips.
The hostile values include RFC 2047 encoded words whose payload holds CRLF and whole
header lines (`=?utf-8?b?SW52b2ljZQ0KQmNjOiBldmlsQGV2aWwuZXhhbXBsZQ==?=` is
"Invoice\\r\\nBcc: evil@evil.example"), in B and Q encodings and several charsets.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import quopri
from collections import Counter
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailflow.errors import MailflowError
from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
from mailflow.outbound.validation import ValidatedEmail, parse_message, validate
from mailflow.settings import load_settings
from tests.readme_examples import README_QUICKSTART

SETTINGS = load_settings(domains=["example.com"], apps={"app1": {}}, aws_endpoint_url="http://x")
DATE = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
REFUSALS = {
    "header_injection",
    "invalid_header",
    "invalid_address",
    "invalid_attachment",
    "invalid_message",
}
INJECTED = [
    "\r\nBcc: evil@evil.example",
    "\r\nReply-To: evil@evil.example",
    "\r\nContent-Type: text/html\r\n\r\n<b>replaced</b>",
    "\nX-Injected: 1",
    "\rSubject: second",
    "\r\n\r\nbody starts here",
]


def encoded_word(payload: str, charset: str, encoding: str) -> str:
    data = payload.encode(charset, errors="replace")
    if encoding == "b":
        text = base64.b64encode(data).decode()
    else:
        text = quopri.encodestring(data, header=True).decode().replace("=\n", "")
    return f"=?{charset}?{encoding}?{text}?="


hostile_words = st.builds(
    encoded_word,
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["Invoice", "", "Re: x", "ü"]),
        st.sampled_from(INJECTED),
    ),
    st.sampled_from(["utf-8", "iso-8859-1", "us-ascii"]),
    st.sampled_from(["b", "q", "B", "Q"]),
)
benign = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)
hostile = st.lists(st.one_of(hostile_words, benign, st.sampled_from(INJECTED)), max_size=4).map(
    " ".join
)


def outcome(data: dict[str, Any]) -> ValidatedEmail | str:
    try:
        return validate(parse_message(json.dumps(data), SETTINGS), SETTINGS)
    except MailflowError as exc:
        return exc.code


def headers_of(part: Message) -> Counter[str]:
    return Counter(name.lower() for name in part)


def expected_headers(email_: ValidatedEmail, multipart: bool) -> Counter[str]:
    names = ["from", "subject", "date", "message-id", "mime-version", "content-type"]
    names += ["auto-submitted", "x-auto-response-suppress"]
    if email_.to:
        names.append("to")
    if email_.cc:
        names.append("cc")
    if email_.reply_to:
        names.append("reply-to")
    if email_.in_reply_to:
        names.append("in-reply-to")
    if email_.references:
        names.append("references")
    if not multipart:
        names.append("content-transfer-encoding")
    return Counter(names)


def norm(text: str) -> str:
    return " ".join(text.split())


def check(
    data: dict[str, Any], filename: str = "report.pdf", content_type: str = "application/pdf"
) -> None:
    result = outcome(data)
    if isinstance(result, str):
        assert result in REFUSALS, result
        return
    attachment = LoadedAttachment(filename, content_type, b"%PDF-1.4 data")
    raw = compose(result, [attachment], message_id=message_id_for(result), date=DATE)
    assert all(b < 128 for b in raw)
    for policy in (email.policy.default, email.policy.compat32):
        msg = email.message_from_bytes(raw, policy=policy)
        assert headers_of(msg) == expected_headers(result, multipart=True), headers_of(msg)
        parts = msg.get_payload()
        assert isinstance(parts, list)
        assert len(parts) == 2  # the body, the one attachment: nothing injected between
        body, attached = parts
        assert body.get_content_type() == "text/plain"
        assert headers_of(attached) == Counter(
            ["content-type", "content-transfer-encoding", "content-disposition"]
        )
        assert attached.get_payload(decode=True) == b"%PDF-1.4 data"
    legacy = email.message_from_bytes(raw)
    subject = str(make_header(decode_header(legacy["Subject"])))
    assert norm(subject) == norm(result.subject)
    modern = email.message_from_bytes(raw, policy=email.policy.default)
    (part,) = list(modern.iter_attachments())
    assert part.get_filename() == filename


def message(**email_fields: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(README_QUICKSTART))
    data["email"].update(email_fields)
    return data


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=hostile)
def test_subject(subject: str) -> None:
    check(message(subject=subject))


@hsettings(max_examples=150, deadline=None)
@given(name=hostile, reply=hostile)
def test_display_names(name: str, reply: str) -> None:
    check(
        message(
            **{"from": {"address": "_app1@example.com", "name": name}},
            to=[{"address": "someone@example.net", "name": name}],
            replyTo=[{"address": "help@example.net", "name": reply}],
        )
    )


@hsettings(max_examples=150, deadline=None)
@given(local=st.one_of(hostile_words, hostile))
def test_addresses(local: str) -> None:
    check(message(to=[{"address": f"{local}@example.net"}], cc=[f"{local}@example.org"]))


@hsettings(max_examples=150, deadline=None)
@given(in_reply_to=st.one_of(hostile_words, hostile), references=st.lists(hostile, max_size=3))
def test_threading_headers(in_reply_to: str, references: list[str]) -> None:
    check(message(headers={"in-reply-to": in_reply_to, "references": references}))


@hsettings(max_examples=150, deadline=None)
@given(filename=st.one_of(hostile_words, hostile).filter(lambda s: s.strip() != ""))
def test_attachment_filenames(filename: str) -> None:
    data = message(
        attachments=[
            {"filename": filename, "s3Bucket": "mailflow-attachments", "s3Key": "outbound/app1/f"}
        ]
    )
    result = outcome(data)
    if isinstance(result, str):
        assert result in REFUSALS
        return
    check(data, filename=result.attachments[0].filename)


@hsettings(max_examples=100, deadline=None)
@given(content_type=st.one_of(hostile_words, hostile, st.sampled_from(["text/plain", "image/png"])))
def test_attachment_content_types(content_type: str) -> None:
    data = message(
        attachments=[
            {
                "filename": "a.bin",
                "contentType": content_type,
                "s3Bucket": "mailflow-attachments",
                "s3Key": "outbound/app1/a.bin",
            }
        ]
    )
    result = outcome(data)
    if isinstance(result, str):
        assert result in REFUSALS
        return
    check(data, content_type=result.attachments[0].content_type)


def test_the_reported_vectors_are_neutralized() -> None:
    evil = "=?utf-8?b?SW52b2ljZQ0KQmNjOiBldmlsQGV2aWwuZXhhbXBsZQ==?="
    check(message(subject=evil))
    check(message(subject="Re: " + evil))
    check(message(**{"from": {"address": "_app1@example.com", "name": evil}}))
    check(message(), filename=evil)
    assert outcome(message(headers={"in-reply-to": evil})) == "header_injection"
