"""Command line: `mailflow run | local | provision | check-config | peek | redrive | schema`.

The inbound and outbound packages add their own developer commands (`inject`, `send`)
through `register(subparsers)` hooks, so this module stays about the worker's life.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from mailflow.errors import ConfigurationError
from mailflow.observability.logging import configure_logging
from mailflow.settings import Settings, load_settings

Command = Callable[[argparse.Namespace], int]
_PLUGINS = ("mailflow.inbound.cli", "mailflow.outbound.cli")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, settings.log_unredacted)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from mailflow.worker import run_worker

    anyio.run(run_worker, _settings(args))
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    try:
        from mailflow.local.embedded import apply_local_defaults, embedded_aws
        from mailflow.local.session import run_local
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"`mailflow local` needs the 'local' extra (pip install 'mailflow[local]'): {exc}"
        ) from None

    with embedded_aws(port=args.port) as endpoint:
        apply_local_defaults(endpoint)
        settings = _settings(args)
        anyio.run(run_local, settings, endpoint, args.smtp_port)
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from mailflow.aws import open_clients
    from mailflow.provision import provision

    settings = _settings(args)

    async def go() -> list[str]:
        async with open_clients(settings) as clients:
            return await provision(settings, clients)

    for line in anyio.run(go):
        print(f"ok  {line}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
    return 0


def cmd_peek(args: argparse.Namespace) -> int:
    from mailflow.devtools import peek

    settings = _settings(args)
    for message in anyio.run(peek, settings, args.queue, args.max):
        print(json.dumps(message, indent=2, ensure_ascii=False))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from mailflow.devtools import redrive

    settings = _settings(args)
    moved = anyio.run(redrive, settings, args.limit, args.dry_run)
    verb = "would redrive" if args.dry_run else "redrove"
    print(f"{verb} {moved} record(s) from {settings.dlq}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from mailflow.contracts.registry import all_schemas

    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    for stem, model in sorted(all_schemas().items()):
        schema = model.model_json_schema(by_alias=True)
        path = out / f"{stem}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the worker (both consumers) until SIGTERM").set_defaults(
        func=cmd_run
    )
    local = sub.add_parser("local", help="embedded AWS (moto) + provisioning + worker")
    local.add_argument("--port", type=int, default=5055, help="AWS endpoint port [5055]")
    local.add_argument("--smtp-port", type=int, default=2525, help="SMTP port [2525]")
    local.set_defaults(func=cmd_local)
    sub.add_parser("provision", help="create every resource (AWS_ENDPOINT_URL)").set_defaults(
        func=cmd_provision
    )
    sub.add_parser("check-config", help="print the resolved configuration").set_defaults(
        func=cmd_check_config
    )
    peek = sub.add_parser("peek", help="show waiting messages without consuming them")
    peek.add_argument("queue", help="role (inbound, outbound, default, dlq, an app) or name/URL")
    peek.add_argument("--max", type=int, default=10)
    peek.set_defaults(func=cmd_peek)
    redrive = sub.add_parser("redrive", help="put DLQ records' bodies back on their queues")
    redrive.add_argument("--limit", type=int, default=100)
    redrive.add_argument("--dry-run", action="store_true")
    redrive.set_defaults(func=cmd_redrive)
    schema = sub.add_parser("schema", help="write JSON Schema files of every contract")
    schema.add_argument("directory", nargs="?", default="schemas")
    schema.set_defaults(func=cmd_schema)
    for module in _PLUGINS:
        plugin: Any = importlib.import_module(module)
        plugin.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"mailflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
