"""`metadata.isAutoReply` and `metadata.isBulk`: one small email per signal.

isAutoReply means "do not answer automatically": auto-replies, bounces and bulk mail.
isBulk is the mailing-list and bulk part of it.
"""

from __future__ import annotations

import pytest

from mailflow.inbound.parse import parse_bytes

PERSONAL = (
    "Return-Path: <anna@example.net>\r\n"
    "From: Anna <anna@example.net>\r\nTo: _app1@example.com\r\nSubject: hello\r\n"
    "Message-ID: <p-1@example.net>\r\n"
)


def email(headers: str = "", *, sender: str = "Anna <anna@example.net>", body: str = "") -> bytes:
    lines = PERSONAL.replace("Anna <anna@example.net>", sender) + headers
    return (lines + "\r\n" + (body or "Hi there\r\n")).encode()


@pytest.mark.parametrize(
    "raw",
    [
        email("Auto-Submitted: auto-replied\r\n"),
        email("Auto-Submitted: auto-generated\r\n"),
        email("Auto-Submitted: auto-notified; owner-email=\"x@example.org\"\r\n"),
        email("X-Autoreply: yes\r\n"),
        email("X-Autorespond: Out of office\r\n"),
        email("Precedence: auto_reply\r\n"),
        email("X-Auto-Response-Suppress: All\r\n"),
        email("X-Auto-Response-Suppress: DR, OOF, AutoReply\r\n"),
        email("X-Auto-Response-Suppress: oof\r\n"),
        email().replace(b"Return-Path: <anna@example.net>", b"Return-Path: <>"),
        email(sender="Mail Delivery System <MAILER-DAEMON@mx.example.net>"),
        email(sender="postmaster@example.net"),
        email(
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n',
            body="--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; x@y\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n",
        ),
    ],
    ids=[
        "auto-submitted-replied", "auto-submitted-generated", "auto-submitted-notified",
        "x-autoreply", "x-autorespond", "precedence-auto-reply", "suppress-all",
        "suppress-list", "suppress-oof", "null-return-path", "mailer-daemon", "postmaster",
        "delivery-status-report",
    ],
)  # fmt: skip
def test_automated_mail_is_auto_reply_and_not_bulk(raw: bytes) -> None:
    parsed = parse_bytes(raw)
    assert parsed.is_auto_reply is True
    assert parsed.is_bulk is False


@pytest.mark.parametrize(
    "headers",
    [
        "Precedence: bulk\r\n",
        "Precedence: list\r\n",
        "Precedence: junk\r\n",
        "List-Id: Team news <news.example.net>\r\n",
        "List-Unsubscribe: <mailto:unsubscribe@example.net>\r\n",
    ],
    ids=["precedence-bulk", "precedence-list", "precedence-junk", "list-id", "list-unsubscribe"],
)
def test_bulk_mail_is_bulk_and_auto_reply(headers: str) -> None:
    parsed = parse_bytes(email(headers))
    assert parsed.is_bulk is True
    assert parsed.is_auto_reply is True


@pytest.mark.parametrize(
    "headers",
    [
        "",  # a personal email with a real Return-Path
        "Auto-Submitted: no\r\n",
        "X-Auto-Response-Suppress: DR, RN, NRN\r\n",  # receipts only: replies are welcome
        "Precedence: first-class\r\n",
    ],
    ids=["personal", "auto-submitted-no", "suppress-receipts-only", "precedence-other"],
)
def test_personal_mail_is_neither(headers: str) -> None:
    parsed = parse_bytes(email(headers))
    assert parsed.is_auto_reply is False
    assert parsed.is_bulk is False
