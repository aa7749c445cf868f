"""Which SQS writers may speak for an app (SenderId forms as AWS documents them)."""

from __future__ import annotations

import pytest

from mailflow.outbound.identity import writer_allowed

PRODUCERS = ["AROAAPP1ROLE", "AIDAAPP1USER", "123456789012"]


@pytest.mark.parametrize(
    ("sender_id", "allowed"),
    [
        ("AROAAPP1ROLE:i-0abc123", True),  # any session of the app's role
        ("AROAAPP1ROLE:botocore-session-1700000000", True),
        ("AROAAPP1ROLE", True),
        ("AIDAAPP1USER", True),  # an IAM user
        ("123456789012", True),  # the account root
        ("AROAAPP2ROLE:i-0abc123", False),  # another app's role
        ("AROAAPP1ROLEX:s", False),  # a prefix is not a principal
        ("AIDAAPP1USER:x", True),
        ("", False),
        (None, False),
    ],
)
def test_writer_allowed(sender_id: str | None, allowed: bool) -> None:
    assert writer_allowed(sender_id, PRODUCERS) is allowed


def test_no_producers_admit_nobody() -> None:
    assert writer_allowed("AROAAPP1ROLE:s", []) is False
