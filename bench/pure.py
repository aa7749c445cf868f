"""Pure cores, no I/O: emails per CPU-second of mailflow's parsing and composing, beside floors.

    PYTHONPATH=TREE .venv/bin/python bench/pure.py [--quick]     (run by bench/run.py)

Prints one JSON object. Run as a script in a subprocess with `cwd` and `PYTHONPATH` set
to the tree under test, so `import mailflow` is that tree's; the corpus is loaded from
this file's directory by path (it imports only the standard library).

Inbound, per corpus email (each one's Message-ID numbered, as injected):

- `mailflow parse+body`: what `InboundPipeline._parse` runs in its thread:
  `parse_file` on a file object (the worker spools the download) + `readable_body`
  (nh3 sanitizing, reply stripping);
- `mailflow full core`: that, plus what `_send`/`_store_one` add without I/O: each
  attachment decoded, hashed and judged (`attachments.inspect`), and the app message
  built and serialized (`build_message(...).to_wire()`);
- `stdlib + nh3 floor`: `email.message_from_bytes(policy=default)`, every part walked,
  text parts read (`get_content`), attachments decoded, `nh3.clean` on the HTML: the
  least a Python parser on the standard library does for the same answer;
- `Rust parser`: `fast_mail_parser.parse_email(raw)` (no sanitizing).

Outbound, per corpus message: `mailflow compose` (`compose(...)` exactly as
`OutboundPipeline._build` calls it; validation done once beforehand) beside
`stdlib build` (an `EmailMessage` with the same headers, bodies and attachments,
`as_bytes()` with the SMTP policy).

Each figure is CPU time (`time.process_time`, this process only): a warm-up call, then
`repeats` rounds of at least `min_seconds` each; the median round's emails/CPU-second
(5 rounds of 0.5 s; `--quick`: one round of 0.05 s, and no 40 MB email).
A step a tree lacks is reported as an error string, never a crash.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import importlib.util
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_corpus() -> ModuleType:
    path = Path(__file__).resolve().parent / "corpus.py"
    spec = importlib.util.spec_from_file_location("bench_corpus", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_corpus"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus()
# --quick leaves out the case that alone would take most of its time (8 s of CPU).
QUICK_SKIP = {"in-40mb"}


def rate(func: Callable[[], object], min_seconds: float, repeats: int) -> float:
    """Median emails per CPU-second of `func` over `repeats` rounds."""
    func()  # warm-up: imports, caches, first-call allocations
    rounds: list[float] = []
    for _ in range(repeats):
        calls, started = 0, time.process_time()
        while True:
            func()
            calls += 1
            spent = time.process_time() - started
            if spent >= min_seconds:
                break
        rounds.append(calls / spent)
    return statistics.median(rounds)


# -- inbound ----------------------------------------------------------------------------


def floor_inbound(raw: bytes) -> object:
    import nh3

    message = email.message_from_bytes(raw, policy=email.policy.default)
    found: list[object] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "text" and not part.is_attachment():
            text = part.get_content()
            found.append(nh3.clean(text) if part.get_content_subtype() == "html" else text)
        else:
            found.append(part.get_payload(decode=True))
    return found


def rust_inbound(raw: bytes) -> object:
    import fast_mail_parser

    return fast_mail_parser.parse_email(raw)


def mailflow_inbound() -> tuple[Callable[[bytes], object], Callable[[bytes], object]]:
    """(parse+body, full core) of the tree under test."""
    from mailflow.inbound import attachments, message
    from mailflow.inbound.parse import parse_file
    from mailflow.inbound.routing import Destination
    from mailflow.settings import load_settings

    settings = load_settings(domains=["example.com"], apps=["app1", "app2"])
    config = settings.inbound

    def parse_body(raw: bytes) -> tuple[Any, Any]:
        parsed = parse_file(io.BytesIO(raw))
        return parsed, message.readable_body(parsed, sanitize=config.sanitize_html)

    def full(raw: bytes) -> object:
        from mailflow.contracts.inbound import Attachment, RawEmailLocation

        parsed, body = parse_body(raw)
        stored = []
        names = attachments.attachment_names(parsed)
        for index, (part, name) in enumerate(zip(parsed.attachments, names, strict=True)):
            found = attachments.inspect(part, name, config)
            stored.append(
                Attachment(
                    id=f"id-{index}",
                    filename=name,
                    content_type=part.content_type,
                    size=len(found.data),
                    checksum=found.checksum,
                    s3_bucket="mailflow-attachments",
                    s3_key=f"inbound/app1/2026-03-03/id-{index}",
                    presigned_url="https://example.invalid/x",
                    disposition=part.disposition,
                )
            )
        built = message.build_message(
            parsed=parsed,
            body=body,
            destination=Destination(
                key="app1", domain="example.com", recipients=["_app1@example.com"]
            ),
            ses_message_id="bench0000000000000000000000",
            raw=RawEmailLocation(s3_bucket="mailflow-raw", s3_key="inbound/bench"),
            received_at=datetime(2026, 3, 3, tzinfo=UTC),
            verdicts=parsed.ses_verdicts,
            attachments=stored,
            recipient_source="envelope",
            now=datetime.now(UTC),
        )
        return built.to_wire()

    return parse_body, full


# -- outbound ---------------------------------------------------------------------------


def floor_outbound(case: Any) -> Callable[[], bytes]:
    def build() -> bytes:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = "App One <_app1@example.com>"
        msg["To"] = "customer1@example.net"
        msg["Subject"] = case.subject
        msg["Message-ID"] = "<bench.app1@example.com>"
        msg["Date"] = "Tue, 03 Mar 2026 10:15:00 +0000"
        if case.text is not None:
            msg.set_content(case.text, charset="utf-8")
            if case.html is not None:
                msg.add_alternative(case.html, subtype="html", charset="utf-8")
        else:
            msg.set_content(case.html or "", subtype="html", charset="utf-8")
        for a in case.attachments:
            maintype, _, subtype = a.content_type.partition("/")
            msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
        return msg.as_bytes()

    return build


def mailflow_outbound(case: Any) -> Callable[[], bytes]:
    from mailflow.outbound.compose import LoadedAttachment, compose, message_id_for
    from mailflow.outbound.validation import parse_message, validate
    from mailflow.settings import load_settings

    settings = load_settings(domains=["example.com"], apps=["app1", "app2"])
    body = corpus.outbound_json(case, "pure-1", settings.attachments_bucket, 1)
    validated = validate(parse_message(body, settings), settings)
    loaded = [LoadedAttachment(a.filename, a.content_type, a.data) for a in case.attachments]
    message_id = message_id_for(validated)
    date = datetime(2026, 3, 3, tzinfo=UTC)

    def build() -> bytes:
        return compose(validated, loaded, message_id=message_id, date=date, send_token="t" * 32)

    return build


def measure(name: str, make: Callable[[], Callable[[], object]], args: argparse.Namespace) -> Any:
    """emails per CPU-second, or the error that stopped this step (a tree may lack it)."""
    try:
        func = make()
        return rate(func, args.min_seconds, args.repeats)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    args.min_seconds, args.repeats = (0.05, 1) if args.quick else (0.5, 5)
    only = set(filter(None, args.only.split(",")))
    skip = QUICK_SKIP if args.quick else set()
    results: dict[str, dict[str, Any]] = {}
    try:
        parse_body, full = mailflow_inbound()
        mailflow_error = None
    except Exception as exc:
        mailflow_error = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    for case in corpus.INBOUND:
        if (only and case.name not in only) or case.name in skip:
            continue
        raw = corpus.numbered(case.raw(), 1)
        row: dict[str, Any] = {"bytes": len(raw)}
        if mailflow_error is None:
            row["mailflow parse+body"] = measure("p", lambda r=raw: lambda: parse_body(r), args)
            row["mailflow full core"] = measure("f", lambda r=raw: lambda: full(r), args)
        else:
            row["mailflow parse+body"] = row["mailflow full core"] = mailflow_error
        row["stdlib + nh3 floor"] = measure("s", lambda r=raw: lambda: floor_inbound(r), args)
        row["Rust parser"] = measure("r", lambda r=raw: lambda: rust_inbound(r), args)
        results[case.name] = row
    for out in corpus.outbound_cases():
        if (only and out.name not in only) or out.name in skip:
            continue
        results[out.name] = {
            "mailflow compose": measure("c", lambda c=out: mailflow_outbound(c), args),
            "stdlib build": measure("b", lambda c=out: floor_outbound(c), args),
        }
    import mailflow

    print(json.dumps({"mailflow": mailflow.__file__, "results": results}))


if __name__ == "__main__":
    main()
