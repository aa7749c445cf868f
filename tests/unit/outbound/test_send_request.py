"""The SES request's envelope: skipped recipients (suppressed, over the loop limit) leave
the envelope only, whatever list and letter case the app wrote them in."""

from __future__ import annotations

import json
from collections.abc import Callable

from mailflow.outbound.io import send_email_request
from mailflow.outbound.validation import parse_message, validate
from mailflow.settings import Settings


def test_skipped_addresses_leave_to_cc_and_bcc_of_the_envelope(
    make_body: Callable[..., str], unit_settings: Settings
) -> None:
    body = json.loads(make_body())
    body["email"]["to"] = [{"address": "keep@example.net"}, {"address": "Gone@Example.net"}]
    body["email"]["cc"] = [{"address": "gone2@example.net"}]
    body["email"]["bcc"] = [{"address": "hidden@example.net"}, {"address": "GONE3@example.net"}]
    email = validate(parse_message(json.dumps(body), unit_settings), unit_settings)
    skip = {"gone@example.net", "gone2@example.net", "gone3@example.net"}
    request = send_email_request(email, b"raw", "mailflow", "0" * 32, skip=skip)
    assert request["Destination"] == {
        "ToAddresses": ["keep@example.net"],
        "CcAddresses": [],
        "BccAddresses": ["hidden@example.net"],
    }
    assert request["Content"]["Raw"]["Data"] == b"raw"  # the headers are not touched
    everyone = send_email_request(email, b"raw", "mailflow", "0" * 32)
    assert len(everyone["Destination"]["ToAddresses"]) == 2
