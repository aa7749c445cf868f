"""The README's quick start, run as a newcomer would paste it, prints what the README says;
docs/inbound.md's `inject` examples do what their comments say.

The first two ```console blocks of the README are executed: `make local` (as
`mailflow local`, on free ports instead of 5055/8080/2525, which the transcript's ports
are rewritten to), then the second shell's commands one by one, with the environment
the `.` and `export` lines build. Each command's output (stdout and stderr, in order)
must match the transcript, where `...` stands for any text (doctest's ELLIPSIS).
Between commands the test waits for what a person waits for: the worker to have
delivered what the previous command put in.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.helpers import ROOT, free_port

CHECKER = doctest.OutputChecker()


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def console_blocks(text: str) -> list[list[Step]]:
    blocks: list[list[Step]] = []
    for body in re.findall(r"^```console\n(.*?)^```$", text, flags=re.M | re.S):
        steps: list[Step] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append(Step(line[2:]))
            else:
                steps[-1].expected.append(line)
        blocks.append(steps)
    return blocks


@dataclass
class Ports:
    aws: int
    http: int
    smtp: int

    def apply(self, text: str) -> str:
        text = text.replace("127.0.0.1:5055", f"127.0.0.1:{self.aws}")
        text = text.replace("127.0.0.1:8080", f"127.0.0.1:{self.http}")
        return text.replace("127.0.0.1:2525", f"127.0.0.1:{self.smtp}")


def assert_matches(step: Step, got: str, ports: Ports) -> None:
    want = "".join(ports.apply(line) + "\n" for line in step.expected)
    if not CHECKER.check_output(want, got, doctest.ELLIPSIS):
        example = doctest.Example(step.command, want)
        raise AssertionError(
            f"$ {step.command}\n" + CHECKER.output_difference(example, got, doctest.ELLIPSIS)
        )


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"mailflow local never became ready:\n{log.read_text()}")


def sqs_client(env: dict[str, str]) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def wait_for_messages(env: dict[str, str], queue: str, count: int) -> None:
    """What a person does between commands: give the worker its second."""
    sqs = sqs_client(env)
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{queue} never held {count} message(s)")


def run_second_shell(steps: list[Step], ports: Ports, base_env: dict[str, str]) -> list[str]:
    env = dict(base_env)
    transcript: list[str] = []
    expected_on_app1 = 0
    for step in steps:
        command = ports.apply(step.command)
        transcript.append(f"$ {command}")
        if command == ". .venv/bin/activate":
            env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
            env["VIRTUAL_ENV"] = str(ROOT / ".venv")
            got = ""
        elif command.startswith("export "):
            env.update(pair.split("=", 1) for pair in shlex.split(command)[1:])
            got = ""
        else:
            if command.startswith("mailflow peek"):
                wait_for_messages(env, "mailflow-app1", expected_on_app1)
            result = subprocess.run(
                ["bash", "-c", command],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=60,
                check=False,
            )
            got = result.stdout.decode()
            assert result.returncode == 0, f"$ {command}\n{got}"
            if command.startswith("mailflow inject"):
                expected_on_app1 += 1
            elif command.startswith("mailflow send"):
                expected_on_app1 += 2  # email.sent, then SES's Delivery as email.delivered
        transcript.append(got.rstrip("\n"))
        assert_matches(step, got, ports)
    return transcript


def newcomer_env() -> dict[str, str]:
    """A newcomer's shell: nothing of ours set; Python unbuffered, so stderr and stdout
    interleave as on a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILFLOW_", "AWS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def mailflow_local(ports: Ports, env: dict[str, str], log: Path) -> Iterator[None]:
    """`make local`, on the given ports; stopped with Ctrl-C, which must exit 0."""
    with log.open("wb") as out:
        local = subprocess.Popen(
            [
                *(sys.executable, "-m", "mailflow", "local", "--port", str(ports.aws)),
                *("--http-port", str(ports.http), "--smtp-port", str(ports.smtp)),
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(ports.http, local, log)
            yield
            local.send_signal(signal.SIGINT)
            assert local.wait(timeout=30) == 0, log.read_text()
        finally:
            local.kill()


def test_the_readme_quick_start_is_a_true_transcript(tmp_path: Path) -> None:
    first, second = console_blocks((ROOT / "README.md").read_text())[:2]
    assert [s.command for s in first] == ["make local"]
    ports = Ports(aws=free_port(), http=free_port(), smtp=free_port())
    env = newcomer_env()
    log = tmp_path / "local.log"
    with mailflow_local(ports, env, log):
        transcript = run_second_shell(second, ports, env)
    assert_matches(first[0], log.read_text(), ports)
    print("\n" + "\n".join(transcript))


def test_the_inject_examples_of_inbound_md_do_what_they_say(tmp_path: Path) -> None:
    """docs/inbound.md's `inject` block, run as written (its `mail.eml` is our example
    mail): every command succeeds, the virus verdict ends in the DLQ and reaches no app,
    the others reach app1."""
    text = (ROOT / "docs" / "inbound.md").read_text()
    [block] = [
        b for b in re.findall(r"^```bash\n(.*?)^```$", text, flags=re.M | re.S) if "inject" in b
    ]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    commands = [c.replace("mail.eml", "docs/examples/inbound.eml") for c in commands if c]
    ports = Ports(aws=free_port(), http=free_port(), smtp=free_port())
    env = newcomer_env()
    with mailflow_local(ports, env, tmp_path / "local.log"):
        env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        env.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{ports.aws}",
            AWS_ACCESS_KEY_ID="mailflow-local",
            AWS_SECRET_ACCESS_KEY="mailflow-local",
            AWS_REGION="us-east-1",
            MAILFLOW_DOMAINS="example.com",
            MAILFLOW_APPS="app1,app2",
        )
        for command in commands:
            result = subprocess.run(
                ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, check=False
            )
            assert result.returncode == 0, f"$ {command}\n{result.stderr.decode()}"
        injected = [c for c in commands if c.startswith("mailflow inject")]
        virus = [c for c in injected if "virus=FAIL" in c]
        assert len(virus) == 1
        wait_for_messages(env, "mailflow-app1", len(injected) - len(virus))
        wait_for_messages(env, "mailflow-dlq", 1)
        sqs = sqs_client(env)
        for queue, expected in (("mailflow-app1", len(injected) - 1), ("mailflow-dlq", 1)):
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            attrs = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            assert int(attrs["Attributes"]["ApproximateNumberOfMessages"]) == expected, queue
        dlq = sqs.get_queue_url(QueueName="mailflow-dlq")["QueueUrl"]
        [record] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
        assert json.loads(record["Body"])["errorCode"] == "virus_detected"
