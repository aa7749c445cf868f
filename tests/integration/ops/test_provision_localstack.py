"""`provision` against an emulator that lacks a service: one clear line, nothing created.

LocalStack Community answers every SES v2 call with HTTP 501 `InternalFailure` ("The API
for service 'sesv2' is either not included in your current license plan or has not yet
been emulated by LocalStack"). A tiny server gives that exact answer here, so this runs
without LocalStack; tests/deploy/test_stack.py shows it with the LocalStack image itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mailflow.aws.clients import open_clients
from mailflow.errors import ConfigurationError
from mailflow.ops.provision import ServiceUnavailable, provision
from mailflow.settings import Settings
from tests.helpers import ROOT, free_port, settings_env

LOCALSTACK_501 = (
    "The API for service 'sesv2' is either not included in your current license plan or has"
    " not yet been emulated by LocalStack. Please refer to"
    " https://docs.localstack.cloud/references/coverage for more details."
)


class _NotImplemented(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"__type": "InternalFailure", "message": LOCALSTACK_501}).encode()
        self.send_response(501)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", "InternalFailure")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def no_sesv2() -> Iterator[str]:
    """An endpoint that answers like LocalStack Community does for SES v2."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotImplemented)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def lacking_settings(make_settings: Callable[..., Settings], no_sesv2: str) -> Settings:
    return make_settings(AWS_ENDPOINT_URL_SESV2=no_sesv2)


async def _nothing_exists(settings: Settings) -> None:
    whole = settings.model_copy(update={"aws_endpoint_url_sesv2": None})
    async with open_clients(whole) as clients:
        assert (await clients.sqs.list_queues()).get("QueueUrls", []) == []
        assert (await clients.s3.list_buckets())["Buckets"] == []
        assert (await clients.dynamodb.list_tables())["TableNames"] == []


async def test_a_missing_service_stops_provision_before_anything_is_created(
    lacking_settings: Settings, no_sesv2: str, moto_endpoint: str
) -> None:
    async with open_clients(lacking_settings) as clients:
        with pytest.raises(ServiceUnavailable) as info:
            await provision(lacking_settings, clients)
    message = str(info.value)
    assert isinstance(info.value, ConfigurationError)  # the CLI prints it as one line
    assert message.startswith(f"sesv2 is not available at {no_sesv2} (HTTP 501")
    assert "InternalFailure" in message
    assert "not yet been emulated by LocalStack" in message
    assert "AWS_ENDPOINT_URL_SESV2" in message
    assert "\n" not in message
    await _nothing_exists(lacking_settings)


def test_the_cli_prints_one_line_and_exits_non_zero(
    lacking_settings: Settings, no_sesv2: str
) -> None:
    env = {**os.environ, **settings_env(lacking_settings)}
    assert env["AWS_ENDPOINT_URL_SESV2"] == no_sesv2
    result = subprocess.run(
        [sys.executable, "-m", "mailflow", "provision"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # not one "ok" line: nothing was created
    # The CLI names the endpoint it acts on, then the error, in one line.
    *before, error = result.stderr.strip().splitlines()
    assert error.startswith(f"mailflow provision: sesv2 is not available at {no_sesv2}")
    assert "AWS_ENDPOINT_URL_SESV2" in error
    assert len(before) <= 1, result.stderr
    assert all(line.startswith("mailflow provision: endpoint ") for line in before)
    assert "Traceback" not in result.stderr


async def test_an_endpoint_that_does_not_answer_is_named(
    make_settings: Callable[..., Settings], moto_endpoint: str
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(AWS_ENDPOINT_URL_SESV2=closed)
    async with open_clients(settings) as clients:
        with pytest.raises(ServiceUnavailable, match=f"cannot connect to sesv2 at {closed}"):
            await provision(settings, clients)
    await _nothing_exists(settings)


async def test_every_service_answering_provisions_as_before(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    async with open_clients(settings) as clients:
        done = await provision(settings, clients)
    assert "SES identity example.com" in done
