"""The extended-client pointer is byte-compatible with what the AWS libraries write."""

from __future__ import annotations

import json

from mailflow.inbound.pointer import message_size, needs_offload, pointer


def test_pointer_shape_matches_the_payload_offloading_format() -> None:
    payload = json.dumps({"x": "é" * 10})
    body, attributes = pointer("bucket", "payloads/app1/k.json", payload)
    assert json.loads(body) == [
        "software.amazon.payloadoffloading.PayloadS3Pointer",
        {"s3BucketName": "bucket", "s3Key": "payloads/app1/k.json"},
    ]
    assert attributes == {
        "ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(len(payload.encode()))}
    }


def test_size_counts_utf8_bytes_and_attributes() -> None:
    assert message_size("é", {}) == 2
    assert message_size("a", {"N": {"DataType": "Number", "StringValue": "12"}}) == 1 + 1 + 6 + 2
    assert not needs_offload("a" * 10, {}, 10)
    assert needs_offload("a" * 11, {}, 10)
