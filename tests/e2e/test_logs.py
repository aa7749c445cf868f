"""What reaches the real worker's log: no address, no subject, no credential, at any level.

The worker runs at DEBUG (the most it can print) with marker credentials, and is fed the
inputs that put addresses into error messages: an email to an unknown app and to another
address, outbound messages with a bad recipient and a sender the app may not use, all
with a marker subject. Every line must be JSON, and none may carry a marker: local parts,
the subject, the session token, the access key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.helpers import queue_count
from tests.integration.outbound.support import message

pytestmark = pytest.mark.slow

SUBJECT = "Subjectmarker quarterly figures"
LOCAL_PARTS = ["alicemarker", "bobmarker", "_nosuchmarker", "carolmarker", "davemarker"]
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIDKEYMARKER",
    "AWS_SECRET_ACCESS_KEY": "secretkeymarker",
    "AWS_SESSION_TOKEN": "sessiontokenmarker",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        inbound={"unknown_app": "reject"},
        outbound={"default_send_rate": 500.0},
        log_level="DEBUG",
    )


async def test_no_address_subject_or_credential_reaches_the_log(
    provisioned: Settings, aws: AwsClients, worker_process: Any
) -> None:
    raw = (
        f"From: Alice <alicemarker@sender.test>\r\nTo: bobmarker@example.com\r\n"
        f"Subject: {SUBJECT}\r\nMessage-ID: <m1@sender.test>\r\n\r\nhello\r\n"
    ).encode()
    bad_recipient = message(subject=SUBJECT, to=[{"address": "carolmarker@@example.net"}])
    bad_sender = message(
        subject=SUBJECT, **{"from": {"address": "davemarker@example.com", "name": "Dave"}}
    )
    dlq = await aws.queues.url(provisioned.dlq)
    with worker_process(provisioned, extra_env=SECRETS) as worker:
        worker.wait_ready()
        await inject(
            provisioned,
            aws,
            raw,
            ["_nosuchmarker@example.com", "bobmarker@example.com", "_app1@example.com"],
        )
        outbound = await aws.queues.url(provisioned.outbound_queue)
        for body in (bad_recipient, bad_sender):
            await aws.sqs.send_message(QueueUrl=outbound, MessageBody=json.dumps(body))
        deadline = time.monotonic() + 30
        while await queue_count(aws.sqs, dlq) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert await queue_count(aws.sqs, dlq) == 3  # the three failures did happen
        assert worker.stop() == 0
    text = worker.logs()
    lines = [line for line in text.splitlines() if line.strip()]
    events = worker.log_events()
    assert len(events) == len(lines), "every line is one JSON object"
    assert any(e.get("level") == "debug" for e in events)  # DEBUG really was on
    lowered = text.lower()
    for marker in [*LOCAL_PARTS, SUBJECT.lower(), *(v.lower() for v in SECRETS.values())]:
        assert marker.lower() not in lowered, marker
    codes = {e.get("error_code") for e in events if e.get("event") == "message.rejected"}
    assert codes == {"unknown_app", "invalid_address", "sender_not_allowed"}
