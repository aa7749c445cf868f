"""`mailflow send FILE.json`: local validation, then the message lands on the outbound queue."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio

from mailflow.aws.clients import AwsClients
from mailflow.settings import Settings
from tests.helpers import ROOT, receive_all, settings_env
from tests.integration.outbound.support import message
from tests.readme_examples import README_QUICKSTART


async def run_cli(args: list[str], settings: Settings) -> tuple[int, str, str]:
    """The real command line in a child process, as a developer runs it."""
    env = {**os.environ, **settings_env(settings)}
    result = await anyio.run_process(
        [sys.executable, "-m", "mailflow", *args], env=env, cwd=ROOT, check=False
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_send_puts_valid_message_on_queue(
    provisioned: Settings, aws: AwsClients, tmp_path: Path
) -> None:
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(README_QUICKSTART), encoding="utf-8")
    code, out, _ = await run_cli(["send", str(path)], provisioned)
    assert code == 0
    assert "queued on mailflow-outbound" in out
    url = await aws.queues.url(provisioned.outbound_queue)
    (body,) = await receive_all(aws.sqs, url, expect=1, timeout=5)
    assert json.loads(body) == README_QUICKSTART  # verbatim


async def test_send_reports_problems_and_queues_nothing(
    provisioned: Settings, aws: AwsClients, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(message(**{"from": {"address": "_app2@example.com"}})))
    code, _, err = await run_cli(["send", str(path)], provisioned)
    assert code == 1
    assert "sender_not_allowed" in err
    url = await aws.queues.url(provisioned.outbound_queue)
    assert await receive_all(aws.sqs, url, expect=1, timeout=2) == []
    # --no-validate sends it anyway (to see how the worker reports it).
    code, _, _ = await run_cli(["send", "--no-validate", str(path)], provisioned)
    assert code == 0
    assert len(await receive_all(aws.sqs, url, expect=1, timeout=5)) == 1
