"""docker-compose.yml, run for real: LocalStack + SES v2 (moto) + init + worker + Prometheus.

Needs a Docker engine with the compose plugin and every image the stack names, present
or pullable (`built_images` in tests/conftest.py skips with the reason otherwise; on a
machine without a registry, ../shared/lab builds them). The stack runs as its own compose
project on free loopback ports, so a developer's stack or a LocalStack on 4566 is left
alone. The tests run in file order on one stack; the last one stops the worker.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
import yaml

from tests.helpers import COMPOSE_FILE, ROOT, docker_compose, free_port

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

PROJECT = "mailflow-test-stack"
OUTBOUND_EXAMPLE = ROOT / "docs" / "examples" / "outbound.json"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """Call `probe` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {last!r})")


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Stack:
    """One running compose project, seen from the host through its published ports."""

    ports: dict[str, int]
    started_in: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()}

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> Any:
        return docker_compose(*args, project=PROJECT, env=self.env, check=check, timeout=timeout)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def container(self, service: str) -> str:
        return str(self.compose("ps", "-aq", service).stdout.strip())

    def inspect(self, service: str, template: str) -> str:
        """`docker inspect --format TEMPLATE` of the service's (first) container."""
        result = subprocess.run(
            ["docker", "inspect", "--format", template, self.container(service)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return result.stdout.strip()

    def logs(self, service: str) -> str:
        return str(self.compose("logs", "--no-color", service, check=False).stdout)

    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.url("localstack"),
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def app_messages(self, app: str, match: Callable[[dict[str, Any]], bool]) -> Any:
        """Receive (and delete) from mailflow-<app>; the first body `match` accepts."""
        sqs = self.sqs()
        url = sqs.get_queue_url(QueueName=f"mailflow-{app}")["QueueUrl"]
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            self.received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return next((m for m in self.received if match(m)), None)


def _diagnose(stack: Stack) -> str:
    ps = stack.compose("ps", "-a", check=False).stdout
    logs = "\n".join(
        f"--- {s}:\n" + "\n".join(stack.logs(s).splitlines()[-15:]) for s in ("init", "worker")
    )
    return f"{ps}\n{logs}"


@pytest.fixture(scope="module")
def stack(built_images: str) -> Iterator[Stack]:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    published = [name for name, s in services.items() if s.get("ports")]
    running = Stack(ports={name: free_port() for name in published})
    running.compose("down", "-v", "--remove-orphans", check=False)  # a crashed earlier run
    start = time.monotonic()
    up = running.compose("up", "-d", check=False)
    try:
        assert up.returncode == 0, f"compose up failed:\n{up.stderr[-3000:]}\n{_diagnose(running)}"

        def healthy() -> bool:
            return running.inspect("worker", "{{.State.Health.Status}}") == "healthy"

        try:
            wait_for("worker healthy", healthy, timeout=180, every=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(running)}") from None
        running.started_in = time.monotonic() - start
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)


def test_init_provisions_everything_then_exits_0(stack: Stack) -> None:
    assert stack.inspect("init", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    lines = [
        line.split("|", 1)[-1].strip()
        for line in stack.logs("init").splitlines()
        if "| ok " in line
    ]
    assert "ok  queue mailflow-inbound (+ mailflow-inbound-dlq)" in lines
    assert "ok  queue mailflow-app1 (+ mailflow-app1-dlq)" in lines
    assert "ok  bucket mailflow-raw" in lines
    assert "ok  table mailflow-idempotency (TTL on expiresAt)" in lines
    # SES v2 identities: created on the moto service, since LocalStack has no SES v2.
    assert "ok  SES identity example.com" in lines
    assert stack.inspect("sesv2", "{{.State.Health.Status}}") == "healthy"


def test_worker_is_healthy_and_ready(stack: Stack) -> None:
    assert stack.started_in < 180
    assert http_get(stack.url("worker", "/healthz"))[0] == 200
    assert http_get(stack.url("worker", "/readyz"))[0] == 200
    # The worker runs as the image's non-root user on a read-only root, without tmpfs.
    assert stack.inspect("worker", "{{.Config.User}}") == "10001:10001"
    assert stack.inspect("worker", "{{.HostConfig.ReadonlyRootfs}}") == "true"
    assert stack.inspect("worker", "{{json .HostConfig.Tmpfs}}") in {"null", "{}"}


def test_provision_names_a_service_localstack_lacks(stack: Stack) -> None:
    """Without the SES v2 endpoint, `provision` against LocalStack alone fails in one line."""
    result = stack.compose(
        "run", "--rm", "--no-deps", "-e", "AWS_ENDPOINT_URL_SESV2=", "init", check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "is not available" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("mailflow provision: sesv2 is not available at")
    assert "http://localstack:4566 (HTTP 501 InternalFailure" in errors[0]
    assert "AWS_ENDPOINT_URL_SESV2" in errors[0]
    assert "ok  " not in result.stdout  # nothing was created
    assert "Traceback" not in result.stdout + result.stderr


def test_injected_mail_reaches_the_app_queue(stack: Stack, tmp_path: Path) -> None:
    tag = f"stack-{uuid.uuid4().hex[:12]}"
    eml = tmp_path / "in.eml"
    eml.write_bytes(
        (
            f"From: Sender <sender@example.net>\r\nTo: support@example.com\r\n"
            f"Subject: {tag}\r\nMessage-ID: <{tag}@example.net>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nhello from the compose test\r\n"
        ).encode()
    )
    eml.chmod(0o644)
    tmp_path.chmod(0o755)
    injected = stack.compose(
        "run", "--rm", "--no-deps", "-v", f"{eml}:/mail/in.eml:ro",
        "worker", "inject", "/mail/in.eml", "--to", "support@example.com",
    )  # fmt: skip
    assert "injected /mail/in.eml as SES message" in injected.stdout

    def routed() -> Any:
        return stack.app_messages("app1", lambda m: m.get("email", {}).get("subject") == tag)

    message = wait_for("the injected mail on mailflow-app1", routed, timeout=60)
    assert message["type"] == "email.received"
    assert message["metadata"]["routingKey"] == "app1"
    assert message["email"]["body"]["text"].strip() == "hello from the compose test"


def _sent_by_moto(stack: Stack, subject: str) -> list[dict[str, Any]]:
    _, body = http_get(stack.url("sesv2", "/moto-api/data.json"), timeout=10)
    raw = json.loads(body).get("ses", {}).get("RawMessage", [])
    return [m for m in raw if f"Subject: {subject}" in m.get("raw_data", "")]


def test_readme_outbound_example_is_sent(stack: Stack) -> None:
    example = json.loads(OUTBOUND_EXAMPLE.read_text())
    queued = stack.compose(
        "run", "--rm", "--no-deps", "-v", f"{OUTBOUND_EXAMPLE}:/mail/out.json:ro",
        "worker", "send", "/mail/out.json",
    )  # fmt: skip
    assert "queued on mailflow-outbound" in queued.stdout
    subject = example["email"]["subject"]
    (mail,) = wait_for("the example in SES's sent mail", lambda: _sent_by_moto(stack, subject), 60)
    # moto lists a To address twice (envelope + header); AWS would list it once.
    assert set(mail["destinations"]) == {example["email"]["to"][0]["address"]}
    event = wait_for(
        "the email.sent event on mailflow-app1",
        lambda: stack.app_messages("app1", lambda m: m.get("type") == "email.sent"),
        timeout=60,
    )
    assert event["correlationId"] == example["correlation_id"]
    assert event["sesMessageId"] == mail["id"]


def test_the_peek_command_works_in_the_container(stack: Stack) -> None:
    result = stack.compose("run", "--rm", "--no-deps", "worker", "peek", "dlq")
    assert result.stdout.strip() == "", f"failure records on the DLQ: {result.stdout[:2000]}"


def test_prometheus_scrapes_the_worker(stack: Stack) -> None:
    def query(expr: str) -> list[dict[str, Any]]:
        url = stack.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        status, body = http_get(url)
        assert status == 200, body
        return list(json.loads(body)["data"]["result"])

    up = wait_for(
        "Prometheus scraping worker:8080 (up == 1)",
        lambda: [r for r in query('up{job="mailflow"}') if r["value"][1] == "1"],
        timeout=90,
        every=3,
    )
    assert up[0]["metric"]["instance"] == "worker:8080"
    series = wait_for(
        "mailflow_* series in Prometheus",
        lambda: query('count({__name__=~"mailflow_.+", job="mailflow"})'),
        timeout=60,
        every=3,
    )
    assert int(series[0]["value"][1]) > 10


def test_worker_drains_on_sigterm_and_exits_0(stack: Stack) -> None:
    """Last: `compose stop` sends SIGTERM; the worker drains and exits 0 before the grace."""
    started = time.monotonic()
    stack.compose("stop", "worker", timeout=120)
    took = time.monotonic() - started
    assert stack.inspect("worker", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    assert stack.inspect("worker", "{{.State.OOMKilled}}") == "false"
    logs = stack.logs("worker")
    assert "worker.stopping" in logs
    assert "SIGTERM" in logs
    assert "worker.stopped" in logs
    grace = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["worker"]["stop_grace_period"]
    assert took < float(grace.rstrip("s")), f"stop took {took:.1f} s: killed, not drained?"
