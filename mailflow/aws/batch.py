"""Coalescing concurrent single calls into AWS batch calls, with each caller's own answer.

A worker handles up to `MAILFLOW_CONCURRENCY` messages at once, and they reach the same
steps at nearly the same moment (they were received together): ten deletes, ten status
events, ten suppression lookups. One `DeleteMessageBatch` instead of ten `DeleteMessage`
calls is a tenth of the requests, the CPU (signing, serialising) and the latency queueing.

Each caller still awaits its own item and gets its own result or exception, so the
pipelines keep their one-message-at-a-time shape (and one poison entry fails alone: the
flush function answers per entry). No background task: the first caller of a batch leads
it: it waits up to `linger` seconds for company (less when the batch fills), then makes
the call, shielded from cancellation so that the followers always get an answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")
R = TypeVar("R")

# Long enough for the other handlers of one received batch to catch up (they run the same
# steps a few milliseconds apart), short beside an AWS round trip (10-30 ms).
DEFAULT_LINGER_SECONDS = 0.005

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


@dataclass
class _Batch(Generic[T, R]):
    items: list[T] = field(default_factory=list)
    size: int = 0
    full: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    results: Sequence[R | BaseException] = ()


class Batcher(Generic[T, R]):
    """Turn concurrent `submit(item)` calls into `flush(items)` calls of up to `max_items`
    items (and `max_size` by `size_of`); `flush` answers each item in order."""

    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_items: int,
        max_size: int = 0,
        size_of: Callable[[T], int] = lambda _item: 0,
        linger: float = DEFAULT_LINGER_SECONDS,
    ) -> None:
        self._flush = flush
        self.max_items = max_items
        self.max_size = max_size
        self._size_of = size_of
        self.linger = linger
        self._open: _Batch[T, R] | None = None
        self.calls = 0  # flushes made (for tests and benchmarks)

    async def submit(self, item: T) -> R:
        size = self._size_of(item)
        batch, index, leader = self._join(item, size)
        if leader:
            await self._lead(batch)
        else:
            await batch.done.wait()
        result = batch.results[index]
        if isinstance(result, BaseException):
            raise result
        return result

    def _join(self, item: T, size: int) -> tuple[_Batch[T, R], int, bool]:
        """Add `item` to the open batch, or open a new one (the caller then leads it)."""
        batch = self._open
        fits = batch is not None and (
            not self.max_size or not batch.items or batch.size + size <= self.max_size
        )
        leader = False
        if batch is None or not fits:
            if batch is not None:
                batch.full.set()  # the old one goes now, without this item
            batch = self._open = _Batch()
            leader = True
        batch.items.append(item)
        batch.size += size
        if len(batch.items) >= self.max_items:
            batch.full.set()
            self._open = None
        return batch, len(batch.items) - 1, leader

    async def _lead(self, batch: _Batch[T, R]) -> None:
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.linger):
                await batch.full.wait()
            if self._open is batch:
                self._open = None
            self.calls += 1
            try:
                results = await self._flush(list(batch.items))
                if len(results) != len(batch.items):
                    raise RuntimeError(
                        f"batch answered {len(results)} of {len(batch.items)} entries"
                    )
            except Exception as exc:
                results = [exc] * len(batch.items)
            batch.results = results
            batch.done.set()
