"""Fixtures every test layer shares: a real AWS-protocol endpoint over HTTP.

By default an in-process moto server on 127.0.0.1 (no Docker, no network), reset
between tests; with AWS_ENDPOINT_URL set, that endpoint instead (e.g. LocalStack).
The AWS clients are never patched: tests talk HTTP like production does.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.local.embedded import embedded_aws
from mailflow.ops.provision import provision
from mailflow.settings import Settings, load_settings
from tests.helpers import WorkerProcess, free_port, settings_env

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_name, _value)
# Settings in the developer's shell must not leak into tests.
for _name in [n for n in os.environ if n.startswith("MAILFLOW_")]:
    del os.environ[_name]

logging.getLogger("werkzeug").setLevel(logging.WARNING)

EXTERNAL_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    if EXTERNAL_ENDPOINT:
        yield EXTERNAL_ENDPOINT
        return
    with embedded_aws(port=0) as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _reset_endpoint(request: pytest.FixtureRequest) -> None:
    """Fresh state per test; only for tests that use the endpoint, and only on moto."""
    if "moto_endpoint" not in request.fixturenames or EXTERNAL_ENDPOINT:
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()


DEFAULT_APPS: dict[str, Any] = {"app1": {"aliases": ["support"]}, "app2": {}}


@pytest.fixture
def make_settings(moto_endpoint: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "domains": ["example.com", "example.org"],
            "apps": DEFAULT_APPS,
            "aws_endpoint_url": moto_endpoint,
            "aws_region": "us-east-1",
            "wait_time_seconds": 1,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "queue_depth_interval_seconds": 5,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def provisioned(settings: Settings) -> Settings:
    async with open_clients(settings) as clients:
        await provision(settings, clients)
    return settings


@pytest.fixture
async def aws(provisioned: Settings) -> AsyncIterator[AwsClients]:
    async with open_clients(provisioned) as clients:
        yield clients


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: `with worker_process(settings, extra_env={...}) as proc:` runs the real worker."""
    started: list[WorkerProcess] = []

    @contextmanager
    def start(
        settings: Settings, extra_env: dict[str, str] | None = None
    ) -> Iterator[WorkerProcess]:
        env = settings_env(settings)
        env["MAILFLOW_HTTP_PORT"] = str(free_port())
        env.update(extra_env or {})
        proc = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(proc)
        try:
            yield proc
        finally:
            proc.stop()

    yield start
    for proc in started:
        proc.stop()


def docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def localstack_endpoint() -> Iterator[str]:
    """LocalStack through testcontainers; tests using it are marked `docker`."""
    if not docker_available():
        pytest.skip(
            "no Docker engine answers (docker.from_env().ping() failed): LocalStack skipped"
        )
    from testcontainers.localstack import LocalStackContainer

    with LocalStackContainer(image="localstack/localstack:4").with_services(
        "sqs", "s3", "ses", "sns", "dynamodb"
    ) as container:
        yield container.get_url()
