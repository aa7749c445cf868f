"""The byte budget holds under a memory limit: parallel 40 MB mails never OOM the worker.

The worker image runs as Fargate would (tests/deploy/test_image.py) with a hard memory
limit and no swap, as a Fargate task's memory is. Several mails close to the 40 MiB
inbound limit arrive at once; MAILFLOW_MAX_IN_FLIGHT_BYTES lets only as many be held as
fit, the rest wait their turn. The container must survive (no OOM kill), every mail must
be delivered, and the peak anonymous memory must stay below the limit.

There is no "without a budget it is OOM-killed" control here, on purpose: with a budget
of 1 GiB under the same limit the kernel killed the worker in 1 of 4 runs. The emulator
serves the six 37 MiB objects one after another, so unbudgeted mails overlap only as far
as the downloads happen to, and a control that depends on that timing is a flaky test.
That the budget admits no more than it holds is tested deterministically in
tests/integration/inbound/test_budget.py; here `waits > 0` proves it was in play.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.ops.inject import inject
from mailflow.ops.provision import provision
from mailflow.settings import Settings
from tests.deploy.test_image import WorkerContainer, large_mail
from tests.helpers import queue_count, receive_all

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

MIB = 1024 * 1024
LIMIT = 600 * MIB
MAILS = 6
# A 27 MiB attachment: about 37 MiB of raw MIME (base64), under the 40 MiB inbound limit.
ATTACHMENT = 27 * MIB
# Three such mails at once: ~3 x 37 MiB held, peak RSS ~3x that plus the interpreter.
BUDGET = 128 * MIB


def _cgroup_dirs(container_id: str) -> list[Path]:
    return [
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),  # v2, systemd
        Path(f"/sys/fs/cgroup/docker/{container_id}"),  # v2, cgroupfs
        Path(f"/sys/fs/cgroup/memory/docker/{container_id}"),  # v1, cgroupfs
        Path(f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope"),  # v1, systemd
    ]


def cgroup_peak(container_id: str) -> int | None:
    """The cgroup's peak usage (v2 memory.peak, v1 max_usage), page cache included."""
    for directory in _cgroup_dirs(container_id):
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            try:
                return int((directory / name).read_text().strip())
            except (OSError, ValueError):
                continue
    return None


class MemorySampler:
    """Samples the container's anonymous memory (what an OOM kill is about) every 0.2 s.

    The cgroup's own peak counts page cache too (the spool files on /tmp, reclaimable),
    so it reaches the limit without any danger; anonymous memory cannot be reclaimed
    without swap. Read from the cgroup's memory.stat (v2 `anon`, v1 `total_rss`), or
    from `docker stats` (usage minus cache, once a second) where that file is not
    readable.
    """

    def __init__(self, name: str, container_id: str) -> None:
        self.name = name
        self.stat = next(
            (d / "memory.stat" for d in _cgroup_dirs(container_id) if (d / "memory.stat").exists()),
            None,
        )
        self.source = "cgroup memory.stat" if self.stat else "docker stats"
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        if self.stat is not None:
            fields = dict(line.split() for line in self.stat.read_text().splitlines())
            return int(fields.get("anon", fields.get("total_rss", "0")))
        result = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{json .}}", self.name],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0 or not result.stdout.strip():
            return 0
        return _bytes(json.loads(result.stdout)["MemUsage"].split("/")[0].strip())

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.peak = max(self.peak, self._sample())
            self._stop.wait(0.2 if self.stat is not None else 1.0)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=40)
        return self.peak


def _bytes(text: str) -> int:
    units = {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB, "kB": 1000, "MB": 10**6}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(float(text))


def budget_waits(port: int) -> float:
    """mailflow_budget_waits_total from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("mailflow_budget_waits_total "):
                return float(line.split()[1])
    return 0.0


async def _feed(settings: Settings, aws: AwsClients, tags: list[str]) -> None:
    """Queue every mail before the worker starts, so its first receive holds all of them.

    Fed while the worker runs, the mails trickle in as their uploads finish, the worker
    may take them one by one, and neither the budget nor its absence is exercised.
    """
    async with anyio.create_task_group() as group:
        for tag in tags:
            raw = large_mail(tag, ATTACHMENT)
            assert 36 * MIB < len(raw) < settings.inbound.max_email_bytes
            group.start_soon(inject, settings, aws, raw, ["_app1@example.com"])


def _run_container(image: str, settings: Settings) -> WorkerContainer:
    """The worker under a hard memory limit without swap (MAILFLOW_* from `settings`)."""
    limit = ["--memory", str(LIMIT), "--memory-swap", str(LIMIT)]
    return WorkerContainer(image, settings, extra=limit)


async def test_parallel_40_mb_mails_stay_inside_the_memory_limit(
    built_images: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(visibility_timeout_seconds=120, max_in_flight_bytes=BUDGET)
    tags = [f"mem-{uuid.uuid4().hex[:8]}" for _ in range(MAILS)]
    async with open_clients(settings) as aws:
        await provision(settings, aws)
        await _feed(settings, aws, tags)
        worker = _run_container(built_images, settings)
        try:
            worker.wait_ready()
            container_id = worker.container_id()
            sampler = MemorySampler(worker.name, container_id)
            started = time.monotonic()
            url = await aws.queues.url(settings.app_queue("app1"))
            bodies = await receive_all(aws.sqs, url, expect=MAILS, timeout=420)
            took = time.monotonic() - started
            anon = sampler.stop()
            with_cache = cgroup_peak(container_id)
            state = worker.state()
            logs = worker.logs()
            assert not state["OOMKilled"], f"OOM-killed; anon peak {anon / MIB:.0f} MiB"
            assert state["Status"] == "running", logs[-3000:]
            got = sorted(json.loads(b)["email"]["subject"] for b in bodies)
            assert got == sorted(tags), f"delivered {len(got)} of {MAILS} in {took:.0f} s"
            assert await queue_count(aws.sqs, await aws.queues.url(settings.dlq)) == 0
            assert 0 < anon < LIMIT, f"anon peak {anon / MIB:.0f} MiB of {LIMIT / MIB:.0f}"
            waits = budget_waits(worker.port)
            assert waits > 0, "no mail waited for the budget: the test proves nothing"
            print(
                f"\n{MAILS} mails of {len(large_mail('x', ATTACHMENT)) / MIB:.1f} MiB in"
                f" {took:.0f} s; peak anonymous memory {anon / MIB:.0f} MiB ({sampler.source}),"
                f" peak with page cache {(with_cache or 0) / MIB:.0f} MiB, under a"
                f" {LIMIT / MIB:.0f} MiB limit; budget"
                f" {BUDGET / MIB:.0f} MiB; {waits:.0f} waits for room in it"
            )
            final = worker.stop()
            assert (final["ExitCode"], final["OOMKilled"]) == (0, False)
        finally:
            worker.remove()
