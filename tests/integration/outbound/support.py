"""Helpers for outbound tests: what SES (moto) sent, parsed back with the stdlib."""

from __future__ import annotations

import copy
import email
import email.policy
import json
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

# The two examples of the original README (domains adapted to the test settings).
README_CAMEL: dict[str, Any] = {
    "version": "1.0",
    "correlationId": "unique-id-123",
    "timestamp": "2025-10-31T12:34:56Z",
    "source": "app1",
    "email": {
        "from": {"address": "_app1@example.com", "name": "App1"},
        "to": [{"address": "recipient@example.net"}],
        "subject": "Response Email",
        "body": {"text": "Plain text response", "html": "<p>HTML response</p>"},
    },
}
README_QUICKSTART: dict[str, Any] = {
    "version": "1.0",
    "correlation_id": "test-1700000000",
    "timestamp": "2025-10-31T12:34:56Z",
    "source": "app1",
    "email": {
        "from": {"address": "_app1@example.com", "name": "App1"},
        "to": [{"address": "recipient@example.net"}],
        "subject": "Test Response",
        "body": {"text": "This is a test response from Mailflow"},
    },
}


def message(base: dict[str, Any] | None = None, **email_changes: Any) -> dict[str, Any]:
    """A copy of the camelCase example with `email` fields replaced."""
    data = copy.deepcopy(base or README_CAMEL)
    data["email"].update(email_changes)
    return data


@dataclass(frozen=True)
class SentMail:
    """One message moto's SES accepted."""

    ses_id: str
    source: str
    destinations: list[str]
    raw: str

    @property
    def parsed(self) -> EmailMessage:
        msg = email.message_from_string(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


def sent_mail(endpoint: str) -> list[SentMail]:
    """Everything SES sent, from moto's `/moto-api/data.json` (ses.RawMessage)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=60) as response:
        data = json.load(response)
    raw_messages = data.get("ses", {}).get("RawMessage", [])
    return [
        SentMail(m["id"], m.get("source", ""), list(m.get("destinations", [])), m["raw_data"])
        for m in raw_messages
    ]


def text_of(part: EmailMessage) -> str:
    return str(part.get_content()).replace("\r\n", "\n")
