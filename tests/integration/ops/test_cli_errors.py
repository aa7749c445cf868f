"""Every mistake a newcomer makes on the command line is one line, never a traceback.

The real `mailflow` command in a subprocess, against the test endpoint. Exit 2 means
"fix your input or configuration", 1 a runtime failure. Each operator command first
says which endpoint it acts on; without one it refuses to touch a real account.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailflow.settings import Settings
from tests.helpers import ROOT

BASE = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "MAILFLOW_DOMAINS": "example.com",
    "MAILFLOW_APPS": "app1,app2",
}


def mailflow(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "mailflow", *args],
        check=False,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    error = lines[-1]
    # At most the "acting on <endpoint>" line before it.
    assert len(lines) <= 2, result.stderr
    for word in words:
        assert word in error, error
    return error


@pytest.fixture
def local_env(provisioned: Settings) -> dict[str, str]:
    assert provisioned.aws_endpoint_url
    return {**BASE, "AWS_ENDPOINT_URL": provisioned.aws_endpoint_url}


def test_a_missing_file(local_env: dict[str, str]) -> None:
    result = mailflow("send", "missing.json", env=local_env)
    one_line_error(result, 2, "cannot read missing.json", "No such file")
    result = mailflow("inject", "missing.eml", "--to", "_app1@example.com", env=local_env)
    one_line_error(result, 2, "cannot read missing.eml")


def test_a_queue_that_does_not_exist(local_env: dict[str, str]) -> None:
    result = mailflow("peek", "app1-dlq-nope", env=local_env)
    one_line_error(result, 2, "app1-dlq-nope", "does not exist", "mailflow provision")


def test_no_endpoint_refuses_to_touch_a_real_account() -> None:
    for command in (["peek", "app1"], ["send", "x.json"], ["provision"], ["redrive"]):
        result = mailflow(*command, env=BASE)
        one_line_error(result, 2, "AWS_ENDPOINT_URL is not set", "--aws")


def test_no_credentials_says_what_to_export(local_env: dict[str, str]) -> None:
    env = {k: v for k, v in local_env.items() if not k.startswith("AWS_ACCESS_KEY_ID")}
    env.pop("AWS_SECRET_ACCESS_KEY")
    result = mailflow("peek", "app1", env=env)
    one_line_error(result, 2, "no AWS credentials", "AWS_ENDPOINT_URL")


def test_an_endpoint_that_does_not_answer() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = mailflow("peek", "app1", env={**BASE, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    one_line_error(result, 1, "cannot reach", str(port))


def test_a_misspelt_setting() -> None:
    result = mailflow("check-config", env={**BASE, "MAILFLOW_CONCURENCY": "3"})
    one_line_error(result, 2, "MAILFLOW_CONCURENCY", "MAILFLOW_CONCURRENCY")


def test_usage_mistakes(local_env: dict[str, str]) -> None:
    one_line_error(mailflow("peek", env=local_env), 2, "required: queue")
    one_line_error(mailflow("nope", env=local_env), 2, "invalid choice")
    result = mailflow(
        "inject", "tests/fixtures/eml/plain.eml", "--to", "_app1@example.com",
        "--verdict", "virus", env=local_env,
    )  # fmt: skip
    one_line_error(result, 2, "--verdict 'virus' is not NAME=STATUS")


def test_local_with_a_port_taken_fails_at_once() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = mailflow("local", "--port", "0", "--http-port", str(port), env=BASE)
    one_line_error(result, 2, "port in use", f"--http-port {port}")


def test_debug_shows_the_traceback(local_env: dict[str, str]) -> None:
    result = mailflow("--debug", "send", "missing.json", env=local_env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_an_operator_command_names_its_endpoint(local_env: dict[str, str]) -> None:
    result = mailflow("peek", "app1", env=local_env)
    assert result.returncode == 0, result.stderr
    assert f"mailflow peek: endpoint {local_env['AWS_ENDPOINT_URL']}, region us-east-1" in (
        result.stderr
    )
