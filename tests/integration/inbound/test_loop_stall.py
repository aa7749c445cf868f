"""The event loop keeps turning while a 40 MB email with 4.8 MB of HTML is handled.

bench/loop_stall.py prints the figures; this asserts a generous bound on the one that
does not depend on how loaded the machine is: the CPU time of the longest callback the
loop ran (work done on the loop itself, during which no heartbeat, health check or other
message can run). Parsing or sanitizing that email on the loop costs about 1.1-1.3 s
there; in worker threads the longest burst measured 125-157 ms, almost all of it
CPython's cyclic garbage collector walking the parsed email (bench/loop_stall.py).
"""

from __future__ import annotations

import gc

import pytest

from bench.loop_stall import MB, measure, settings_for

pytestmark = pytest.mark.slow

BOUND_SECONDS = 0.5


async def test_the_loop_never_works_long_on_one_large_email(moto_endpoint: str) -> None:
    # The collector walks every tracked object in the process, and this process is the
    # whole test session: after ~270 earlier tests, one collection on the loop took
    # 970 ms in CI where a worker's own heap takes ~150 ms. Freezing what the session
    # holds leaves the collector the worker's objects only, as in a worker process.
    gc.collect()
    gc.freeze()
    try:
        result = await measure(
            settings_for(moto_endpoint),
            html_bytes=int(4.8 * MB),
            attachment_bytes=25 * MB,
            small=20,
        )
    finally:
        gc.unfreeze()
    assert result.email_bytes > 38 * MB
    assert result.longest_burst < BOUND_SECONDS, (
        f"{result.longest_burst * 1000:.0f} ms of CPU in one loop callback: {result.burst_callback}"
    )
