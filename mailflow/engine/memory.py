"""glibc malloc settings for a process whose messages are many megabytes each.

Why: an outbound email with a 10 MiB attachment allocates a handful of 10-20 MiB
buffers (the attachment, the composed MIME, botocore's base64 and JSON copies of it for
the SES request). glibc serves an allocation above `M_MMAP_THRESHOLD` (128 KiB at start)
with its own mmap and unmaps it on free, but each such free *raises* the threshold to the
freed size, up to 32 MiB on 64-bit (the "dynamic mmap threshold", man mallopt). After the
first large email the next ones' buffers come from the heap instead, in the arena of the
thread that asked (the compose thread has its own), and freed heap memory that is not at
the top of its arena stays with the process: RSS kept 13-60 MiB more after a 10 MiB email
(bench/outbound_memory.py).

`configure_allocator()` sets the thresholds explicitly, which turns the dynamic adjustment
off: every buffer of `MMAP_THRESHOLD_BYTES` or more is its own mapping, returned to the
kernel on free; up to `TRIM_THRESHOLD_BYTES` of free memory at the top of a heap is kept
for the next email (returning that too cost every 1 MiB email ~4,000 page faults to map
it again); arenas are capped so that bound holds for two heaps, not one per thread.
Called once at worker start; elsewhere than glibc it does nothing and says so. (With
these settings a `malloc_trim(0)` after a 10 MiB email gave back only ~2 MiB more: not
worth a call per email.)
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

import structlog

log = structlog.get_logger("mailflow.memory")

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MIB = 1024 * 1024
# Buffers of a small email (and S3's chunks of up to 1 MiB) reuse heap memory; those of
# a large attachment are mappings of their own, gone when freed.
MMAP_THRESHOLD_BYTES = 4 * MIB
# What a heap keeps free at its top: the ~10 MiB of buffers a 1 MiB attachment passes
# through (attachment, MIME, botocore's base64, JSON and body) fit, so the next one of
# that size finds its memory mapped already.
TRIM_THRESHOLD_BYTES = 16 * MIB
# The event loop's thread and the compose/parse threads: two heaps, not one per thread.
ARENA_MAX = 2


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt's parameters are glibc's), else None."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    if not version.startswith("glibc"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def configure_allocator(
    *,
    mmap_threshold: int = MMAP_THRESHOLD_BYTES,
    trim_threshold: int = TRIM_THRESHOLD_BYTES,
    arena_max: int = ARENA_MAX,
) -> bool:
    """Fix glibc's mmap and trim thresholds, cap its arenas; True when all took effect.

    Call once at process start, before threads are started (an arena cap does not undo
    arenas that exist). A no-op, logged, where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        log.info("memory.allocator_unchanged", reason="the C library is not glibc")
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = {
        "mmap_threshold": mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1,
        "trim_threshold": mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1,
        "arena_max": mallopt(_M_ARENA_MAX, arena_max) == 1,
    }
    if all(applied.values()):
        log.info(
            "memory.allocator_configured",
            mmap_threshold=mmap_threshold,
            trim_threshold=trim_threshold,
            arena_max=arena_max,
        )
    else:
        log.warning("memory.allocator_partly_configured", **applied)
    return all(applied.values())


def release_free_memory() -> None:
    """Give the C heap's free memory back to the system after a large message, where
    the C library can (glibc's `malloc_trim`; elsewhere nothing is done).

    With `configure_allocator` in effect a large message's buffers are mappings of
    their own and go back when freed; this catches what still sits in the heaps (a
    process that did not configure the allocator kept ~25 MB after a 40 MB email).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
