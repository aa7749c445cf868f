"""The real worker process, end to end: CPU and AWS calls per email, latency, scaling, memory.

Each measurement starts from a reset endpoint provisioned by the tree under test
(`mailflow provision`), starts `python -m mailflow run` of that tree as a subprocess,
and watches it only from outside: psutil for its CPU, /proc for its memory, the
endpoint's counter for its AWS calls, the app's queue for its outputs.

Drain (`drain`): N inputs are prepared first (raw mail stored in S3, attachments
stored, bodies built), the worker is started and left idle for a few seconds to learn
its idle CPU rate, endpoint CPU rate and idle calls (long polls), then all N bodies go
onto the input queue at once (SendMessageBatch). From that moment until the app queue
shows N outputs is the drain: worker CPU per email = (CPU used - idle rate x duration)
/ N. The AWS calls are counted until the input queue is empty (the last deletes come
after the last output) and are not corrected for idling: with the periodic jobs slowed
to once an hour (`procs.worker_env`), the only idle calls are long polls, which return
empty once per 20 s per consumer, and a short idle sample would subtract noise. The idle
call rate is still measured and kept in the JSON.
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench import corpus
from bench.floor import FLOOR_KEY, FloorResult, run_floor
from bench.harness import APP_QUEUE, Harness, Load, Reconciled, harness
from bench.procs import WORKER_KEY, Endpoint, Tree, Worker, provision, workers

KIB = 1024
# A drain that shows no new output for this long has failed (a worker in a retry loop):
# the slowest single email here (40 MB) takes about 5 s, so this is generous.
STALL_SECONDS = 60.0
# The worker deletes an input right after its output: one still there this long after
# the last output was not deleted (it comes back after the visibility timeout).
DELETE_WAIT_SECONDS = 10.0
Calls = dict[str, float]


@dataclass
class Context:
    """What every measurement needs: the endpoint, the options, where logs go."""

    endpoint: Endpoint
    quick: bool
    log_dir: Path
    poll: float = 0.05
    idle_seconds: float = 3.0
    settle_seconds: float = 3.0
    log: Callable[[str], None] = print

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Idle:
    cpu_rate: float  # worker CPU-seconds per second, idle
    endpoint_rate: float
    calls_rate: Calls


@dataclass
class Drain:
    emails: int
    seconds: float
    cpu: float  # worker CPU-seconds less the idle rate
    endpoint_cpu: float
    calls: Calls  # per email, from the first input until the input queue was empty
    complete: bool
    complaints: list[str] = field(default_factory=list)  # the worker's errors, if incomplete
    inputs_left: int = 0  # inputs still on their queue DELETE_WAIT_SECONDS after the last output
    server_errors: dict[str, int] = field(default_factory=dict)  # 5xx answers, in all
    peak_kib: int = 0
    rss_before_kib: int = 0


@dataclass
class CaseResult:
    """Everything measured for one corpus case with one tree."""

    drain: Drain | None = None
    reconciled: Reconciled | None = None
    floor: FloorResult | None = None
    floor_calls: Calls = field(default_factory=dict)
    error: str | None = None


def _worker_calls(ep: Endpoint, column: int = 0) -> dict[str, int]:
    """The worker's calls so far by operation (column 2: those answered 5xx)."""
    return {op: v[column] for op, v in ep.calls().get(WORKER_KEY, {}).items()}


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}


async def measure_idle(ctx: Context, h: Harness, ws: list[Worker]) -> Idle:
    """The workers' idle CPU, the endpoint's, and the idle calls (long polls): rates per second.

    The harness polls the app queue meanwhile exactly as it does while draining, so the
    endpoint's idle rate includes that cost and subtracting it removes it.
    """
    calls0, cpu0, ep0 = _worker_calls(ctx.endpoint), sum(w.cpu() for w in ws), ctx.endpoint.cpu()
    started = time.perf_counter()
    while time.perf_counter() - started < ctx.idle_seconds:
        await h.depth(APP_QUEUE)
        await anyio.sleep(ctx.poll)
    seconds = time.perf_counter() - started
    calls = _minus(_worker_calls(ctx.endpoint), calls0)
    return Idle(
        cpu_rate=(sum(w.cpu() for w in ws) - cpu0) / seconds,
        endpoint_rate=(ctx.endpoint.cpu() - ep0) / seconds,
        calls_rate={op: n / seconds for op, n in calls.items()},
    )


async def drain(ctx: Context, h: Harness, ws: list[Worker], load: Load, idle: Idle) -> Drain:
    """Put every input on its queue at once and time the workers until the last output."""
    n = len(load.bodies)
    for w in ws:
        w.reset_peak()
    rss_before = sum(w.status_kib("VmRSS") for w in ws)
    errors0 = _worker_calls(ctx.endpoint, 2)
    calls0, cpu0, ep0 = _worker_calls(ctx.endpoint), sum(w.cpu() for w in ws), ctx.endpoint.cpu()
    started = time.perf_counter()
    await h.send_bodies(load.queue, load.bodies)
    complete = await h.wait_outputs(n, ctx.poll, STALL_SECONDS)
    seconds = time.perf_counter() - started
    cpu, ep_cpu = sum(w.cpu() for w in ws) - cpu0, ctx.endpoint.cpu() - ep0
    peak = sum(w.status_kib("VmHWM") for w in ws)
    complaints = [] if complete else [c for w in ws for c in w.complaints()]
    left = 0
    if complete and not await h.wait_empty(load.queue, ctx.poll, DELETE_WAIT_SECONDS):
        left = sum(await h.depth(load.queue))
    counted = _minus(_worker_calls(ctx.endpoint), calls0)
    errors = _minus(_worker_calls(ctx.endpoint, 2), errors0)
    per_email = {op: total / n for op, total in sorted(counted.items())}
    return Drain(
        emails=n,
        seconds=seconds,
        cpu=max(0.0, cpu - idle.cpu_rate * seconds),
        endpoint_cpu=max(0.0, ep_cpu - idle.endpoint_rate * seconds),
        calls=per_email,
        complete=complete,
        complaints=complaints,
        inputs_left=left,
        server_errors=errors,
        peak_kib=peak,
        rss_before_kib=rss_before,
    )


async def fresh(ctx: Context, h: Harness, tree: Tree) -> None:
    """An empty endpoint with the tree's resources.

    Also the only safe start after workers stopped: a stopped worker's last ReceiveMessage
    long poll (up to 20 s) stays open at moto and takes whatever arrives meanwhile,
    invisible for the visibility timeout; a reset gives every queue a new identity.
    """
    ctx.endpoint.reset()
    h.forget_urls()
    await anyio.to_thread.run_sync(provision, tree, ctx.endpoint.url)


async def prepare(h: Harness, case: Any, n: int) -> Load:
    if isinstance(case, corpus.InboundCase):
        return await h.prepare_inbound(case.raw(), n)
    return await h.prepare_outbound(case, n, uuid.uuid4().hex[:8])


# -- section: end to end per case ----------------------------------------------------------


async def run_cases(ctx: Context, tree: Tree, cases: list[Any]) -> dict[str, CaseResult]:
    """Every case through one worker of `tree`, smallest first (as a long-lived task meets
    them); a case that fails is reported as such and the next one still runs."""
    results: dict[str, CaseResult] = {}
    async with harness(ctx.endpoint.url) as h:
        await fresh(ctx, h, tree)
        with workers(tree, ctx.endpoint.url, 1, ctx.log_dir, "cases") as ws:
            await anyio.sleep(ctx.settle_seconds)  # start-up calls (queue URLs, GetAccount)
            for case in cases:
                ctx.log(f"  {tree.label}: {case.name}")
                try:
                    results[case.name] = await run_case(ctx, tree, h, ws, case)
                except Exception as exc:
                    results[case.name] = CaseResult(error=f"{type(exc).__name__}: {exc}"[:500])
                    ctx.log(f"  {tree.label}: {case.name} failed: {results[case.name].error}")
                    if ws[0].proc.poll() is not None:
                        ctx.log(ws[0].tail())
                        break
    return results


async def run_case(ctx: Context, tree: Tree, h: Harness, ws: list[Worker], case: Any) -> CaseResult:
    """One case: drain N through the worker, reconcile, then the floor with its call mix."""
    n = ctx.n(case.n_full, case.n_quick)
    result = CaseResult()
    started = time.perf_counter()
    load = await prepare(h, case, n)
    prepared = time.perf_counter()
    idle = await measure_idle(ctx, h, ws)
    result.drain = await drain(ctx, h, ws, load, idle)
    drained = time.perf_counter()
    result.reconciled = await h.reconcile(load)
    ctx.log(
        f"    N={n}: prepared {prepared - started:.1f} s, idle + drain {drained - prepared:.1f} s"
        f" (drain {result.drain.seconds:.1f} s), reconciled {time.perf_counter() - drained:.1f} s"
    )
    concurrency = int(tree.default("root", "concurrency", 10))
    floor_n = max(n, ctx.n(100, 10))  # the floor is cheap: more emails, steadier figure
    snapshot: dict[str, list[int]] = {}

    def ready() -> None:
        snapshot.update(ctx.endpoint.calls().get(FLOOR_KEY, {}))

    result.floor = await run_floor(
        ctx.endpoint.url, result.drain.calls, floor_n, concurrency, on_ready=ready
    )
    ctx.log(f"    floor: {floor_n} emails in {result.floor.seconds:.1f} s")
    after = ctx.endpoint.calls().get(FLOOR_KEY, {})
    result.floor_calls = {
        op: (counts[0] - snapshot.get(op, [0])[0]) / floor_n
        for op, counts in after.items()
        if counts[0] > snapshot.get(op, [0])[0]
    }
    return result


# -- section: latency at a fixed offered rate -----------------------------------------------


@dataclass
class LatencyResult:
    offered_rate: float
    achieved_rate: float
    sent: int
    latencies: list[float]
    reconciled: Reconciled

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def offered_load(
    ctx: Context, h: Harness, load: Load, rate: float, key_of: Callable[[dict[str, Any]], str]
) -> LatencyResult:
    """Send `load` one message at a time at `rate`/s while receiving outputs as they come.

    Latency is from just before the input's SendMessage to the moment the harness's
    receive returned the output (its long poll wakes as the message lands).
    """
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    extra = {"dup": 0, "unexpected": 0, "failed": 0}
    url = await h.url(APP_QUEUE)
    done = anyio.Event()

    async def receiver() -> None:
        while not done.is_set():
            response = await h.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=600
            )
            now = time.perf_counter()
            messages = response.get("Messages", [])
            for message in messages:
                output = await h.decode(message["Body"])
                key = key_of(output)
                if output.get("type") == "email.failed":
                    extra["failed"] += 1
                if key in arrived:
                    extra["dup"] += 1
                elif key in sent_at:
                    arrived[key] = now
                else:
                    extra["unexpected"] += 1
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ]
                await h.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            if len(arrived) == len(load.keys):
                done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receiver)
        started = time.perf_counter()
        for i, (body, key) in enumerate(zip(load.bodies, load.keys, strict=True)):
            await anyio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            sent_at[key] = time.perf_counter()
            await h.send_one(load.queue, body)
        last_send = time.perf_counter()
        with anyio.move_on_after(60):
            await done.wait()
        done.set()
    span = last_send - started
    reconciled = Reconciled(
        expected=len(load.keys),
        delivered=len(arrived),
        lost=len(load.keys) - len(arrived),
        duplicated=extra["dup"],
        failed=extra["failed"],
        unexpected=extra["unexpected"],
        dlq=sum(await h.depth("mailflow-dlq")),
    )
    return LatencyResult(
        offered_rate=rate,
        achieved_rate=(len(load.keys) - 1) / span if span > 0 else 0.0,
        sent=len(load.keys),
        latencies=[arrived[k] - sent_at[k] for k in arrived],
        reconciled=reconciled,
    )


def _inbound_key(output: dict[str, Any]) -> str:
    return str(output.get("metadata", {}).get("sesMessageId", ""))


def _outbound_key(output: dict[str, Any]) -> str:
    return str(output.get("correlationId", ""))


# Offered rate: well below what one worker sustains here against moto (10-15 emails/s
# either way on the shared 2-core machine), so the figure is an email's latency, not a
# growing backlog's; the same for both directions and both trees.
LATENCY_RATES = {"inbound": 5.0, "outbound": 5.0}


async def run_latency(ctx: Context, tree: Tree) -> dict[str, LatencyResult]:
    """Inbound plain replies, then outbound text messages, at a fixed rate through one worker."""
    seconds = 2.0 if ctx.quick else 20.0
    inbound = next(c for c in corpus.INBOUND if c.name == "in-plain")
    outbound = next(c for c in corpus.outbound_cases() if c.name == "out-text")
    results: dict[str, LatencyResult] = {}
    async with harness(ctx.endpoint.url) as h:
        await fresh(ctx, h, tree)
        n = {d: int(rate * seconds) for d, rate in LATENCY_RATES.items()}
        loads = {
            "inbound": await h.prepare_inbound(inbound.raw(), n["inbound"]),
            "outbound": await h.prepare_outbound(outbound, n["outbound"], uuid.uuid4().hex[:8]),
        }
        with workers(tree, ctx.endpoint.url, 1, ctx.log_dir, "latency"):
            await anyio.sleep(ctx.settle_seconds)  # start-up calls (queue URLs, GetAccount)
            for direction, load in loads.items():
                key_of = _inbound_key if direction == "inbound" else _outbound_key
                rate = LATENCY_RATES[direction]
                results[direction] = await offered_load(ctx, h, load, rate, key_of)
    return results


# -- section: throughput with 1, 2, 4 workers ------------------------------------------------


@dataclass
class ScaleResult:
    workers: int
    emails: int
    seconds: float
    cpu: float
    reconciled: Reconciled


async def run_scaling(ctx: Context, tree: Tree, counts: list[int]) -> dict[str, list[ScaleResult]]:
    """The same N inputs through 1, 2, 4 workers competing on the same queues."""
    n = ctx.n(200, 20)
    cases = {
        "inbound": next(c for c in corpus.INBOUND if c.name == "in-plain"),
        "outbound": next(c for c in corpus.outbound_cases() if c.name == "out-text"),
    }
    results: dict[str, list[ScaleResult]] = {"inbound": [], "outbound": []}
    async with harness(ctx.endpoint.url) as h:
        for count in counts:
            # Fresh queues for each count: a stopped worker's last long poll (20 s) is
            # still open at moto and would swallow the next run's first batch.
            await fresh(ctx, h, tree)
            loads = {d: await prepare(h, c, n) for d, c in cases.items()}
            with workers(tree, ctx.endpoint.url, count, ctx.log_dir, f"scale{count}") as ws:
                await anyio.sleep(ctx.settle_seconds)
                idle = await measure_idle(ctx, h, ws)
                for direction, load in loads.items():
                    drained = await drain(ctx, h, ws, load, idle)
                    reconciled = await h.reconcile(load)
                    results[direction].append(
                        ScaleResult(count, n, drained.seconds, drained.cpu, reconciled)
                    )
    return results


# -- section: memory -------------------------------------------------------------------------


@dataclass
class MemoryResult:
    label: str
    emails: int
    rss_before_mib: float
    peak_growth_mib: float
    retained_growth_mib: float
    reconciled: Reconciled


async def run_memory(ctx: Context, tree: Tree) -> list[MemoryResult]:
    """Peak and retained RSS growth of one worker, one email per size class, then 5 x 40 MB.

    Classes go from small to large in one worker (as a long-running task meets them).
    Peak: VmHWM (reset through /proc/PID/clear_refs just before) less VmRSS before.
    Retained: VmRSS `retain_seconds` after the output appeared, less VmRSS before.
    """
    retain_seconds = 1.0 if ctx.quick else 3.0
    quick_skip = {"in-html", "in-2x1mb", "in-10mb", "out-1mib"} if ctx.quick else set()
    plan: list[tuple[str, Any, int]] = [(c.title, c, 1) for c in corpus.INBOUND]
    plan += [(c.title, c, 1) for c in corpus.outbound_cases() if c.attachments]
    plan = [p for p in plan if p[1].name not in quick_skip]
    forty = next(c for c in corpus.INBOUND if c.name == "in-40mb")
    at_once = 2 if ctx.quick else 5
    plan.append((f"inbound {at_once} x 40 MB at once", forty, at_once))
    results: list[MemoryResult] = []
    async with harness(ctx.endpoint.url) as h:
        await fresh(ctx, h, tree)
        with workers(tree, ctx.endpoint.url, 1, ctx.log_dir, "memory") as ws:
            worker = ws[0]
            await anyio.sleep(ctx.settle_seconds)
            idle = await measure_idle(ctx, h, ws)
            for label, case, n in plan:
                load = await prepare(h, case, n)
                drained = await drain(ctx, h, ws, load, idle)
                await anyio.sleep(retain_seconds)
                retained = worker.status_kib("VmRSS") - drained.rss_before_kib
                reconciled = await h.reconcile(load)
                shown = label if n == 1 or "at once" in label else f"{label} x {n}"
                results.append(
                    MemoryResult(
                        label=shown,
                        emails=n,
                        rss_before_mib=drained.rss_before_kib / KIB,
                        peak_growth_mib=(drained.peak_kib - drained.rss_before_kib) / KIB,
                        retained_growth_mib=retained / KIB,
                        reconciled=reconciled,
                    )
                )
    return results


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
