"""`mailflow local`: provision the embedded endpoint, run the worker, say what to do next."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import anyio

from mailflow.aws.clients import open_clients
from mailflow.engine.worker import run_worker
from mailflow.local.ses_events import SesEventFeed
from mailflow.local.smtp import serve_smtp
from mailflow.ops.provision import provision
from mailflow.settings import Settings


def next_steps(settings: Settings, endpoint: str, smtp_port: int | None) -> str:
    app = next(iter(settings.apps), "app1")
    domain = settings.domains[0]
    lines = [
        "",
        f"mailflow local is running: AWS endpoint {endpoint}, health/metrics on "
        f"http://{settings.http_host}:{settings.http_port}/readyz and /metrics",
        "In another shell, from this directory:",
        "  . .venv/bin/activate",
        f"  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=mailflow-local "
        "AWS_SECRET_ACCESS_KEY=mailflow-local AWS_REGION=us-east-1 "
        f"MAILFLOW_DOMAINS={','.join(settings.domains)} MAILFLOW_APPS={','.join(settings.apps)}",
        f"  mailflow inject tests/fixtures/eml/plain.eml --to _{app}@{domain}",
        f"  mailflow peek {app}                  # the JSON {app} receives",
        "  mailflow send docs/examples/outbound.json   # what an app sends",
    ]
    if smtp_port:
        lines.append(
            f"  or send mail by SMTP to 127.0.0.1:{smtp_port}, e.g. "
            f"swaks --server 127.0.0.1:{smtp_port} --to _{app}@{domain}"
        )
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


async def run_local(settings: Settings, endpoint: str, smtp_port: int) -> None:
    async with open_clients(settings) as clients:
        for line in await provision(settings, clients):
            print(f"provisioned {line}", file=sys.stderr)
    feed = SesEventFeed(endpoint, settings) if settings.ses_events_queue else nullcontext()
    with feed:
        async with anyio.create_task_group() as tg:
            if smtp_port:
                tg.start_soon(_serve_smtp, settings, smtp_port)
            print(next_steps(settings, endpoint, smtp_port or None), file=sys.stderr)
            await run_worker(settings)
            tg.cancel_scope.cancel()


async def _serve_smtp(settings: Settings, port: int) -> None:
    async with open_clients(settings) as clients:
        await serve_smtp(settings, clients, "127.0.0.1", port)
