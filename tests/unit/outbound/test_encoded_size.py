"""The size budget's arithmetic matches what the composer really emits."""

from __future__ import annotations

import email
import email.policy
import json
import os
from datetime import UTC, datetime

import pytest

from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
from mailflow.outbound.io import encoded_size
from mailflow.outbound.validation import parse_message, validate
from mailflow.settings import load_settings
from tests.readme_examples import README_QUICKSTART


@pytest.mark.parametrize("size", [1, 2, 3, 56, 57, 58, 1000, 100_000])
def test_encoded_size_equals_the_base64_part_on_the_wire(size: int) -> None:
    settings = load_settings(
        domains=["example.com"], apps={"app1": {}}, aws_endpoint_url="http://x"
    )
    validated = validate(parse_message(json.dumps(README_QUICKSTART), settings), settings)
    raw = compose(
        validated,
        [LoadedAttachment("a.bin", "application/octet-stream", os.urandom(size))],
        message_id=message_id_for(validated),
        date=datetime(2025, 1, 1, tzinfo=UTC),
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    (part,) = list(msg.iter_attachments())  # type: ignore[attr-defined]
    lines = [line for line in part.get_payload().splitlines() if line]
    on_the_wire = sum(len(line) + 2 for line in lines)  # each line ends in CRLF
    assert on_the_wire == encoded_size(size)
