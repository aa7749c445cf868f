"""Peak memory of the inbound pipeline on a 40 MB email (target: RSS growth < 200 MB).

    .venv/bin/python bench/inbound_memory.py [--attachment-mb 30] [--moto child|in-process]

Generates an email with one random attachment (30,000,000 bytes by default: base64 makes
the email about 41 MB, just under the 40 MiB inbound limit), stores it as SES would,
then runs `InboundPipeline.handle` once on its notification and reports how far the
process's peak RSS (VmHWM, reset just before the run through /proc/self/clear_refs)
rose above the RSS at that moment.

By default moto runs in a child process, so the number is the handler's own cost; with
`--moto in-process` moto's copies of the stored objects are in the same process and are
counted too (printed for comparison; that is not what a worker pays). Linux only.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow.aws.clients import open_clients
from mailflow.engine.message import SqsMessage
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.ops.inject import store
from mailflow.ops.provision import provision
from mailflow.settings import load_settings

MB = 1024 * 1024


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def make_email(attachment_bytes: int) -> bytes:
    data = base64.encodebytes(os.urandom(attachment_bytes)).replace(b"\n", b"\r\n")
    return (
        b"From: Big <big@sender.test>\r\nTo: _app1@example.com\r\nSubject: 40 MB\r\n"
        b"Message-ID: <bench@sender.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + data + b"--b--\r\n"
    )


@contextmanager
def moto_child() -> Iterator[str]:
    code = (
        "import sys, time\n"
        "from mailflow.local.embedded import embedded_aws\n"
        "with embedded_aws(port=0) as endpoint:\n"
        "    print(endpoint, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    proc = subprocess.Popen(  # noqa: S603  (our own interpreter and code)
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    endpoint = proc.stdout.readline().strip()
    try:
        yield endpoint
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@contextmanager
def moto_in_process() -> Iterator[str]:
    from mailflow.local.embedded import embedded_aws

    with embedded_aws(port=0) as endpoint:
        yield endpoint


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310  (local endpoint)
        return len(response.read())


async def run(endpoint: str, attachment_bytes: int) -> dict[str, float]:
    settings = load_settings(
        domains=["example.com"], apps=["app1"], aws_endpoint_url=endpoint, consumers=["inbound"]
    )
    async with open_clients(settings) as clients:
        await provision(settings, clients)
        raw = make_email(attachment_bytes)
        email_bytes = len(raw)
        ses_id, body = await store(settings, clients, raw, ["_app1@example.com"])
        del raw
        message = SqsMessage(
            queue=settings.inbound_queue,
            queue_url=await clients.queues.url(settings.inbound_queue),
            message_id="bench",
            receipt_handle="bench",
            body=body,
        )
        handler = InboundPipeline(settings, clients)
        gc.collect()
        before_kb = status_kb("VmRSS")
        reset_peak()
        started = time.perf_counter()
        await handler.handle(message)
        elapsed = time.perf_counter() - started
        peak_kb = status_kb("VmHWM")
        url = await clients.queues.url(settings.app_queue("app1"))
        received = await clients.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
        app_message = json.loads(received["Messages"][0]["Body"])
        [attachment] = app_message["email"]["attachments"]
        assert attachment["size"] == attachment_bytes
        assert attachment["status"] == "stored"
        fetched = await anyio.to_thread.run_sync(fetch, attachment["presignedUrl"])
        assert fetched == attachment_bytes
    return {
        "email_mb": email_bytes / MB,
        "rss_before_mb": before_kb / 1024,
        "peak_mb": peak_kb / 1024,
        "growth_mb": (peak_kb - before_kb) / 1024,
        "seconds": elapsed,
        "ses_id_len": len(ses_id),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attachment-mb", type=float, default=30.0, help="decimal MB [30]")
    parser.add_argument("--moto", choices=["child", "in-process"], default="child")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    for name in [n for n in os.environ if n.startswith("MAILFLOW_")]:
        del os.environ[name]
    attachment_bytes = int(args.attachment_mb * 1_000_000)
    server = moto_child if args.moto == "child" else moto_in_process
    with server() as endpoint:
        result = anyio.run(run, endpoint, attachment_bytes)
    print(f"email size:            {result['email_mb']:.1f} MiB ({args.moto} moto)")
    print(f"RSS before handle:     {result['rss_before_mb']:.1f} MiB")
    print(f"peak RSS during handle:{result['peak_mb']:8.1f} MiB")
    print(f"peak RSS growth:       {result['growth_mb']:.1f} MiB (target < 200 MB)")
    print(f"handle() wall time:    {result['seconds']:.2f} s")


if __name__ == "__main__":
    main()
