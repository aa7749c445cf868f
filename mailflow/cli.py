"""Command line: `mailflow run | local | provision | check-config | peek | redrive |
suppression | inject | send | schema`.

`run` is the worker; everything else is an operator or developer tool (`mailflow.ops`,
`mailflow.local`) that runs with the operator's credentials, never the task role's.
Tools are imported when their command runs, so `--help` and `run` stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import anyio
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from mailflow.errors import ConfigurationError, MailflowError, MissingResource, describe
from mailflow.observability.logging import configure_logging
from mailflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from mailflow.ops.queues import Peek

Command = Callable[[argparse.Namespace], int]

DESCRIPTION = """\
mailflow: an email gateway for applications on AWS. Inbound mail from SES is routed to
each app's SQS queue as JSON; apps put JSON on the outbound queue to send mail.

  mailflow local      run everything on your machine (embedded AWS, no account needed)
  mailflow run        run the worker (production: ECS Fargate)

Configuration comes from MAILFLOW_* and AWS_* environment variables (see README.md).
Commands that act on AWS resources (provision, inject, send, peek, redrive,
suppression) need
AWS_ENDPOINT_URL (an emulator), or --aws to act on the account your credentials name.
"""


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, settings.log_unredacted)
    return settings


def _target(args: argparse.Namespace) -> Settings:
    """Settings of an operator command, which names what it is about to act on.

    Without an endpoint the AWS SDK would silently use whatever real account the shell's
    credentials name: refuse unless the operator says `--aws`.
    """
    settings = _settings(args)
    if settings.aws_endpoint_url:
        where = f"endpoint {settings.aws_endpoint_url}"
    elif getattr(args, "aws", False):
        where = "AWS (the account of your credentials)"
    else:
        raise ConfigurationError(
            "AWS_ENDPOINT_URL is not set, so this would act on a real AWS account: pass"
            " --aws to mean it, or export the endpoint `mailflow local` printed"
        )
    print(f"mailflow {args.command}: {where}, region {settings.aws_region}", file=sys.stderr)
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

    http_port = args.http_port or int(os.environ.get("MAILFLOW_HTTP_PORT", "8080"))
    ports = {"--port": args.port, "--smtp-port": args.smtp_port, "--http-port": http_port}
    taken = [f"{flag} {port}" for flag, port in ports.items() if port and not _port_free(port)]
    if taken:
        raise ConfigurationError(
            f"port in use: {', '.join(taken)} (another `mailflow local`?); choose free"
            " ports with those flags"
        )
    with embedded_aws(port=args.port) as endpoint:
        apply_local_defaults(endpoint, http_port=http_port)
        settings = _settings(args)
        anyio.run(run_local, settings, endpoint, args.smtp_port)
    return 0


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen there now.

    SO_REUSEADDR as the servers themselves set it: connections of a `mailflow local`
    stopped a moment ago linger in TIME_WAIT, and without it a restart was refused.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def cmd_provision(args: argparse.Namespace) -> int:
    from mailflow.aws.clients import open_clients
    from mailflow.ops.provision import provision

    settings = _target(args)

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

    settings = _target(args)
    found = anyio.run(peek, settings, args.queue, args.max)
    for message in found.messages:
        print(json.dumps(message, indent=2, ensure_ascii=False))
    for line in _peek_summary(found):
        print(line, file=sys.stderr)
    return 0


def _peek_summary(found: Peek) -> list[str]:
    """What the look cost and where mail that is not here went: said, never silent."""
    from mailflow.ops.queues import PEEK_HOLD_SECONDS

    lines = [f"{found.queue}: {len(found.messages)} message(s) shown, each received once"]
    if found.max_receives is not None:
        lines[0] += (
            f"; SQS moves a message to {found.dead_letters} after {found.max_receives} receives"
        )
    for message_id in found.at_limit():
        lines.append(
            f"warning: {message_id} has been received {found.max_receives} times: its next"
            f" receive, by anyone, moves it to {found.dead_letters}"
        )
    if found.dead_letter_count:
        lines.append(
            f"{found.dead_letters} holds {found.dead_letter_count} message(s):"
            f" mailflow peek {found.dead_letters}"
        )
    if found.still_hidden:
        lines.append(
            f"warning: {found.still_hidden} message(s) could not be made visible again and"
            f" stay hidden for up to {PEEK_HOLD_SECONDS} s"
        )
    return lines


def cmd_redrive(args: argparse.Namespace) -> int:
    """Replay the selected failure records; exit 1 when a selected record could not move."""
    from datetime import UTC, datetime

    from mailflow.ops.redrive import build_selection, format_table, redrive

    try:
        selection = build_selection(
            app=args.app,
            codes=args.codes,
            direction=args.direction,
            since=args.since,
            until=args.until,
            now=datetime.now(UTC),
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    settings = _target(args)
    report = anyio.run(
        lambda: redrive(
            settings, selection, limit=args.limit, dry_run=args.dry_run, force=args.force
        )
    )
    if report.moved:
        for line in format_table(report.moved):
            print(line)
    for record, why in report.failed:
        print(
            f"failed: {record.sqs_message_id} -> {record.source_queue}: {why} (left in the DLQ)",
            file=sys.stderr,
        )
    for line in report.summary():
        print(line)
    return 1 if report.failed else 0


def cmd_suppression(args: argparse.Namespace) -> int:
    """List, add, remove or check suppressed addresses; `check` exits 1 when suppressed."""
    from mailflow.ops import suppression

    settings = _target(args)
    if args.action == "list":
        found = anyio.run(lambda: suppression.entries(settings, args.app))
        for entry in found:
            fields = (entry.address, entry.reason, entry.since, entry.app or "-", entry.detail)
            print("\t".join(fields))
        print(f"{len(found)} suppressed", file=sys.stderr)
        return 0
    address = _address(args.address)
    if args.action == "add":
        added = anyio.run(lambda: suppression.add(settings, address, args.reason))
        print(f"{address}: {'suppressed' if added else 'was already suppressed'}")
        return 0
    if args.action == "remove":
        removed = anyio.run(lambda: suppression.remove(settings, address))
        print(f"{address}: removed ({removed.detail})" if removed else f"{address}: not suppressed")
        return 0
    found_entry = anyio.run(lambda: suppression.check(settings, address))
    print(found_entry.describe() if found_entry else f"{address} is not suppressed")
    return 1 if found_entry else 0


def _address(text: str) -> str:
    if "@" not in text or any(c.isspace() for c in text.strip()):
        raise ConfigurationError(f"{text!r} is not an email address")
    return text.strip().lower()


def _positive(text: str) -> int:
    """A count of at least 1 (argparse `type`: a wrong one is a one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def cmd_schema(args: argparse.Namespace) -> int:
    from mailflow.contracts.registry import all_schemas

    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    for stem, schema in sorted(all_schemas().items()):
        path = out / f"{stem}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _verdicts(pairs: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, status = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"--verdict {pair!r} is not NAME=STATUS")
        result[name.strip().lower()] = status.strip().upper()
    return result


def cmd_inject(args: argparse.Namespace) -> int:
    from mailflow.aws.clients import open_clients
    from mailflow.ops.inject import inject

    raw = args.file.read_bytes()
    verdicts = _verdicts(args.verdict)
    settings = _target(args)

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

    settings = _target(args)
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


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _add_redrive(sub: argparse._SubParsersAction[_Parser]) -> None:
    redrive = sub.add_parser(
        "redrive",
        help="put selected DLQ records' bodies back on their queues",
        description=(
            "Put the original body of each selected failure record in MAILFLOW_DLQ back on"
            " the queue it came from (sourceQueue), then delete the record. Filters combine"
            " (all must match); without any, every record is selected. Records that can"
            " never succeed on replay (a virus or other verdict, a forged writer, a send"
            " that may have happened) are skipped unless --force. Records not selected or"
            " not parseable stay in the DLQ: each is received once and made visible again."
        ),
    )
    redrive.add_argument("--app", help="only records about this app")
    redrive.add_argument(
        "--code", dest="codes", action="append", metavar="CODE",
        help="only records with this errorCode (repeat for several)",
    )  # fmt: skip
    redrive.add_argument(
        "--direction", choices=["inbound", "outbound", "events"], help="only this direction"
    )
    redrive.add_argument(
        "--since", metavar="TIME",
        help="only records whose lastAttemptAt is at or after TIME: ISO 8601"
        " (2026-03-03T09:00:00Z; no offset means UTC) or ago (30m, 2h, 3d, 1w)",
    )  # fmt: skip
    redrive.add_argument(
        "--until", metavar="TIME", help="only records whose lastAttemptAt is before TIME"
    )
    redrive.add_argument(
        "--limit", type=_positive, default=100, help="move at most this many [100]"
    )
    redrive.add_argument(
        "--dry-run", action="store_true", help="print what would move as a table; move nothing"
    )
    redrive.add_argument(
        "--force", action="store_true", help="move records marked not replayable as well"
    )
    _aws_flag(redrive)
    redrive.set_defaults(func=cmd_redrive)


def _add_inject(sub: argparse._SubParsersAction[_Parser]) -> None:
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
    _aws_flag(inject)
    inject.set_defaults(func=cmd_inject)


def _add_send(sub: argparse._SubParsersAction[_Parser]) -> None:
    send = sub.add_parser(
        "send", help="validate an outbound message JSON file and put it on the outbound queue"
    )
    send.add_argument("file", help="path to the JSON message, or - for stdin")
    send.add_argument(
        "--no-validate",
        action="store_true",
        help="skip local validation (to test how the worker reports a bad message)",
    )
    _aws_flag(send)
    send.set_defaults(func=cmd_send)


def _aws_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--aws",
        action="store_true",
        help="act on the real AWS account of your credentials (needed when AWS_ENDPOINT_URL"
        " is not set)",
    )


def _add_suppression(sub: argparse._SubParsersAction[_Parser]) -> None:
    suppression = sub.add_parser(
        "suppression",
        help="the suppression list: addresses mailflow no longer sends to",
        description="Hard bounces and complaints put addresses on the list (soft bounces"
        " past a threshold too); outbound mail to them is refused with reason suppressed."
        " check exits 1 when the address is suppressed.",
    )
    actions = suppression.add_subparsers(dest="action", required=True, parser_class=_Parser)
    listing = actions.add_parser("list", help="every suppressed address (scans the table)")
    listing.add_argument("--app", help="only those the app's mail put on the list")
    add = actions.add_parser("add", help="suppress an address by hand")
    add.add_argument("address")
    add.add_argument("--reason", default="added by an operator", help="why (kept with it)")
    for name, text in (("remove", "let mail to it through again"), ("check", "is it?")):
        action = actions.add_parser(name, help=text)
        action.add_argument("address")
    for action in (listing, add, *[actions.choices[n] for n in ("remove", "check")]):
        _aws_flag(action)
    suppression.set_defaults(func=cmd_suppression)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mailflow", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the worker (both consumers) until SIGTERM").set_defaults(
        func=cmd_run
    )
    local = sub.add_parser("local", help="embedded AWS (moto) + provisioning + worker")
    local.add_argument("--port", type=int, default=5055, help="AWS endpoint port [5055]")
    local.add_argument("--smtp-port", type=int, default=2525, help="SMTP port, 0 for none [2525]")
    local.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="/readyz, /healthz, /metrics port [MAILFLOW_HTTP_PORT or 8080]",
    )
    local.set_defaults(func=cmd_local)
    provision = sub.add_parser("provision", help="create every queue, bucket and table")
    _aws_flag(provision)
    provision.set_defaults(func=cmd_provision)
    sub.add_parser("check-config", help="print the resolved configuration").set_defaults(
        func=cmd_check_config
    )
    peek = sub.add_parser(
        "peek",
        help="show waiting messages without consuming them",
        description=(
            "Show waiting messages and leave them on the queue. SQS has no true peek: each"
            " message shown is received once (held for the look, then made visible again),"
            " and that receive counts toward the queue's maxReceiveCount. The summary on"
            " stderr names the queue's dead-letter queue, how many it holds, and any"
            " message whose next receive would move it there. Queues that `provision`"
            " creates for apps allow 100 receives, so looking never moves mail there."
        ),
    )
    peek.add_argument("queue", help="role (inbound, outbound, default, dlq, an app) or name/URL")
    peek.add_argument("--max", type=int, default=10, help="show at most this many [10]")
    _aws_flag(peek)
    peek.set_defaults(func=cmd_peek)
    _add_redrive(sub)
    _add_suppression(sub)
    schema = sub.add_parser("schema", help="write JSON Schema files of every contract")
    schema.add_argument(
        "directory", nargs="?", default="schemas", help="where to write them [./schemas]"
    )
    schema.set_defaults(func=cmd_schema)
    _add_inject(sub)
    _add_send(sub)
    return parser


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit status and one line for an error a command met (2: fix your input)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ConfigurationError):
        return 2, str(exc)
    if isinstance(exc, MissingResource):
        return 2, f"{exc}: run `mailflow provision`, or check the name"
    if isinstance(exc, OSError) and exc.filename is not None:
        return 2, f"cannot read {exc.filename}: {exc.strerror}"
    if isinstance(exc, NoCredentialsError):
        return 2, (
            "no AWS credentials found: for a local endpoint export AWS_ENDPOINT_URL,"
            " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as `mailflow local` prints them"
        )
    if isinstance(exc, EndpointConnectionError):
        return 1, f"cannot reach {exc.kwargs.get('endpoint_url')}: is the endpoint running?"
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return 1, f"AWS refused {exc.operation_name}: {describe(exc)}: {message}".rstrip(": ")
    if isinstance(exc, MailflowError):
        return 1, str(exc)
    return 1, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; an error is one line (exit 2: usage or configuration, 1: runtime)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        status, text = explain(exc)
        print(f"mailflow {args.command}: {text}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())
