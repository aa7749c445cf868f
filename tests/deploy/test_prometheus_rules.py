"""deploy/prometheus/mailflow-rules.yml: per-app bounce and complaint alerts for people who
scrape the workers with their own Prometheus.

The rules query only series mailflow exports, with the labels it gives them; they use the
Terraform module's thresholds, window and volume guards; the compose stack loads them.
With promtool installed (Debian's `prometheus` package), they are also checked and run
against synthetic counters: which apps page and which do not.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import mailflow
from tests.deploy.hcl import ROOT, Module, load_module

RULES = ROOT / "deploy" / "prometheus" / "mailflow-rules.yml"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "compose" / "prometheus.yml"

# The worker's series the rules may use, with their labels (issue 14's contract:
# mailflow/outbound/metrics.py and mailflow/feedback/metrics.py). Checked against what
# mailflow registers for each series that exists there; the feedback module's series
# must all exist once that module does.
CONTRACT = {
    "mailflow_outbound_sent_total": {"app"},
    "mailflow_feedback_events_total": {"app", "type"},
    "mailflow_feedback_bounces_total": {"app", "bounce_type"},
}
FEEDBACK_SERIES = {"mailflow_feedback_events_total", "mailflow_feedback_bounces_total"}
ALERTS = {
    # alert: (threshold variable, volume guard variable)
    "MailflowAppBounceRateHigh": (
        "app_bounce_rate_alarm_threshold",
        "app_bounce_rate_alarm_min_sent",
    ),
    "MailflowAppComplaintRateHigh": (
        "app_complaint_rate_alarm_threshold",
        "app_complaint_rate_alarm_min_sent",
    ),
}


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    found = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            found[rule.get("alert") or rule["record"]] = rule
    return found


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _exported() -> dict[str, set[str]]:
    """Series name -> label names, for every metric mailflow's modules define."""
    for info in pkgutil.walk_packages(mailflow.__path__, "mailflow."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    labels: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(mailflow.__path__, "mailflow."):
        if info.name.endswith("__main__"):
            continue
        for value in vars(importlib.import_module(info.name)).values():
            if isinstance(value, MetricWrapperBase):
                (family,) = value.describe()
                suffix = "_total" if family.type == "counter" else ""
                labels[family.name + suffix] = set(value._labelnames)
    # Every registered family is known by name, even if no module global holds it.
    for family in REGISTRY.collect():
        suffix = "_total" if family.type == "counter" else ""
        labels.setdefault(family.name + suffix, set())
    return labels


def _selectors(expression: str) -> list[tuple[str, set[str]]]:
    """(series name, label names matched in its selector) for each selector."""
    found = []
    for match in re.finditer(r"\b(mailflow_[a-z0-9_]+)(\{([^}]*)\})?", expression):
        matchers = match.group(3) or ""
        found.append((match.group(1), set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))))
    return found


def test_the_file_has_exactly_the_two_alerts(rules: dict[str, dict[str, Any]]) -> None:
    assert set(rules) == set(ALERTS)
    for rule in rules.values():
        assert rule["labels"]["severity"]
        assert "{{ $labels.app }}" in rule["annotations"]["summary"]
        assert "{{ $labels.app }}" in rule["annotations"]["description"]


def test_rules_use_only_series_and_labels_mailflow_exports(
    rules: dict[str, dict[str, Any]],
) -> None:
    exported = _exported()
    for name, labels in CONTRACT.items():
        if name in exported:
            assert exported[name] == labels, f"{name}: mailflow labels it {exported[name]}"
    if importlib.util.find_spec("mailflow.feedback.metrics") is not None:
        missing = sorted(FEEDBACK_SERIES - set(exported))
        assert not missing, f"mailflow.feedback.metrics does not define {missing}"
    for alert, rule in rules.items():
        selectors = _selectors(rule["expr"])
        assert selectors, alert
        for series, matched in selectors:
            assert series in CONTRACT, f"{alert}: {series} is not a series mailflow exports"
            assert matched <= CONTRACT[series], (alert, series, matched)
        grouping = set(re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]))
        for labels in grouping:
            for label in (label.strip() for label in labels.split(",")):
                assert all(label in CONTRACT[s] for s, _ in selectors), (alert, label)


def test_rates_are_per_app_permanent_bounces_and_complaints_over_sent(
    rules: dict[str, dict[str, Any]],
) -> None:
    bounce = rules["MailflowAppBounceRateHigh"]["expr"]
    assert 'mailflow_feedback_bounces_total{bounce_type="Permanent"}' in bounce
    complaint = rules["MailflowAppComplaintRateHigh"]["expr"]
    assert 'mailflow_feedback_events_total{type="complained"}' in complaint
    for expression in (bounce, complaint):
        # Every task's counters add up per app; nothing else survives the aggregation.
        assert expression.count("sum by (app) (increase(") == 3
        assert "sum by (app) (increase(mailflow_outbound_sent_total[" in expression
        assert "and on (app)" in expression


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_thresholds_window_and_guard_are_the_modules_defaults(
    rules: dict[str, dict[str, Any]], module: Module, alert: str
) -> None:
    threshold_var, guard_var = ALERTS[alert]
    expression = rules[alert]["expr"]
    (threshold,) = re.findall(r"\)\s*>\s*([0-9.]+)", expression)
    assert float(threshold) == module.variables[threshold_var]["default"]
    (guard,) = re.findall(r">=\s*([0-9]+)", expression)
    assert int(guard) == module.variables[guard_var]["default"]
    hours = module.variables["app_feedback_alarm_period_seconds"]["default"] // 3600
    assert set(re.findall(r"\[(\d+)h\]", expression)) == {str(hours)}


def test_the_compose_prometheus_loads_the_rules_file() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = {}
    for volume in compose["services"]["prometheus"]["volumes"]:
        source, target, *options = volume.split(":")
        mounts[target] = (source, options)
    assert config["rule_files"], "prometheus.yml names no rule file"
    loaded = []
    for path in config["rule_files"]:
        assert path in mounts, f"{path} is not mounted into the prometheus service"
        source, options = mounts[path]
        assert options == ["ro"], path
        assert (ROOT / source).is_file(), source
        loaded.append((ROOT / source).resolve())
    assert RULES.resolve() in loaded


# --- promtool: syntax and behaviour ---------------------------------------------------


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return promtool


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _expected(rule: dict[str, Any], app: str, value: str) -> dict[str, Any]:
    def render(template: str) -> str:
        return template.replace("{{ $labels.app }}", app).replace(
            "{{ $value | humanizePercentage }}", value
        )

    return {
        "exp_labels": {"app": app, **rule["labels"]},
        "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()},
    }


def test_which_apps_page(rules: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Counters rising per minute for 80 minutes, evaluated at 75 (1 h window)."""
    series = {
        # 120 sent/h, 12 permanent bounces: 10 %
        'mailflow_outbound_sent_total{app="crm",instance="a"}': "0+2x80",
        'mailflow_feedback_bounces_total{app="crm",bounce_type="Permanent",instance="a"}': (
            "0+0.2x80"
        ),
        # two tasks: 60 + 60 sent, 6 + 6 bounces: 10 %, only when summed per app
        'mailflow_outbound_sent_total{app="shop",instance="a"}': "0+1x80",
        'mailflow_outbound_sent_total{app="shop",instance="b"}': "0+1x80",
        'mailflow_feedback_bounces_total{app="shop",bounce_type="Permanent",instance="a"}': (
            "0+0.1x80"
        ),
        'mailflow_feedback_bounces_total{app="shop",bounce_type="Permanent",instance="b"}': (
            "0+0.1x80"
        ),
        # 2.5 % permanent, and transient bounces do not count: quiet
        'mailflow_outbound_sent_total{app="ok",instance="a"}': "0+2x80",
        'mailflow_feedback_bounces_total{app="ok",bounce_type="Permanent",instance="a"}': (
            "0+0.05x80"
        ),
        'mailflow_feedback_bounces_total{app="ok",bounce_type="Transient",instance="a"}': (
            "0+1x80"
        ),
        # 3 sent/h, half of it bounces: below the volume guard
        'mailflow_outbound_sent_total{app="tiny",instance="a"}': "0+0.05x80",
        'mailflow_feedback_bounces_total{app="tiny",bounce_type="Permanent",instance="a"}': (
            "0+0.025x80"
        ),
        # 1200 sent/h, 3 complaints: 0.25 %
        'mailflow_outbound_sent_total{app="news",instance="a"}': "0+20x80",
        'mailflow_feedback_events_total{app="news",type="complained",instance="a"}': "0+0.05x80",
        'mailflow_feedback_events_total{app="news",type="delivered",instance="a"}': "0+20x80",
        # 600 sent/h, 6 complaints (1 %): below the complaint guard of 1000
        'mailflow_outbound_sent_total{app="few",instance="a"}': "0+10x80",
        'mailflow_feedback_events_total{app="few",type="complained",instance="a"}': "0+0.1x80",
    }
    bounce, complaint = rules["MailflowAppBounceRateHigh"], rules["MailflowAppComplaintRateHigh"]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": "75m",
                        "alertname": "MailflowAppBounceRateHigh",
                        "exp_alerts": [
                            _expected(bounce, "crm", "10%"),
                            _expected(bounce, "shop", "10%"),
                        ],
                    },
                    {
                        "eval_time": "75m",
                        "alertname": "MailflowAppComplaintRateHigh",
                        "exp_alerts": [_expected(complaint, "news", "0.25%")],
                    },
                    # `for: 5m`: an hour-old rise pages, a first minute does not.
                    {"eval_time": "2m", "alertname": "MailflowAppBounceRateHigh", "exp_alerts": []},
                ],
            }
        ],
    }
    test_file = tmp_path / "rules-test.yml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [_promtool(), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
