"""The inbound message the docs show is the one the worker writes for the same mail.

docs/examples/inbound.eml is the mail behind the examples in README.md and
docs/inbound.md. Through the real pipeline and endpoint, the message app1 receives must
have exactly the fields docs/inbound.md shows (no field documented that the worker does
not write, none written that the docs leave out), the README's shorter example only
fields the worker writes, and both the same values wherever a value is not an id, a
time or a URL.
"""

from __future__ import annotations

import json
from typing import Any

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.integration.inbound.support import handle_next
from tests.unit.test_docs_examples import ROOT, fenced_json

# Values that differ per run or per deployment: ids, times, URLs, buckets and keys.
VARYING = {
    "messageId",
    "timestamp",
    "receivedAt",
    "id",
    "s3Key",
    "s3Bucket",
    "presignedUrl",
    "presignedUrlExpiresAt",
    "sesMessageId",
    "checksum",
    "size",
}


def shape(value: Any, path: str = "") -> set[str]:
    """Every key path in a JSON value (lists by their first element)."""
    if isinstance(value, dict):
        paths: set[str] = set()
        for key, item in value.items():
            paths.add(f"{path}.{key}")
            paths |= shape(item, f"{path}.{key}")
        return paths
    if isinstance(value, list) and value:
        return shape(value[0], f"{path}[]")
    return set()


def differences(documented: Any, written: Any, path: str = "") -> list[str]:
    """Paths where a documented value that is not VARYING differs from the written one."""
    if isinstance(documented, dict) and isinstance(written, dict):
        found: list[str] = []
        for key, value in documented.items():
            if key not in VARYING and key in written:
                found += differences(value, written[key], f"{path}.{key}")
        return found
    if isinstance(documented, list) and isinstance(written, list) and documented and written:
        return differences(documented[0], written[0], f"{path}[]")
    return [] if documented == written else [f"{path}: docs {documented!r}, worker {written!r}"]


def documented(path: str) -> dict[str, Any]:
    [example] = [e.document for e in fenced_json(ROOT / path) if e.kind == "inbound-message"]
    return example


async def test_the_documented_inbound_message_is_what_the_worker_writes(
    make_settings: Any, aws: AwsClients
) -> None:
    settings: Settings = make_settings(domains=["yourdomain.com"])
    raw = (ROOT / "docs" / "examples" / "inbound.eml").read_bytes()
    await inject(settings, aws, raw, ["_app1+ticket-42@yourdomain.com"])
    await handle_next(settings, aws)
    url = await aws.queues.url(settings.app_queue("app1"))
    response = await aws.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
    written = json.loads(response["Messages"][0]["Body"])

    full = documented("docs/inbound.md")
    assert sorted(shape(full) - shape(written)) == [], "documented, never written"
    extra = sorted(shape(written) - shape(full))
    assert extra == [], f"written, not documented: {extra}"
    assert differences(full, written) == []

    short = documented("README.md")
    assert sorted(shape(short) - shape(written)) == []
    assert differences(short, written) == []
