"""Command line: `mailflow run | local | provision | check-config | peek | redrive |
inject | send | schema`.

`run` is the worker; everything else is an operator or developer tool (`mailflow.ops`,
`mailflow.local`) that runs with the operator's credentials, never the task role's.
Tools are imported when their command runs, so `--help` and `run` stay fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from mailflow.errors import ConfigurationError
from mailflow.observability.logging import configure_logging
from mailflow.settings import Settings, load_settings

Command = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, settings.log_unredacted)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from mailflow.engine.worker import run_worker

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
    from mailflow.aws.clients import open_clients
    from mailflow.ops.provision import provision

    settings = _settings(args)

    async def go() -> list[str]:
        async with open_clients(settings) as clients:
            return await provision(settings, clients)

    for line in anyio.run(go):
        print(f"ok  {line}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True))
    return 0


def cmd_peek(args: argparse.Namespace) -> int:
    from mailflow.ops.queues import peek

    settings = _settings(args)
    for message in anyio.run(peek, settings, args.queue, args.max):
        print(json.dumps(message, indent=2, ensure_ascii=False))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from mailflow.ops.queues import redrive

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


def _verdicts(pairs: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, status = pair.partition("=")
        if not sep:
            raise SystemExit(f"mailflow inject: --verdict {pair!r} is not NAME=STATUS")
        result[name.strip().lower()] = status.strip().upper()
    return result


def cmd_inject(args: argparse.Namespace) -> int:
    from mailflow.aws.clients import open_clients
    from mailflow.ops.inject import inject

    settings = load_settings()
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        print(f"mailflow inject: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    verdicts = _verdicts(args.verdict)

    async def go() -> str:
        async with open_clients(settings) as clients:
            return await inject(
                settings,
                clients,
                raw,
                args.recipients,
                sender=args.sender,
                verdicts=verdicts,
                shape=args.shape,
            )

    ses_id = anyio.run(go)
    print(f"injected {args.file} as SES message {ses_id} -> {settings.inbound_queue}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Validate FILE.json locally, then put it on MAILFLOW_OUTBOUND_QUEUE."""
    from mailflow.ops.send import send

    settings = _settings(args)
    if args.file == "-":
        body = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as handle:
            body = handle.read()
    result = anyio.run(lambda: send(settings, body, check=not args.no_validate))
    if result.problems:
        for problem in result.problems:
            print(f"invalid: {problem}", file=sys.stderr)
        return 1
    print(f"queued on {settings.outbound_queue}: SQS message {result.sqs_message_id}")
    return 0


def _add_inject(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inject = sub.add_parser(
        "inject",
        help="store an .eml in the raw bucket and notify the inbound queue, as SES would",
        description="Store FILE.eml in MAILFLOW_RAW_BUCKET and send the SES 'Received'"
        " notification (S3 action, SNS-wrapped by default) to MAILFLOW_INBOUND_QUEUE on"
        " whatever endpoint AWS_ENDPOINT_URL names.",
    )
    inject.add_argument("file", type=Path, help="the raw email (.eml)")
    inject.add_argument(
        "--to", dest="recipients", nargs="+", required=True, metavar="ADDR",
        help="envelope recipients (RCPT TO); routing uses these, not the To header",
    )  # fmt: skip
    inject.add_argument(
        "--from", dest="sender", metavar="ADDR", help="envelope sender [the From header]"
    )
    inject.add_argument(
        "--verdict", action="append", default=[], metavar="NAME=STATUS",
        help="override an SES verdict, e.g. --verdict virus=FAIL (spam, virus, spf, dkim, dmarc)",
    )  # fmt: skip
    inject.add_argument(
        "--shape", choices=["sns", "raw", "s3"], default="sns",
        help="notification shape: SNS-wrapped (default), raw SES JSON, or S3 event",
    )  # fmt: skip
    inject.set_defaults(func=cmd_inject)


def _add_send(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser(
        "send", help="validate an outbound message JSON file and put it on the outbound queue"
    )
    send.add_argument("file", help="path to the JSON message, or - for stdin")
    send.add_argument(
        "--no-validate",
        action="store_true",
        help="skip local validation (to test how the worker reports a bad message)",
    )
    send.set_defaults(func=cmd_send)


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
    _add_inject(sub)
    _add_send(sub)
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
