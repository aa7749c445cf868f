"""Getting mail in during development: `mailflow inject` and the SMTP listener."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients
from mailflow.inbound.notification import decode
from mailflow.local.smtp import serve_smtp
from mailflow.settings import Settings
from tests.helpers import ROOT, free_port, settings_env
from tests.integration.inbound.support import collect, handle_next, next_inbound

EML = ROOT / "tests" / "fixtures" / "eml"


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "mailflow", *args],
        env={**env, **settings_env(settings)},
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


async def test_inject_cli_sends_an_sns_wrapped_ses_notification(
    provisioned: Settings, aws: AwsClients
) -> None:
    result = await anyio.to_thread.run_sync(
        lambda: run_cli(
            provisioned,
            "inject",
            str(EML / "plain.eml"),
            "--to",
            "_app1@example.com",
            "support@example.org",
            "--verdict",
            "spam=FAIL",
        )
    )
    assert result.returncode == 0, result.stderr
    message = await next_inbound(provisioned, aws)
    envelope = json.loads(message.body)
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"].startswith("arn:aws:sns:")
    inner = json.loads(envelope["Message"])
    assert inner["notificationType"] == "Received"
    assert inner["receipt"]["action"]["type"] == "S3"
    assert inner["mail"]["commonHeaders"]["subject"] == "Plain text hello"
    note = decode(message.body)
    assert note is not None
    assert note.recipients == ("_app1@example.com", "support@example.org")
    assert note.verdicts.spam == "FAIL"
    assert note.verdicts.virus == "PASS"
    assert note.ses_message_id in result.stdout
    stored = await aws.s3.get_object(Bucket=note.bucket, Key=note.key)
    raw = await stored["Body"].read()
    assert raw.endswith(Path(EML / "plain.eml").read_bytes())
    assert raw.startswith(b"Return-Path: <alice@sender.test>")


def test_inject_cli_requires_recipients(settings: Settings) -> None:
    result = run_cli(settings, "inject", str(EML / "plain.eml"))
    assert result.returncode == 2
    assert "--to" in result.stderr


async def test_smtp_listener_delivers_like_ses(provisioned: Settings, aws: AwsClients) -> None:
    port = free_port()
    message = EmailMessage()
    message["From"] = "dev@sender.test"
    message["To"] = "_app1@example.com"
    message["Subject"] = "Über SMTP"
    message.set_content("Sent with smtplib.")

    def send() -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            refused = client.send_message(
                message, to_addrs=["_app1@example.com", "_app2@example.com", "x@elsewhere.test"]
            )
        return dict(refused)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_smtp, provisioned, aws, "127.0.0.1", port)
        with anyio.fail_after(10):  # until the listener accepts connections
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.02)
        refused = await anyio.to_thread.run_sync(send)
        tg.cancel_scope.cancel()
    assert list(refused) == ["x@elsewhere.test"]
    assert refused["x@elsewhere.test"][0] == 550
    await handle_next(provisioned, aws)
    queues = {"app1": provisioned.app_queue("app1"), "app2": provisioned.app_queue("app2")}
    found = await collect(aws, queues, expect=2, timeout=10)
    for app in ("app1", "app2"):
        [received] = found[app]
        assert received["email"]["subject"] == "Über SMTP"
        assert received["metadata"]["recipients"] == [f"_{app}@example.com"]
        assert received["email"]["from"]["address"] == "dev@sender.test"


@pytest.mark.parametrize("shape", ["raw", "s3"])
async def test_other_notification_shapes_are_delivered(
    shape: str, provisioned: Settings, aws: AwsClients
) -> None:
    from mailflow.ops.inject import inject

    await inject(
        provisioned, aws, (EML / "plain.eml").read_bytes(), ["_app2@example.com"], shape=shape
    )  # type: ignore[arg-type]
    await handle_next(provisioned, aws)
    found = await collect(aws, {"app2": provisioned.app_queue("app2")}, expect=1, timeout=5)
    assert found["app2"][0]["email"]["subject"] == "Plain text hello"


def test_inject_cli_names_an_unreadable_file(settings: Settings) -> None:
    result = run_cli(settings, "inject", "/nonexistent/mail.eml", "--to", "_app1@example.com")
    assert result.returncode == 2
    assert "cannot read /nonexistent/mail.eml" in result.stderr
    assert "Traceback" not in result.stderr
