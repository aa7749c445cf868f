"""Helpers for outbound tests: what SES (moto) sent, parsed back with the stdlib."""

from __future__ import annotations

import copy
import email
import email.policy
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from tests.readme_examples import README_CAMEL


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
    """Everything SES sent, from moto's `/moto-api/data.json` (ses.RawMessage).

    moto answers that dump with a 500 now and then while other requests change its
    state (it iterates live dicts): asked again, it answers.
    """
    for attempt in range(5):
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=60) as response:
                data = json.load(response)
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == 4:
                raise
            time.sleep(0.2)
    raw_messages = data.get("ses", {}).get("RawMessage", [])
    return [
        SentMail(m["id"], m.get("source", ""), list(m.get("destinations", [])), m["raw_data"])
        for m in raw_messages
    ]


def text_of(part: EmailMessage) -> str:
    return str(part.get_content()).replace("\r\n", "\n")


async def abandoned_attempt(
    table: Any, correlation_id: str, token: str, *, app: str = "app1", payload_hash: str = ""
) -> None:
    """What a worker killed during SendEmail leaves: the email's claim, lapsed, with its
    attempt's send marker on it (`table.clock` says when the attempt began)."""
    from mailflow.aws import keys
    from mailflow.aws.table import SendClaim

    claim, earlier = await table.claim_send(
        SendClaim(
            claim_key=keys.outbound_email(app, correlation_id),
            payload_hash=payload_hash,
            token=token,
            lease_seconds=0,
            ttl_seconds=3600,
        )
    )
    assert (claim.status, earlier) == ("acquired", None)
