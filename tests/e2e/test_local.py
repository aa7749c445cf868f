"""`mailflow local`, the README's main command, on a bare machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import ROOT, free_port


def test_local_starts_embedded_aws_and_becomes_ready_within_10s(tmp_path: Path) -> None:
    http_port, aws_port, smtp_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILFLOW_", "AWS_"))}
    env["MAILFLOW_HTTP_PORT"] = str(http_port)
    log = (tmp_path / "local.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailflow",
            "local",
            "--port",
            str(aws_port),
            "--smtp-port",
            str(smtp_port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    started = time.monotonic()
    ready_after = None
    try:
        while time.monotonic() - started < 10 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        ready_after = time.monotonic() - started
                        break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
        log.close()
    text = (tmp_path / "local.log").read_text()
    assert ready_after is not None, text
    assert code == 0, text
    assert "mailflow inject" in text  # it tells the developer what to do next
    print(f"mailflow local ready after {ready_after:.2f}s")
