"""`mailflow local` end to end: mail sent by SMTP appears in the app's queue."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import boto3
import pytest

from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.slow


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mailflow local exited:\n{log.read_text(errors='replace')}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                client.noop()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"SMTP port {port} never answered:\n{log.read_text(errors='replace')}")


def test_smtp_mail_reaches_the_app_queue(tmp_path: Path) -> None:
    aws_port, smtp_port, http_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILFLOW_", "AWS_"))}
    env.update({"MAILFLOW_HTTP_PORT": str(http_port), "MAILFLOW_WAIT_TIME_SECONDS": "1"})
    log = tmp_path / "local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailflow", "local", "--port", str(aws_port),
             "--smtp-port", str(smtp_port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        try:
            wait_for_port(smtp_port, proc, log)
            message = EmailMessage()
            message["From"] = "Dev <dev@sender.test>"
            message["To"] = "_app1@example.com"
            message["Subject"] = "Hello over SMTP"
            message.set_content("swaks would do the same.")
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                client.send_message(message)
            sqs = boto3.client(
                "sqs", endpoint_url=f"http://127.0.0.1:{aws_port}", region_name="us-east-1",
                aws_access_key_id="mailflow-local", aws_secret_access_key="mailflow-local",
            )  # fmt: skip
            url = sqs.get_queue_url(QueueName="mailflow-app1")["QueueUrl"]
            bodies: list[str] = []
            deadline = time.monotonic() + 30
            while not bodies and time.monotonic() < deadline:
                response = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
                bodies = [m["Body"] for m in response.get("Messages", [])]
        finally:
            proc.terminate()
            proc.wait(timeout=40)
    assert bodies, log.read_text(errors="replace")
    received = json.loads(bodies[0])
    assert received["email"]["subject"] == "Hello over SMTP"
    assert received["metadata"]["recipients"] == ["_app1@example.com"]
