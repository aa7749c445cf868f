"""The processes a benchmark run starts: the endpoint, workers, one-off tree commands.

Every process is started here and stopped in a `finally` (context managers), by its own
pid: a benchmark must not leave a moto server or a worker behind, nor touch anyone
else's processes on a shared machine.

A *tree* is a mailflow source tree (this checkout, or an older commit's copy given to
`--compare`). Its code runs only in subprocesses started with `cwd=tree` and
`PYTHONPATH=tree`, so `import mailflow` resolves there; `Tree.probe` asks the tree what
it is (its `mailflow.__file__`, its settings and their defaults), which is how settings
one tree lacks are left out instead of making its worker refuse to start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
MAIN = BENCH.parent
HARNESS_KEY = "benchharness"
WORKER_KEY = "benchworker"
SECRET = "bench"  # noqa: S105  (moto checks no signature)

_PROBE = """
import json, sys
import mailflow
out = {"file": mailflow.__file__, "settings": {}}
def defaults(model):
    fields = {}
    for name, f in model.model_fields.items():
        value = f.default
        fields[name] = value if isinstance(value, (int, float, str, bool, type(None))) else None
    return fields
try:
    from mailflow.settings import Settings
    out["settings"]["root"] = defaults(Settings)
except Exception as exc:
    out["error"] = repr(exc)
for section, path, name in (
    ("inbound", "mailflow.inbound.config", "InboundSettings"),
    ("outbound", "mailflow.outbound.config", "OutboundSettings"),
):
    try:
        module = __import__(path, fromlist=[name])
        out["settings"][section] = defaults(getattr(module, name))
    except Exception as exc:
        out.setdefault("missing", []).append(f"{path}.{name}: {exc!r}")
print(json.dumps(out))
"""


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that would steer mailflow or the SDK."""
    drop = ("MAILFLOW_", "AWS_", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass
class Tree:
    """A mailflow source tree and what it says about itself."""

    label: str
    root: Path
    probe: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**clean_environ(), "PYTHONPATH": str(self.root)}

    def load(self) -> Tree:
        result = subprocess.run(  # noqa: S603  (our interpreter, our code)
            [sys.executable, "-c", _PROBE],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.root}: cannot import mailflow:\n{result.stderr[-2000:]}")
        self.probe = json.loads(result.stdout)
        where = Path(self.probe["file"]).resolve()
        if not where.is_relative_to(self.root.resolve()):
            raise RuntimeError(f"{self.root}: `import mailflow` resolved to {where}")
        return self

    def has(self, section: str, name: str) -> bool:
        return name in self.probe.get("settings", {}).get(section, {})

    def default(self, section: str, name: str, fallback: Any) -> Any:
        value = self.probe.get("settings", {}).get(section, {}).get(name)
        return fallback if value is None else value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, method: str = "GET", timeout: float = 30.0) -> bytes:
    request = urllib.request.Request(url, method=method)  # noqa: S310  (our local endpoint)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return bytes(response.read())


class Endpoint:
    """bench/endpoint.py in a process of its own: moto plus the call counter."""

    def __init__(self, log_path: Path) -> None:
        self._log = log_path.open("wb")  # moto's tracebacks of its own 500s land here
        self.proc = subprocess.Popen(  # noqa: S603  (our interpreter, our script)
            [sys.executable, str(BENCH / "endpoint.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=MAIN,
            env={**clean_environ(), "PYTHONPATH": str(MAIN)},
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError("bench/endpoint.py did not start")
        self.ps = psutil.Process(self.proc.pid)

    def calls(self) -> dict[str, dict[str, list[int]]]:
        """{access key: {"service:Operation": [calls, request bytes, 5xx answers]}}."""
        data: dict[str, dict[str, list[int]]] = json.loads(http(f"{self.url}/_bench/calls"))
        return data

    def reset(self) -> None:
        """Forget every queue, bucket, table and sent email, and the call counts."""
        http(f"{self.url}/moto-api/reset", method="POST")
        http(f"{self.url}/_bench/reset", method="POST")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            _wait_or_kill(self.proc, 15)
        self._log.close()


@contextmanager
def endpoint(log_path: Path) -> Iterator[Endpoint]:
    ep = Endpoint(log_path)
    try:
        yield ep
    finally:
        ep.stop()


def worker_env(tree: Tree, endpoint_url: str, http_port: int, key: str) -> dict[str, str]:
    """The environment of a worker (and of the tree's CLI) against the bench endpoint.

    Production-like: both consumers plus the SES events consumer, a configuration set,
    INFO logs as JSON to a file. Three settings differ from the defaults, each only when
    the tree has it: the writer check is off (moto reports one SenderId for every
    writer), the assumed SES rate is unlimited (moto has no GetAccount, and the default
    1/s would measure the limiter), and the queue-depth gauges and send-rate roster beat
    once an hour instead of every 30 s / 15 s, so that per-email figures do not depend on
    whether a periodic tick fell inside a short drain window.
    """
    env = {
        **tree.env(),
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "MAILFLOW_DOMAINS": "example.com",
        "MAILFLOW_APPS": "app1,app2",
        "MAILFLOW_HTTP_HOST": "127.0.0.1",
        "MAILFLOW_HTTP_PORT": str(http_port),
    }
    optional = {
        ("root", "ses_events_queue"): ("MAILFLOW_SES_EVENTS_QUEUE", "mailflow-ses-events"),
        ("root", "queue_depth_interval_seconds"): (
            "MAILFLOW_QUEUE_DEPTH_INTERVAL_SECONDS",
            "3600",
        ),
        ("outbound", "writer_identity"): ("MAILFLOW_OUTBOUND__WRITER_IDENTITY", "off"),
        ("outbound", "configuration_set"): ("MAILFLOW_OUTBOUND__CONFIGURATION_SET", "mailflow"),
        ("outbound", "default_send_rate"): ("MAILFLOW_OUTBOUND__DEFAULT_SEND_RATE", "100000"),
        ("outbound", "roster_refresh_seconds"): (
            "MAILFLOW_OUTBOUND__ROSTER_REFRESH_SECONDS",
            "3600",
        ),
    }
    for (section, name), (variable, value) in optional.items():
        if tree.has(section, name):
            env[variable] = value
    return env


def provision(tree: Tree, endpoint_url: str) -> None:
    """`mailflow provision` of the tree under test: the resources its worker expects."""
    result = subprocess.run(
        [sys.executable, "-m", "mailflow", "provision"],
        cwd=tree.root,
        env=worker_env(tree, endpoint_url, 0, HARNESS_KEY),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mailflow provision failed:\n{result.stderr[-2000:]}")


class Worker:
    """`python -m mailflow run` of one tree, observed from outside (psutil, /proc)."""

    def __init__(self, tree: Tree, endpoint_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailflow", "run"],
            cwd=tree.root,
            env=worker_env(tree, endpoint_url, self.port, WORKER_KEY),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}: {self.tail()}")
            try:
                if http(f"http://127.0.0.1:{self.port}/readyz", timeout=2) is not None:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout:.0f} s: {self.tail()}")

    def complaints(self, limit: int = 3) -> list[str]:
        """The distinct errors the worker logged (warning and above with an error), first
        `limit`: what to show when a drain did not complete."""
        found: list[str] = []
        self._log.flush()
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("level") not in {"warning", "error"}:
                continue
            text = f"{event.get('event')}: {event.get('error') or event.get('error_code', '')}"
            if "error" in event and text not in found:
                found.append(text[:200])
            if len(found) >= limit:
                break
        return found

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def status_kib(self, field_name: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{field_name} not in /proc/{self.proc.pid}/status")

    def reset_peak(self) -> None:
        """VmHWM back to the current RSS (Linux: writing 5 to clear_refs)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def terminate(self) -> None:
        """SIGTERM (the worker drains and exits); `stop` waits for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            _wait_or_kill(self.proc, 20)
        self._log.close()


@contextmanager
def workers(
    tree: Tree, endpoint_url: str, count: int, log_dir: Path, name: str
) -> Iterator[list[Worker]]:
    """`count` workers of `tree`, ready; all stopped on the way out, whatever happened.

    Their logs go to `log_dir/<tree>-<name>-<n>.log` (kept: the place to look when a
    figure is odd or a worker refused to start).
    """
    started: list[Worker] = []
    try:
        for n in range(count):
            log = log_dir / f"{tree.label}-{name}-{n}.log"
            started.append(Worker(tree, endpoint_url, log))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:  # all drain at once, then each is waited for
            worker.terminate()
        for worker in started:
            worker.stop()


def _wait_or_kill(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Give a process asked to stop `timeout` seconds to exit, then kill it."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
