"""`mailflow inject FILE.eml --to ADDR...`: deliver a file as if SES had received it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from mailflow.aws import open_clients
from mailflow.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the inbound developer commands to the main parser."""
    inject = subparsers.add_parser(
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


def _verdicts(pairs: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, status = pair.partition("=")
        if not sep:
            raise SystemExit(f"mailflow inject: --verdict {pair!r} is not NAME=STATUS")
        result[name.strip().lower()] = status.strip().upper()
    return result


def cmd_inject(args: argparse.Namespace) -> int:
    from mailflow.inbound.devtools import inject

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
