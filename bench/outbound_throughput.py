"""Messages/s through OutboundPipeline.handle against an in-process moto server.

A figure, not an assertion. Measures the handler's own path (parse, validate, claim,
S3 fetch, compose, send marker, SESv2 SendEmail, complete, status event) with N
concurrent handlers like the consumer engine runs them; SQS receive/delete are left out
(moto slows down as a queue grows, which would measure moto rather than mailflow).
moto itself is most of the cost, so real AWS numbers will differ: latency dominates
there, and throughput then scales with `MAILFLOW_CONCURRENCY` up to the SES rate.

    .venv/bin/python bench/outbound_throughput.py [--messages 300] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import UTC, datetime

import anyio

from mailflow.aws.clients import open_clients
from mailflow.engine.message import SqsMessage
from mailflow.local.embedded import embedded_aws
from mailflow.ops.provision import provision
from mailflow.outbound.compose import compose, message_id_for
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.outbound.validation import parse_message, validate
from mailflow.settings import Settings, load_settings


def body(i: int, run: str, attachment: dict[str, str] | None) -> str:
    email: dict[str, object] = {
        "from": {"address": "_app1@example.com", "name": "Bench"},
        "to": [{"address": f"user{i}@example.net"}],
        "subject": f"Benchmark {i} – Grüße",
        "body": {"text": "Hello " * 200, "html": "<p>" + "Hello " * 200 + "</p>"},
    }
    if attachment:
        email["attachments"] = [{"filename": "file.pdf", **attachment}]
    return json.dumps(
        {"version": "1.0", "correlationId": f"{run}-{i}", "source": "app1", "email": email}
    )


async def run_case(
    settings: Settings, messages: int, concurrency: int, attachment_bytes: int
) -> float:
    async with open_clients(settings) as clients:
        handler = OutboundPipeline(settings, clients)
        attachment = None
        if attachment_bytes:
            key = f"outbound/app1/bench-{attachment_bytes}.pdf"
            await clients.s3.put_object(
                Bucket=settings.attachments_bucket, Key=key, Body=os.urandom(attachment_bytes)
            )
            attachment = {"s3Bucket": settings.attachments_bucket, "s3Key": key}
        run = uuid.uuid4().hex[:8]
        todo = iter(range(messages))

        async def worker() -> None:
            for i in todo:
                msg = SqsMessage("mailflow-outbound", "-", str(i), "-", body(i, run, attachment))
                await handler.handle(msg)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        elapsed = time.perf_counter() - started
        return messages / elapsed


def pure_core_rate(settings: Settings, messages: int) -> float:
    """parse + validate + compose only: the CPU mailflow itself spends per email."""
    started = time.perf_counter()
    for i in range(messages):
        email = validate(parse_message(body(i, "pure", None), settings), settings)
        compose(email, [], message_id=message_id_for(email), date=datetime.now(UTC))
    return messages / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    with embedded_aws(port=0) as endpoint:
        settings = load_settings(
            domains=["example.com"],
            apps={"app1": {}},
            aws_endpoint_url=endpoint,
            outbound={"default_send_rate": 100_000.0},  # measure the pipeline, not the limiter
        )
        async with open_clients(settings) as clients:
            await provision(settings, clients)
        rate = pure_core_rate(settings, 2000)
        print(f"pure core (parse+validate+compose), no I/O: {rate:7.1f} messages/s")
        for attachment_bytes in (0, 1024 * 1024):
            rate = await run_case(settings, args.messages, args.concurrency, attachment_bytes)
            label = "no attachment" if not attachment_bytes else "1 MiB attachment"
            print(
                f"outbound handler, {label:>16}: {rate:7.1f} messages/s "
                f"({args.messages} messages, concurrency {args.concurrency}, moto in-process)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    anyio.run(main, parser.parse_args())
