"""Helpers shared by integration and end-to-end tests (no pytest fixtures here)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from mailflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce `settings` in a child process."""
    env = {
        "MAILFLOW_DOMAINS": json.dumps(list(settings.domains)),
        "MAILFLOW_APPS": json.dumps(
            {app: cfg.model_dump(mode="json") for app, cfg in settings.apps.items()}
        ),
        "AWS_REGION": settings.aws_region,
    }
    if settings.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
    skip = {"domains", "apps", "aws_region", "aws_endpoint_url", "inbound", "outbound"}
    for name, value in settings.model_dump(mode="json").items():
        if name.startswith("aws_endpoint_url_"):
            # The SDK's own names (AWS_ENDPOINT_URL_SESV2, ...), only when set.
            if value:
                env[name.upper()] = str(value)
            continue
        if name in skip or value is None:
            continue
        env[f"MAILFLOW_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, list | dict) else str(value)
        )
    for section in ("inbound", "outbound"):
        for name, value in getattr(settings, section).model_dump(mode="json").items():
            if value is None:
                continue
            env[f"MAILFLOW_{section.upper()}__{name.upper()}"] = (
                json.dumps(value) if isinstance(value, list | dict) else str(value)
            )
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """The real `python -m mailflow run`, observed from outside like an operator would."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.port = int(env["MAILFLOW_HTTP_PORT"])
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailflow", "run"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Seconds until /readyz answered 200; fails with the worker's log otherwise."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.logs().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


async def within_one_clock_hour(seconds: float) -> None:
    """Wait for the next UTC hour when fewer than `seconds` are left in this one.

    Rate and loop limits count per clock hour, as they are specified to: a test that
    straddles the hour sees two fresh windows and twice the limit (CI once did, at
    01:59:55).
    """
    left = 3600 - time.time() % 3600
    if left < seconds:
        await anyio.sleep(left + 0.5)


async def receive_all(
    sqs: Any, queue_url: str, expect: int, timeout: float = 20.0, delete: bool = True
) -> list[str]:
    """Receive until `expect` bodies arrived (or timeout), deleting them; returns bodies.

    Waits a little longer after reaching `expect` only when asked for more than expected
    would be a bug; callers assert on the count they need.
    """
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expect and time.monotonic() < deadline:
        response = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        for message in response.get("Messages", []):
            bodies.append(message["Body"])
            if delete:
                await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not response.get("Messages"):
            await anyio.sleep(0.2)
    return bodies


async def queue_count(sqs: Any, queue_url: str) -> int:
    """Visible + in flight + delayed messages (approximate, exact on moto)."""
    attrs = await sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )
    return sum(int(v) for v in attrs["Attributes"].values())


def wipe_endpoint(endpoint: str, region: str = "us-east-1", access_key: str | None = None) -> None:
    """Delete every queue, bucket (with its objects) and table at an AWS endpoint.

    LocalStack Community has no state reset (moto has `/moto-api/reset`): this is the
    endpoint-neutral equivalent for what the tests create, in the account `access_key`
    names on LocalStack (a 12-digit key is the account id there). Never point it at AWS.
    """
    import boto3

    if "amazonaws.com" in endpoint:
        raise ValueError(f"refusing to wipe {endpoint}: an AWS endpoint")
    kwargs: dict[str, Any] = {"endpoint_url": endpoint, "region_name": region}
    if access_key:
        kwargs |= {"aws_access_key_id": access_key, "aws_secret_access_key": "test"}
    sqs = boto3.client("sqs", **kwargs)
    for url in sqs.list_queues().get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
    s3 = boto3.client("s3", **kwargs)
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        while True:
            listed = s3.list_objects_v2(Bucket=name, MaxKeys=1000)
            keys = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
            if not keys:
                break
            s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    dynamodb = boto3.client("dynamodb", **kwargs)
    for table in dynamodb.list_tables().get("TableNames", []):
        dynamodb.delete_table(TableName=table)


def docker_compose(
    *args: str,
    project: str = "mailflow",
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`docker compose -p PROJECT -f docker-compose.yml ARGS...` from the repository root.

    With `check`, a non-zero exit fails the test with the command's last 40 lines.
    """
    result = subprocess.run(
        ["docker", "compose", "-p", project, "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise AssertionError(f"docker compose {' '.join(args)} exited {result.returncode}:\n{tail}")
    return result
