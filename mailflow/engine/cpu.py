"""CPU-heavy work goes to a worker thread once it is big enough to stall the event loop.

Every message's heartbeat, every other message's I/O and the health endpoint share one
event loop; a 40 MB parse or a 5 MB HTML sanitize on it stalls them all for a second.
Below `OFFLOAD_BYTES` the thread hop (tens of microseconds) costs more than it saves.
The heavy calls release the GIL (nh3, base64, hashlib) or are pure Python that the
interpreter preempts every few milliseconds, so the loop keeps turning meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio

T = TypeVar("T")

OFFLOAD_BYTES = 256 * 1024


async def run_cpu(func: Callable[[], T], *, size: int) -> T:
    """`func()` on the loop when `size` is small, in a worker thread otherwise."""
    if size < OFFLOAD_BYTES:
        return func()
    return await anyio.to_thread.run_sync(func)
