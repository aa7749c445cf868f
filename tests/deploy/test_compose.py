"""docker-compose.yml is valid Compose, and wires LocalStack, SES v2, the worker, monitoring.

These need no Docker engine: the file is checked against the Compose Specification's JSON
schema (vendored, see deploy/compose/README.md) and read for the wiring that matters.
tests/deploy/test_stack.py runs the stack for real where an engine answers.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
import runpy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY

import mailflow
from mailflow.settings import Settings
from tests.deploy.hcl import ROOT
from tests.deploy.test_terraform import settings_env_names

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DIR = ROOT / "deploy" / "compose"
SCHEMA = COMPOSE_DIR / "compose-spec.schema.json"
SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"
DASHBOARD = COMPOSE_DIR / "grafana" / "dashboards" / "mailflow.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_vendored_schema_is_the_recorded_file() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_catches_a_broken_file(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["init"]["condition"] = "when_ready"
    broken["services"]["worker"]["restartt"] = "always"
    schema = json.loads(SCHEMA.read_text())
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_localstack_runs_the_services_mailflow_uses(compose: dict[str, Any]) -> None:
    localstack = compose["services"]["localstack"]
    services = set(localstack["environment"]["SERVICES"].split(","))
    assert services >= {"sqs", "s3", "ses", "sns", "dynamodb"}
    assert "healthcheck" in localstack


def test_init_provisions_before_the_worker_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["init"]["command"] == ["provision"]
    assert services["init"]["depends_on"]["localstack"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["run"]
    assert services["worker"]["depends_on"]["init"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["init"]["build"] == "."
    assert services["worker"]["image"] == services["init"]["image"]


def _single_aliases() -> set[str]:
    """Env names given as one plain validation alias (AWS_ENDPOINT_URL_SESV2, ...)."""
    return {
        info.validation_alias.upper()
        for info in Settings.model_fields.values()
        if isinstance(info.validation_alias, str)
    }


def test_worker_environment_is_the_operator_contract(compose: dict[str, Any]) -> None:
    known, required = settings_env_names()
    known |= _single_aliases()
    aws_sdk = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for name in ("init", "worker"):
        env = compose["services"][name]["environment"]
        unknown = sorted(set(env) - known - aws_sdk)
        assert not unknown, f"{name}: not read by mailflow.settings.Settings: {unknown}"
        assert required <= set(env)
        assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
        # LocalStack Community has no SES v2: it comes from the moto service.
        assert env["AWS_ENDPOINT_URL_SESV2"] == "http://sesv2:5000"


def test_sesv2_is_moto_beside_localstack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sesv2 = services["sesv2"]
    assert sesv2["build"] == "deploy/compose/moto"
    assert services["init"]["depends_on"]["sesv2"]["condition"] == "service_healthy"
    dockerfile = (COMPOSE_DIR / "moto" / "Dockerfile").read_text()
    assert "--require-hashes -r /opt/requirements.txt" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    pins = (COMPOSE_DIR / "moto" / "requirements.txt").read_text()
    dev_lock = (ROOT / "requirements-dev.lock").read_text()
    moto_pin = re.search(r"^moto==(\S+)", pins, re.M)
    assert moto_pin, "deploy/compose/moto/requirements.txt pins no moto"
    assert re.search(rf"^moto(\[[^]]*\])?=={re.escape(moto_pin.group(1))} ", dev_lock, re.M), (
        "compose's moto differs from the tests' (run deploy/compose/moto/lock.sh)"
    )
    # Every pin carries hashes (the image installs with --require-hashes).
    lines = pins.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z0-9]", line):
            assert "--hash=sha256:" in lines[i + 1], line


def test_published_ports_are_loopback_only_and_movable(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z0-9_]+_PORT:-\d+\}:\d+", port), (
                name,
                port,
            )
    env = compose["services"]["worker"]["environment"]
    apps = json.loads(env["MAILFLOW_APPS"])
    assert set(apps) == {"app1", "app2"}


def test_worker_is_hardened_and_drains(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["read_only"] is True
    # As on Fargate: no tmpfs; /tmp is the image's VOLUME (tests/deploy/test_image.py).
    assert "tmpfs" not in worker
    assert worker["cap_drop"] == ["ALL"]
    grace = float(worker["environment"]["MAILFLOW_SHUTDOWN_GRACE_SECONDS"])
    assert float(worker["stop_grace_period"].rstrip("s")) > grace


def test_prometheus_scrapes_the_worker(compose: dict[str, Any]) -> None:
    port = compose["services"]["worker"]["environment"]["MAILFLOW_HTTP_PORT"]
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{port}"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/compose/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_provisions_datasource_and_dashboard(compose: dict[str, Any]) -> None:
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "mailflow.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/compose/grafana/dashboards:{path}:ro" in mounts


def test_dashboard_is_the_generators_output() -> None:
    generated = runpy.run_path(str(ROOT / "tools" / "grafana_dashboard.py"))["dashboard"]()
    assert json.loads(DASHBOARD.read_text()) == json.loads(json.dumps(generated)), (
        "run `python tools/grafana_dashboard.py`"
    )


def _registered_series() -> set[str]:
    """Every series name mailflow's modules register with prometheus_client."""
    for info in pkgutil.walk_packages(mailflow.__path__, "mailflow."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    names: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("_sum", "_count", ""),
    }
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_dashboard_queries_only_metrics_the_worker_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\bmailflow_[a-z0-9_]+", e)}
    unknown = sorted(used - _registered_series())
    assert not unknown, f"the dashboard queries metrics no mailflow module defines: {unknown}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("received", "handling time", "failures", "queue depth", "dlq", "ses send rate"):
        assert topic in titles


def test_dashboard_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not (cells & area), panel["title"]
        cells |= area


def test_schema_source_is_documented() -> None:
    readme = (COMPOSE_DIR / "README.md").read_text()
    assert SCHEMA_SHA256 in readme
    assert Path(SCHEMA).name in readme
