"""Fixtures every test layer shares: a real AWS-protocol endpoint over HTTP.

By default an in-process moto server on 127.0.0.1 (no Docker, no network), reset
between tests; with AWS_ENDPOINT_URL set, that endpoint instead (e.g. LocalStack).
The AWS clients are never patched: tests talk HTTP like production does.

The integration tests of the engine, inbound and outbound (LOCALSTACK_SUITES) also run
against LocalStack when one answers at LOCALSTACK_URL (default http://127.0.0.1:4566;
`../shared/lab/localstack-host.sh install && start` runs one without Docker), with SES v2
from the embedded moto beside it, as docker-compose.yml does (LocalStack Community has no
SES v2). Those variants wipe that LocalStack's queues, buckets and tables before each
test: point LOCALSTACK_URL at a throwaway instance, or at "off" to skip them.

Docker: tests marked `docker` need an engine that answers *and* every image they name
(present, or pullable); `docker_problem()` says why not, and they skip with that reason.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import re
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.local.embedded import embedded_aws
from mailflow.ops.provision import provision
from mailflow.settings import Settings, load_settings
from tests.helpers import (
    ROOT,
    WorkerProcess,
    docker_compose,
    free_port,
    settings_env,
    wipe_endpoint,
)

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
LOCALSTACK_URL = os.environ.get("LOCALSTACK_URL", "http://127.0.0.1:4566").rstrip("/")
# These suites run once per endpoint (moto; LocalStack when it answers).
LOCALSTACK_SUITES = (
    "tests/integration/engine/",
    "tests/integration/inbound/",
    "tests/integration/outbound/",
)
# A test using one of these fixtures stays on moto: the FaultProxy fronts moto only, and
# the SES event feed reads moto's sent mail and publishes to moto's SQS.
MOTO_ONLY_FIXTURES = frozenset({"proxy", "feed"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the engine, inbound and outbound integration tests over the endpoints."""
    if EXTERNAL_ENDPOINT or "aws_target" not in metafunc.fixturenames:
        return
    try:
        where = Path(metafunc.definition.path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return
    if not where.startswith(LOCALSTACK_SUITES):
        return
    if MOTO_ONLY_FIXTURES & set(metafunc.fixturenames):
        return
    if metafunc.definition.get_closest_marker("moto_only"):
        return
    metafunc.parametrize("aws_target", ["moto", "localstack"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    if EXTERNAL_ENDPOINT:
        yield EXTERNAL_ENDPOINT
        return
    with embedded_aws(port=0) as endpoint:
        yield endpoint


@functools.cache
def localstack_problem(url: str = LOCALSTACK_URL) -> str | None:
    """None when a LocalStack at `url` serves SQS, S3 and DynamoDB; else why not."""
    hint = "start one with ../shared/lab/localstack-host.sh install && start, or set LOCALSTACK_URL"
    if url.lower() in {"", "off", "0", "no"}:
        return "LocalStack variants disabled (LOCALSTACK_URL=off)"
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=3) as response:
            services = json.load(response).get("services", {})
    except (OSError, ValueError) as exc:
        return f"no LocalStack answers at {url} ({exc}); {hint}"
    down = [s for s in ("sqs", "s3", "dynamodb") if services.get(s) not in {"available", "running"}]
    if down:
        return f"LocalStack at {url} does not serve {', '.join(down)}: {services}"
    return None


@dataclass(frozen=True)
class AwsTarget:
    """Where a test's AWS calls go: `endpoint` for all, `sesv2` (if set) for SES v2.

    `access_key`, when set, is the AWS_ACCESS_KEY_ID the test runs with: LocalStack takes
    a 12-digit key as the account id, so each pytest session gets an account of its own
    there and sessions running side by side (two developers, CI) never see each other's
    queues or tables. Bucket names are global across accounts (as on AWS), so they carry
    the same number. moto, which serves SES v2 beside it, keeps its default account.
    """

    name: str
    endpoint: str
    sesv2: str | None = None
    access_key: str | None = None


@pytest.fixture(scope="session")
def aws_target(request: pytest.FixtureRequest, moto_endpoint: str) -> Iterator[AwsTarget]:
    """moto (the default), or LocalStack with SES v2 from moto (parametrized suites)."""
    name = getattr(request, "param", "moto")
    if name == "moto":
        yield AwsTarget("moto", moto_endpoint)
        return
    problem = localstack_problem()
    if problem:
        pytest.skip(problem)
    # LocalStack Community has no SES v2; moto serves it, as in docker-compose.yml. Sent
    # mail is therefore read from moto on both variants (tests/integration/outbound).
    account = str(random.SystemRandom().randrange(10**11, 10**12))
    yield AwsTarget("localstack", LOCALSTACK_URL, sesv2=moto_endpoint, access_key=account)
    wipe_endpoint(LOCALSTACK_URL, access_key=account)


@pytest.fixture(autouse=True)
def _reset_endpoint(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh state per test, for tests that use an endpoint (never an external one)."""
    if "moto_endpoint" not in request.fixturenames or EXTERNAL_ENDPOINT:
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    if "aws_target" in request.fixturenames:
        target: AwsTarget = request.getfixturevalue("aws_target")
        if target.access_key:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", target.access_key)
        if target.name == "localstack":
            # Community LocalStack has no state-reset endpoint: delete what tests create
            # (in this session's account only).
            wipe_endpoint(target.endpoint, access_key=target.access_key)


DEFAULT_APPS: dict[str, Any] = {"app1": {"aliases": ["support"]}, "app2": {}}


@pytest.fixture
def make_settings(aws_target: AwsTarget) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "domains": ["example.com", "example.org"],
            "apps": DEFAULT_APPS,
            "aws_endpoint_url": aws_target.endpoint,
            "aws_region": "us-east-1",
            "wait_time_seconds": 1,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "queue_depth_interval_seconds": 5,
        }
        # A test that names its own endpoint (a proxy) means it for every service.
        if aws_target.sesv2 and "aws_endpoint_url" not in overrides:
            values["aws_endpoint_url_sesv2"] = aws_target.sesv2
        if aws_target.access_key:
            # Bucket names are global across LocalStack's accounts, as on AWS.
            values["raw_bucket"] = f"mailflow-raw-{aws_target.access_key}"
            values["attachments_bucket"] = f"mailflow-attachments-{aws_target.access_key}"
        values.update(overrides)
        # moto reports one SenderId for every writer, so the writer check is tested on
        # its own (tests/integration/outbound/test_writer_identity.py) and off elsewhere.
        values["outbound"] = {"writer_identity": "off", **values.get("outbound", {})}
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


# --- Docker ------------------------------------------------------------------------

COMPOSE_FILE = ROOT / "docker-compose.yml"  # also tests.helpers.docker_compose
# The image Dockerfiles the suite builds (their FROM images must be available).
DOCKERFILES = (ROOT / "Dockerfile", ROOT / "deploy" / "compose" / "moto" / "Dockerfile")
# Extra images the probe requires, space- or comma-separated: a way to see the skip an
# engine that cannot pull gives (DOCKER_PROBE_EXTRA_IMAGES=nonexistent/image:nope).
EXTRA_IMAGES = tuple(re.split(r"[\s,]+", os.environ.get("DOCKER_PROBE_EXTRA_IMAGES", "").strip()))


def dockerfile_bases(dockerfile: Path) -> list[str]:
    """The images a Dockerfile's FROM lines name, ARG defaults substituted, stages left out."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "ARG" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            args.setdefault(name, value.strip('"'))
        elif len(words) >= 2 and words[0].upper() == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[1])
            if image not in stages and image != "scratch":
                bases.append(image)
            if len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3])
    return bases


def compose_pulled_images() -> list[str]:
    """The images docker-compose.yml runs without building them."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return [s["image"] for s in services.values() if "image" in s and "build" not in s]


def stack_images() -> tuple[str, ...]:
    """Every image the Docker tests need before building anything."""
    images = [b for f in DOCKERFILES for b in dockerfile_bases(f)] + compose_pulled_images()
    images += [i for i in EXTRA_IMAGES if i]
    return tuple(dict.fromkeys(images))


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _split_image(image: str) -> tuple[str, str]:
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    return repo, tag


@functools.cache
def docker_problem(images: tuple[str, ...] = ()) -> str | None:
    """None when a Docker engine, the compose plugin and every image are there; else why.

    A missing image is pulled once; an engine that answers but cannot pull (no registry
    reachable) gives a one-line reason naming the image, not the daemon's APIError.
    """
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        import docker
        from docker.errors import ImageNotFound

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        return f"no Docker engine answers ({_short(exc)})"
    version = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if version.returncode != 0:
        return f"the Docker Compose v2 plugin is missing ({version.stderr.strip()[:120]})"
    missing: list[str] = []
    for image in images:
        try:
            client.images.get(image)
            continue
        except ImageNotFound:
            pass
        except Exception as exc:
            return f"the Docker engine fails to list images ({_short(exc)})"
        try:
            client.images.pull(*_split_image(image))
        except Exception as exc:
            missing.append(f"{image}: {_short(exc, 140)}")
    client.close()
    if missing:
        return (
            f"the Docker engine answers but {len(missing)} image(s) are neither present nor"
            f" pullable ({'; '.join(missing)}); build them locally"
            " (../shared/lab/base-images.sh and stack-images.sh) or give the engine a registry"
        )
    return None


def docker_available() -> bool:
    """A Docker engine answers (images not checked: see docker_problem)."""
    return docker_problem(()) is None


@pytest.fixture(scope="session")
def built_images() -> str:
    """Skip unless Docker can run the stack; then build the worker and SES v2 images.

    Returns the worker image's tag (the compose file's `mailflow:local`).
    """
    problem = docker_problem(stack_images())
    if problem:
        pytest.skip(problem)
    docker_compose("build", timeout=1200)
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return str(services["worker"]["image"])
