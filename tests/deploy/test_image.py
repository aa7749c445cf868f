"""The worker image run as Fargate runs it: read-only root, its own non-root user, no tmpfs.

Fargate gives a task's volumes root:root 0755 unless the image declares VOLUME at the
path; the image declares `VOLUME /tmp` (mode 1777), so uid 10001 can spool a mail over
8 MB there. Docker without `--tmpfs` behaves the same way (an anonymous volume copied from
the image's /tmp). The worker container shares the host's network to reach the test's
embedded moto on 127.0.0.1. Needs what `built_images` (tests/conftest.py) needs.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.ops.inject import inject
from mailflow.ops.provision import provision
from mailflow.settings import Settings
from tests.helpers import free_port, queue_count, receive_all, settings_env

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

SPOOL_THRESHOLD = 8 * 1024 * 1024
# As Fargate runs a task (plus what the Terraform module sets): no tmpfs anywhere.
FARGATE_LIKE = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])}... exited {result.returncode}:\n"
                             + result.stderr[-3000:])  # fmt: skip
    return result


def large_mail(tag: str, attachment_bytes: int) -> bytes:
    """A mail whose raw size is well over the 8 MB spool threshold (a base64 attachment)."""
    message = EmailMessage()
    message["From"] = "Sender <sender@example.net>"
    message["To"] = "_app1@example.com"
    message["Subject"] = tag
    message["Message-ID"] = f"<{tag}@example.net>"
    message.set_content("a large attachment follows\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"
    payload = (line * (attachment_bytes // len(line) + 1))[:attachment_bytes]
    message.add_attachment(payload, maintype="text", subtype="plain", filename="large.txt")
    return message.as_bytes()


class WorkerContainer:
    """`mailflow run` in the image, detached, on the host's network."""

    def __init__(self, image: str, settings: Settings, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.name = f"mailflow-test-image-{uuid.uuid4().hex[:8]}"
        env = {
            **settings_env(settings),
            "MAILFLOW_HTTP_HOST": "127.0.0.1",
            "MAILFLOW_HTTP_PORT": str(self.port),
            "MAILFLOW_LOG_FORMAT": "json",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        env_args = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        docker("run", "-d", "--name", self.name, "--network", "host", *FARGATE_LIKE,
               *extra, *env_args, image, "run")  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state()["Status"] != "running":
                raise AssertionError(f"worker container exited:\n{self.logs()}")
            try:
                url = f"http://127.0.0.1:{self.port}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.logs()}")

    def container_id(self) -> str:
        return docker("inspect", "--format", "{{.Id}}", self.name).stdout.strip()

    def state(self) -> dict[str, Any]:
        return dict(json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout))

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self) -> dict[str, Any]:
        docker("stop", "--time", "60", self.name, timeout=120)
        return self.state()

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


@contextmanager
def worker_container(
    image: str, settings: Settings, extra: Sequence[str] = ()
) -> Iterator[WorkerContainer]:
    container = WorkerContainer(image, settings, extra)
    try:
        container.wait_ready()
        yield container
    finally:
        container.remove()


def test_image_runs_as_non_root_with_tmp_a_world_writable_volume(built_images: str) -> None:
    config = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", built_images).stdout
    )
    assert config["User"] == "10001:10001"
    assert set(config["Volumes"] or {}) == {"/tmp"}
    script = (
        "import json, os, tempfile\n"
        "st = os.stat('/tmp')\n"
        "with tempfile.TemporaryFile() as f:\n"
        f"    f.write(b'x' * {SPOOL_THRESHOLD + 1024 * 1024})\n"
        "try:\n"
        "    open('/mailflow-probe', 'w')\n"
        "    root = 'writable'\n"
        "except OSError as exc:\n"
        "    root = exc.strerror\n"
        "print(json.dumps({'uid': os.getuid(), 'mode': oct(st.st_mode & 0o7777),"
        " 'owner': st.st_uid, 'tmpdir': tempfile.gettempdir(), 'root': root}))\n"
    )
    result = docker(
        "run", "--rm", *FARGATE_LIKE, "--entrypoint", "python", built_images, "-c", script
    )
    seen = json.loads(result.stdout)
    assert seen == {
        "uid": 10001,
        "mode": "0o1777",
        "owner": 0,
        "tmpdir": "/tmp",
        "root": "Read-only file system",
    }


async def test_a_mail_over_8_mb_is_handled_as_on_fargate(
    built_images: str, make_settings: Any, aws: AwsClients, provisioned: Settings
) -> None:
    tag = f"large-{uuid.uuid4().hex[:8]}"
    raw = large_mail(tag, attachment_bytes=9 * 1024 * 1024)
    assert len(raw) > SPOOL_THRESHOLD + 2 * 1024 * 1024
    with worker_container(built_images, provisioned) as worker:
        await inject(provisioned, aws, raw, ["_app1@example.com"])
        url = await aws.queues.url(provisioned.app_queue("app1"))
        bodies = await receive_all(aws.sqs, url, expect=1, timeout=90)
        assert bodies, f"nothing routed to app1:\n{worker.logs()[-4000:]}"
        message = json.loads(bodies[0])
        assert message["email"]["subject"] == tag
        (attachment,) = message["email"]["attachments"]
        assert attachment["status"] == "stored"
        assert attachment["size"] == 9 * 1024 * 1024
        dlq = await aws.queues.url(provisioned.dlq)
        assert await queue_count(aws.sqs, dlq) == 0
        state = worker.stop()
        assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False)
        assert "No usable temporary directory" not in worker.logs()


async def test_without_the_volume_the_same_mail_fails(
    built_images: str, make_settings: Any, tmp_path: Path
) -> None:
    """The control: /tmp as Fargate gives an undeclared path (root 0755) breaks the spool.

    A bind mount of a 0755 directory the worker's user does not own, because Docker copies
    the image's /tmp (mode included) into a volume or a tmpfs.
    """
    settings = make_settings(max_attempts=1, retry_base_seconds=0.1)
    tag = f"large-{uuid.uuid4().hex[:8]}"
    task_volume = tmp_path / "task-volume"
    task_volume.mkdir(mode=0o755)
    task_volume.chmod(0o755)
    assert task_volume.stat().st_uid != 10001
    root_owned = ["--mount", f"type=bind,source={task_volume},target=/tmp"]
    async with open_clients(settings) as aws:
        await provision(settings, aws)
        with worker_container(built_images, settings, extra=root_owned) as worker:
            await inject(settings, aws, large_mail(tag, 9 * 1024 * 1024), ["_app1@example.com"])
            dlq = await aws.queues.url(settings.dlq)
            bodies = await receive_all(aws.sqs, dlq, expect=1, timeout=90)
            assert bodies, f"no failure record:\n{worker.logs()[-4000:]}"
            record = json.loads(bodies[0])
            record.pop("body", None)
            # tempfile's "No usable temporary directory found in ['/tmp', ...]", while
            # spooling past 8 MB (the record keeps the exception's type, not its text).
            assert record["errorCode"] == "retries_exhausted:io_error", record
            assert record["details"]["exception"] == "FileNotFoundError", record
            assert record["reason"].startswith("reading s3://mailflow-raw/"), record
            assert "No usable temporary directory" in record["reason"], record
