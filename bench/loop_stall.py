"""How long the event loop stalls while a 40 MB email with 4.8 MB of HTML is handled.

    .venv/bin/python bench/loop_stall.py [--html-mb 4.8] [--attachment-mb 25] [--small 20]

The real consumer engine and inbound pipeline run in this process against moto in a
child process (so moto's own CPU does not compete for this interpreter). One big email
(sanitizable HTML plus a random attachment) and `--small` plain emails are injected as
SES would, then two things are measured while a consumer handles them:

- the longest *CPU burst on the loop*: the CPU time (`time.thread_time`) of the longest
  single callback the event loop ran. That is work done on the loop itself, during which
  nothing else can run: no heartbeat, no other message, no health check. It does not
  depend on how loaded the machine is, so tests/integration/inbound/test_loop_stall.py
  asserts a generous bound on it: a regression back onto the loop (sanitizing 4.8 MB of
  HTML there took about 1.3 s) fails;
- the longest *stall* a probe task sees (it sleeps 5 ms in a loop and records how late it
  wakes up): wall-clock, so it also counts waiting for the GIL held by the parsing thread
  and for a busy CPU; printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow.aws.clients import open_clients
from mailflow.engine.consumer import Consumer, EngineConfig
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.ops.inject import inject
from mailflow.ops.provision import provision
from mailflow.settings import Settings, load_settings

MB = 1_000_000
PROBE_SECONDS = 0.005


def newsletter_html(size: int, seed: int = 7) -> bytes:
    """HTML shaped like a real newsletter: tables, inline styles, links, images, entities."""
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not a secret)
    rows: list[str] = ['<html><head><style>p{color:red}</style></head><body><table width="600">']
    length = len(rows[0])
    while length < size:
        n = rng.randrange(1_000_000)
        row = (
            f'<tr><td style="padding:4px;color:#333;font-family:Arial">Item {n} &amp; more '
            f'<a href="https://shop.example.net/p/{n}?utm_source=mail" onclick="track({n})">'
            f'buy</a> <img src="cid:img{n % 7}@x" width="40" height="40" alt="p{n}">'
            f"<script>x({n})</script></td></tr>\n"
        )
        rows.append(row)
        length += len(row)
    rows.append("</table></body></html>")
    return "".join(rows).encode()


def big_email(html_bytes: int, attachment_bytes: int) -> bytes:
    """A multipart/mixed email: the HTML body (quoted-printable-free, 8bit) and a blob."""
    import base64

    html = newsletter_html(html_bytes)
    blob = base64.encodebytes(os.urandom(attachment_bytes)).replace(b"\n", b"\r\n")
    return (
        b"From: News <news@sender.test>\r\nTo: _app1@example.com\r\nSubject: big\r\n"
        b"Message-ID: <stall@sender.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + html + b"\r\n"
        b"--outer\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"--outer--\r\n"
    )


SMALL = (
    b"From: A <a@sender.test>\r\nTo: _app2@example.com\r\nSubject: hi\r\n"
    b"Message-ID: <small-{n}@sender.test>\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
)


@dataclass(frozen=True)
class Stall:
    longest_burst: float  # CPU seconds of the longest callback run on the loop
    burst_callback: str
    longest: float  # wall seconds the probe woke up late, at worst
    p99: float
    samples: int
    handled_seconds: float
    email_bytes: int


@dataclass
class Bursts:
    """The longest loop callback by the loop thread's own CPU time."""

    longest: float = 0.0
    callback: str = ""


@contextmanager
def loop_bursts() -> Iterator[Bursts]:
    """Time every callback the asyncio loop runs, in CPU time of the loop's thread.

    A measurement harness, not production code: it wraps asyncio's `Handle._run`, the one
    place every callback and task step goes through, for the duration of the block.
    """
    bursts = Bursts()
    original = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        started = time.thread_time()
        original(handle)
        spent = time.thread_time() - started
        if spent > bursts.longest:
            bursts.longest, bursts.callback = spent, repr(handle)[:300]

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    try:
        yield bursts
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]


async def measure(
    settings: Settings,
    *,
    html_bytes: int,
    attachment_bytes: int,
    small: int,
    on_start: Callable[[], None] = lambda: None,
) -> Stall:
    """Inject the emails, run a consumer until the queue is empty, probe the loop meanwhile."""
    email = big_email(html_bytes, attachment_bytes)
    lateness: list[float] = []
    async with open_clients(settings) as clients:
        await provision(settings, clients)
        await inject(settings, clients, email, ["_app1@example.com"])
        for n in range(small):
            await inject(
                settings, clients, SMALL.replace(b"{n}", str(n).encode()), ["_app2@example.com"]
            )
        pipeline = InboundPipeline(settings, clients)
        consumer = Consumer(
            queue=settings.inbound_queue,
            handler=pipeline,
            clients=clients,
            dlq=settings.dlq,
            config=EngineConfig(concurrency=10, wait_time_seconds=1),
        )
        url = await clients.queues.url(settings.inbound_queue)
        stop = anyio.Event()
        on_start()
        started = time.perf_counter()

        async def probe() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await anyio.sleep(PROBE_SECONDS)
                lateness.append(time.perf_counter() - before - PROBE_SECONDS)

        async def until_drained() -> None:
            while True:
                attrs = await clients.sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )
                if sum(int(v) for v in attrs["Attributes"].values()) == 0:
                    break
                await anyio.sleep(0.2)
            stop.set()

        with loop_bursts() as bursts:
            async with anyio.create_task_group() as tg:
                tg.start_soon(consumer.run, stop, 30.0)
                tg.start_soon(probe)
                await until_drained()
        elapsed = time.perf_counter() - started
    ordered = sorted(lateness)
    return Stall(
        longest_burst=bursts.longest,
        burst_callback=bursts.callback,
        longest=ordered[-1],
        p99=ordered[int(len(ordered) * 0.99)],
        samples=len(ordered),
        handled_seconds=elapsed,
        email_bytes=len(email),
    )


def settings_for(endpoint: str) -> Settings:
    return load_settings(
        domains=["example.com"],
        apps=["app1", "app2"],
        aws_endpoint_url=endpoint,
        consumers=["inbound"],
        check_resources=False,
    )


def main() -> None:
    from bench.inbound_memory import moto_child

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html-mb", type=float, default=4.8)
    parser.add_argument("--attachment-mb", type=float, default=25.0)
    parser.add_argument("--small", type=int, default=20)
    args = parser.parse_args()
    with moto_child() as endpoint:
        result = anyio.run(
            lambda: measure(
                settings_for(endpoint),
                html_bytes=int(args.html_mb * MB),
                attachment_bytes=int(args.attachment_mb * MB),
                small=args.small,
            )
        )
    print(
        f"email: {result.email_bytes / MB:.1f} MB with {args.html_mb} MB of HTML, "
        f"beside {args.small} small emails"
    )
    print(f"longest CPU burst on the loop: {result.longest_burst * 1000:.0f} ms")
    print(f"  in {result.burst_callback}")
    print(f"longest event-loop stall: {result.longest * 1000:.0f} ms")
    print(f"p99 stall:                {result.p99 * 1000:.1f} ms over {result.samples} probes")
    print(f"all handled in:           {result.handled_seconds:.1f} s")


if __name__ == "__main__":
    main()
