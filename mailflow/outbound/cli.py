"""The outbound developer command, added to `mailflow` by `register(subparsers)`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from mailflow.observability.logging import configure_logging
from mailflow.settings import load_settings


def cmd_send(args: argparse.Namespace) -> int:
    """Validate FILE.json locally, then put it on MAILFLOW_OUTBOUND_QUEUE."""
    from mailflow.outbound.devtools import send  # lazy: keeps --help fast

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, settings.log_unredacted)
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


def register(subparsers: Any) -> None:
    """Hook called by mailflow.cli.build_parser."""
    send = subparsers.add_parser(
        "send", help="validate an outbound message JSON file and put it on the outbound queue"
    )
    send.add_argument("file", help="path to the JSON message, or - for stdin")
    send.add_argument(
        "--no-validate",
        action="store_true",
        help="skip local validation (to test how the worker reports a bad message)",
    )
    send.set_defaults(func=cmd_send)
