"""Attachments read from S3 into one buffer: exact bytes whatever the object's length says,
refused mid-stream once over budget, and held once (not as chunks plus their join)."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailflow.errors import PolicyRejected
from mailflow.outbound.io import CHUNK_BYTES, encoded_size, fetch_attachments
from mailflow.outbound.validation import AttachmentPlan


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), size):
            yield self.data[start : start + size]

    def close(self) -> None:
        self.closed = True


class FakeS3:
    """GetObject answering `data` with a ContentLength of `announced` bytes."""

    def __init__(self, data: bytes, announced: int) -> None:
        self.body = FakeBody(data)
        self.announced = announced

    async def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self.body, "ContentLength": self.announced}


PLAN = (AttachmentPlan("a.bin", "application/octet-stream", "bucket", "key"),)


@pytest.mark.parametrize("difference", [0, -1, +1, -CHUNK_BYTES, +CHUNK_BYTES])
async def test_the_bytes_are_exact_when_the_object_is_not_the_announced_size(
    difference: int,
) -> None:
    """The object can be replaced between HEAD/GET headers and the read."""
    data = os.urandom(2 * CHUNK_BYTES + 123)
    s3 = FakeS3(data, len(data) + difference)
    (loaded,) = await fetch_attachments(s3, PLAN, budget_bytes=10 * len(data))  # type: ignore[arg-type]
    assert loaded.data == data
    assert type(loaded.data) is bytes
    assert s3.body.closed


async def test_an_object_growing_past_the_budget_is_refused_mid_stream() -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    s3 = FakeS3(data, CHUNK_BYTES)  # announced small enough to start reading
    with pytest.raises(PolicyRejected) as caught:
        await fetch_attachments(s3, PLAN, budget_bytes=encoded_size(2 * CHUNK_BYTES))  # type: ignore[arg-type]
    assert caught.value.code == "message_too_large"
    assert s3.body.closed


async def test_the_attachment_is_held_once_while_it_is_read() -> None:
    data = os.urandom(8 * CHUNK_BYTES)
    s3 = FakeS3(data, len(data))
    tracemalloc.start()
    try:
        (loaded,) = await fetch_attachments(s3, PLAN, budget_bytes=2 * len(data))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.data == data
    # The buffer, plus two chunks in flight (the loop's and the next one being read);
    # joining a list of chunks held the file twice.
    assert peak < len(data) + 3 * CHUNK_BYTES
