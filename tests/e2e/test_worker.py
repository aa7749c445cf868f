"""The worker as a process: configuration errors, readiness, SIGTERM drain."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.helpers import ROOT, WorkerProcess, free_port, queue_count, receive_all, settings_env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailflow", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_bad_configuration_exits_non_zero_naming_the_variable() -> None:
    result = run_cli({"MAILFLOW_DOMAINS": "example.com", "MAILFLOW_CONCURRENCY": "lots"}, "run")
    assert result.returncode == 2
    assert "MAILFLOW_CONCURRENCY" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_required_variable_is_named() -> None:
    result = run_cli({}, "check-config")
    assert result.returncode == 2
    assert "MAILFLOW_DOMAINS" in result.stderr


def test_invalid_apps_json_is_named() -> None:
    result = run_cli({"MAILFLOW_DOMAINS": "example.com", "MAILFLOW_APPS": '{"app1": '}, "run")
    assert result.returncode == 2
    assert "MAILFLOW_APPS" in result.stderr


def test_check_config_prints_resolved_configuration() -> None:
    result = run_cli(
        {"MAILFLOW_DOMAINS": "Example.com", "MAILFLOW_APPS": "app1,app2"}, "check-config"
    )
    assert result.returncode == 0, result.stderr
    assert '"example.com"' in result.stdout
    assert '"app2"' in result.stdout


def test_missing_resources_are_named_at_start(settings: Settings) -> None:
    env = settings_env(settings)  # nothing provisioned on this fresh endpoint
    result = run_cli(env, "run")
    assert result.returncode == 2
    assert "queue 'mailflow-inbound'" in result.stderr
    assert "table 'mailflow-idempotency'" in result.stderr


async def test_sigterm_during_a_slow_handler_lets_it_finish(
    provisioned: Settings, aws: AwsClients, tmp_path: Path
) -> None:
    env = {
        **settings_env(provisioned),
        "MAILFLOW_HTTP_PORT": str(free_port()),
        "SLOW_SECONDS": "3",
        "PYTHONPATH": str(ROOT),
    }
    inbound = await aws.queues.url(provisioned.inbound_queue)
    for i in range(3):
        await aws.sqs.send_message(QueueUrl=inbound, MessageBody=f"m{i}")
    log = (tmp_path / "slow.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "e2e" / "slow_worker.py")],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while await visible(aws, inbound) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert await queue_count(aws.sqs, inbound) == 3  # all three in flight, none done
        with urllib.request.urlopen(f"http://127.0.0.1:{env['MAILFLOW_HTTP_PORT']}/metrics") as r:
            metrics_text = r.read().decode()
        assert 'mailflow_in_flight{direction="inbound"} 3.0' in metrics_text
        assert 'mailflow_messages_received_total{direction="inbound"} 3.0' in metrics_text
        assert 'mailflow_queue_depth{queue="mailflow-inbound",state="in_flight"}' in metrics_text
        proc.terminate()  # SIGTERM, mid-handler
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        log.close()
    done = await aws.queues.url(provisioned.default_queue)
    assert sorted(await receive_all(aws.sqs, done, expect=3, timeout=5)) == [
        "done:m0",
        "done:m1",
        "done:m2",
    ]
    assert await queue_count(aws.sqs, inbound) == 0  # finished work was deleted: nothing lost
    text = (tmp_path / "slow.log").read_text()
    assert "worker.stopping" in text
    assert "worker.stopped" in text


async def visible(aws: AwsClients, url: str) -> int:
    attrs = await aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_worker_process_helper_reports_exit(tmp_path: Path) -> None:
    """The helper every e2e test relies on surfaces a dead worker with its log."""
    proc = WorkerProcess({"MAILFLOW_HTTP_PORT": str(free_port())}, tmp_path / "w.log")
    try:
        with pytest.raises(AssertionError, match="MAILFLOW_DOMAINS"):
            proc.wait_ready(timeout=10)
    finally:
        proc.stop()


async def test_worker_logs_are_json_with_message_context_and_redacted(
    provisioned: Settings, aws: AwsClients, worker_process: Any
) -> None:
    raw = (ROOT / "tests" / "fixtures" / "eml" / "plain.eml").read_bytes()
    with worker_process(provisioned) as worker:
        worker.wait_ready()
        ses_id = await inject(provisioned, aws, raw, ["_app1@example.com"])
        app1 = await aws.queues.url(provisioned.app_queue("app1"))
        assert len(await receive_all(aws.sqs, app1, expect=1, timeout=20)) == 1
        expected = (
            'mailflow_messages_handled_total{app="app1",direction="inbound",outcome="success"} 1.0'
        )
        deadline = time.monotonic() + 10
        while expected not in worker.get("/metrics")[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert expected in worker.get("/metrics")[1].splitlines()
        worker.stop()
    text = worker.logs()
    events = worker.log_events()
    assert events
    assert len(events) == len([line for line in text.splitlines() if line.strip()])
    handled = [e for e in events if e["event"] == "message.handled"]
    assert handled[0]["direction"] == "inbound"
    assert handled[0]["ses_message_id"] == ses_id
    assert handled[0]["app"] == "app1"
    assert handled[0]["sqs_message_id"]
    assert "alice@sender.test" not in text  # addresses are personal data
    assert "Plain text hello" not in text  # so are subjects
