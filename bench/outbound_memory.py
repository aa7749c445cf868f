"""Peak and retained memory, and worker CPU, of the outbound pipeline on a large attachment.

    .venv/bin/python bench/outbound_memory.py [--attachment-mib 10] [--messages 3]
        [--malloc tuned|default]
    .venv/bin/python bench/outbound_memory.py --compose-cpu 20
    .venv/bin/python bench/outbound_memory.py --serialize-cpu 7

Stores one random attachment (10 MiB by default) in S3, then runs
`OutboundPipeline.handle` on `--messages` emails that each attach it, one after the
other, as the consumer engine would. For each email it reports how far the process's
peak RSS (VmHWM, reset just before the email through /proc/self/clear_refs) rose above
the RSS at that moment, how much RSS the process still holds afterwards above where it
stood before the first large email (memory the allocator kept), and the CPU time the
process spent on the email (all threads: the compose thread included) and its minor page
faults (memory the allocator had to map afresh: the price of giving memory back).

moto runs in a child process, so the numbers are the worker's own cost (S3 GET, compose,
botocore's serialization of the SES request, the claim and event calls), not moto's.
`--compose-cpu N` only times `compose` itself (no I/O, this thread's CPU) on a text
email, 200 KB of HTML with text, and 1 MiB and 10 MiB attachments. `--serialize-cpu N`
times what botocore does with the composed email for SESv2 SendEmail (base64 of
`Content.Raw.Data`, then JSON), which mailflow does not control.
`--malloc tuned` calls `mailflow.engine.memory.configure_allocator()` first, as the
worker does at start; `default` leaves glibc's malloc as it is. Linux only.

With `PYTHONPATH=<older checkout>` the older mailflow is measured (use `--malloc default`
when it has no `mailflow.engine.memory`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import anyio

# After PYTHONPATH and the installed package: an older checkout given there wins.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.inbound_memory import moto_child, reset_peak, status_kb
from mailflow.aws.clients import open_clients
from mailflow.engine.message import SqsMessage
from mailflow.ops.provision import provision
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import load_settings

MIB = 1024 * 1024


def body(correlation_id: str, attachment: dict[str, str] | None) -> str:
    email: dict[str, object] = {
        "from": {"address": "_app1@example.com", "name": "Bench"},
        "to": [{"address": "user@example.net"}],
        "subject": "Large attachment – Grüße",
        "body": {"text": "See the attachment.\n", "html": "<p>See the attachment.</p>"},
    }
    if attachment:
        email["attachments"] = [{"filename": "data.bin", **attachment}]
    return json.dumps(
        {"version": "1.0", "correlationId": correlation_id, "source": "app1", "email": email}
    )


def sqs_message(text: str) -> SqsMessage:
    return SqsMessage("mailflow-outbound", "-", uuid.uuid4().hex, "-", text)


def last_raw_size(endpoint: str) -> int:
    """Length of the last raw message moto's SES accepted (checked after measuring)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=120) as response:  # noqa: S310
        data = json.load(response)
    return len(data["ses"]["RawMessage"][-1]["raw_data"])


async def run(endpoint: str, attachment_bytes: int, messages: int) -> list[dict[str, float]]:
    settings = load_settings(
        domains=["example.com"],
        apps={"app1": {}},
        aws_endpoint_url=endpoint,
        consumers=["outbound"],
        # One writer here (no SQS sender attributes): the writer check is not measured.
        outbound={"default_send_rate": 100_000.0, "writer_identity": "off"},
    )
    async with open_clients(settings) as clients:
        await provision(settings, clients)
        attachment = None
        if attachment_bytes:  # 0: no attachment, the handler's floor
            key = "outbound/app1/bench-memory.bin"
            await clients.s3.put_object(
                Bucket=settings.attachments_bucket, Key=key, Body=os.urandom(attachment_bytes)
            )
            attachment = {"s3Bucket": settings.attachments_bucket, "s3Key": key}
        handler = OutboundPipeline(settings, clients)
        run_id = uuid.uuid4().hex[:8]
        # Warm up: clients, connection pools, lazily imported modules, the thread pool.
        await handler.handle(sqs_message(body(f"{run_id}-warm", None)))
        gc.collect()
        baseline_kb = status_kb("VmRSS")
        rows: list[dict[str, float]] = []
        for i in range(messages):
            gc.collect()
            before_kb = status_kb("VmRSS")
            reset_peak()
            cpu = time.process_time()
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            wall = time.perf_counter()
            await handler.handle(sqs_message(body(f"{run_id}-{i}", attachment)))
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            peak_kb = status_kb("VmHWM")
            gc.collect()
            after_kb = status_kb("VmRSS")
            rows.append(
                {
                    "growth_mb": (peak_kb - before_kb) / 1024,
                    "retained_mb": (after_kb - baseline_kb) / 1024,
                    "cpu_ms": cpu * 1000,
                    "wall_ms": wall * 1000,
                    "faults": faults,
                }
            )
    return rows


def compose_cpu(repeats: int) -> None:
    """Pure compose CPU per email (median of `repeats`, this thread only), no I/O."""
    from datetime import UTC, datetime

    from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
    from mailflow.outbound.validation import parse_message, validate

    settings = load_settings(domains=["example.com"], apps={"app1": {}})
    paragraph = "<p>Grüße aus München: Ihre Bestellung Nr. 4711 ist unterwegs – danke!</p>\n"
    html = paragraph * (200_000 // len(paragraph.encode()))
    text = "Hello,\n\nyour order 4711 is on its way.\n\nRegards\n" * 4
    cases = [
        ("text", {"text": text}, 0),
        ("html 200 KB + text", {"text": text, "html": html}, 0),
        ("1 MiB attachment", {"text": text}, MIB),
        ("10 MiB attachment", {"text": text}, 10 * MIB),
    ]
    for name, email_body, size in cases:
        data = json.loads(body("compose", None))
        data["email"]["body"] = email_body
        email = validate(parse_message(json.dumps(data), settings), settings)
        attachments = [LoadedAttachment("data.bin", "application/pdf", os.urandom(size))]
        loaded = attachments if size else []
        message_id, date = message_id_for(email), datetime.now(UTC)
        times = []
        for _ in range(repeats):
            started = time.thread_time()
            compose(email, loaded, message_id=message_id, date=date, send_token="t" * 32)
            times.append(time.thread_time() - started)
        times.sort()
        print(f"compose {name:>20}: {times[len(times) // 2] * 1000:7.2f} ms (median of {repeats})")


def serialize_cpu(repeats: int) -> None:
    """What botocore spends turning a composed email into the SESv2 SendEmail request body
    (base64 of `Content.Raw.Data`, then JSON): its CPU and the memory it allocates."""
    import tracemalloc
    from datetime import UTC, datetime

    import botocore.session
    from botocore.serialize import create_serializer

    from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
    from mailflow.outbound.io import send_email_request
    from mailflow.outbound.validation import parse_message, validate

    settings = load_settings(domains=["example.com"], apps={"app1": {}})
    operation = botocore.session.get_session().get_service_model("sesv2")
    # As mailflow's clients are configured (mailflow.aws.clients: parameter_validation off).
    serializer = create_serializer("rest-json", include_validation=False)
    email = validate(parse_message(body("serialize", None), settings), settings)
    for size in (MIB, 10 * MIB):
        attachment = LoadedAttachment("data.bin", "application/pdf", os.urandom(size))
        raw = compose(email, [attachment], message_id=message_id_for(email), date=datetime.now(UTC))
        request = send_email_request(email, raw, "mailflow", "t" * 32)
        model = operation.operation_model("SendEmail")
        times = []
        for _ in range(repeats):
            started = time.process_time()
            serializer.serialize_to_request(request, model)
            times.append(time.process_time() - started)
        times.sort()
        tracemalloc.start()
        serialized = serializer.serialize_to_request(request, model)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"botocore SendEmail, {size // MIB:2} MiB attachment ({len(raw) / MIB:.1f} MiB MIME):"
            f" {times[len(times) // 2] * 1000:6.1f} ms, allocates {peak / MIB:.1f} MiB at its"
            f" peak, body {len(serialized['body']) / MIB:.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attachment-mib", type=float, default=10.0, help="MiB, 0 for none [10]")
    parser.add_argument("--messages", type=int, default=3, help="emails, one after another [3]")
    parser.add_argument("--malloc", choices=["tuned", "default"], default="tuned")
    parser.add_argument(
        "--compose-cpu", type=int, metavar="N", help="only time compose, N runs per case"
    )
    parser.add_argument(
        "--serialize-cpu", type=int, metavar="N", help="only time botocore's SendEmail body"
    )
    args = parser.parse_args()
    if args.compose_cpu:
        compose_cpu(args.compose_cpu)
        return
    if args.serialize_cpu:
        serialize_cpu(args.serialize_cpu)
        return
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    for name in [n for n in os.environ if n.startswith("MAILFLOW_")]:
        del os.environ[name]
    if args.malloc == "tuned":
        from mailflow.engine.memory import configure_allocator

        configure_allocator()
    attachment_bytes = int(args.attachment_mib * MIB)
    with moto_child() as endpoint:
        rows = anyio.run(run, endpoint, attachment_bytes, args.messages)
        mail_mb = last_raw_size(endpoint) / MIB
    print(f"attachment {args.attachment_mib:g} MiB, composed email {mail_mb:.1f} MiB")
    print(f"malloc: {args.malloc}; moto in a child process")
    print("email  peak RSS growth  retained RSS  worker CPU  page faults   wall")
    for i, row in enumerate(rows, start=1):
        print(
            f"{i:5}  {row['growth_mb']:10.1f} MiB  {row['retained_mb']:8.1f} MiB"
            f"  {row['cpu_ms']:7.1f} ms  {row['faults']:11.0f}  {row['wall_ms']:6.0f} ms"
        )


if __name__ == "__main__":
    main()
