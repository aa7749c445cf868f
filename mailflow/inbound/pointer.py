"""The AWS SQS Extended Client payload pointer (pure).

When the app message is larger than the queue accepts, its JSON goes to S3 and the queue
gets what the extended client libraries (Python `amazon-sqs-extended-client`, Java
`amazon-sqs-java-extended-client-lib` 2.x) write themselves, so they read it back
transparently:

    body:       ["software.amazon.payloadoffloading.PayloadS3Pointer",
                 {"s3BucketName": "<bucket>", "s3Key": "<key>"}]
    attribute:  ExtendedPayloadSize (Number) = the payload's size in UTF-8 bytes

Apps without the library recognise the pointer by that attribute (or the body's first
element) and fetch the object themselves.
"""

from __future__ import annotations

import json
from typing import Any

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
DEFAULT_MAX_MESSAGE_SIZE = 262_144


def message_size(body: str, attributes: dict[str, Any]) -> int:
    """SQS counts the body and every attribute's name, type and value toward the limit."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode("utf-8")) + len(str(value.get("DataType", "")).encode("utf-8"))
        size += len(str(value.get("StringValue", "")).encode("utf-8"))
        size += len(value.get("BinaryValue", b""))
    return size


def needs_offload(body: str, attributes: dict[str, Any], max_size: int) -> bool:
    return message_size(body, attributes) > max_size


def pointer(bucket: str, key: str, payload: str) -> tuple[str, dict[str, Any]]:
    """The SQS body and message attributes that stand for `payload` stored at bucket/key."""
    body = json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}])
    size = len(payload.encode("utf-8"))
    return body, {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(size)}}
