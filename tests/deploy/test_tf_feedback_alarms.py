"""Per-app bounce and complaint alarms: which app endangers the SES account.

SES's Reputation.BounceRate/ComplaintRate alarms are account-wide. The worker logs one
JSON line per email SES accepted (`outbound.sent`) and per bounce or complaint SES
reports (`feedback.bounced`, `feedback.complained`), each with its `app`. Three metric
filters turn them into metrics with an `app` dimension, and per app in var.apps two
metric-math alarms divide bounces (complaints) by sent over a period, with a volume
guard so that 1 bounce of 2 mails pages nobody.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.hcl import ROOT, Module, evaluate_condition, expr, load_module
from tests.deploy.test_tf_alarms import matches

# The worker's log lines (the contract of issue 14), as the awslogs driver ships them.
SENT_LINE = {
    "event": "outbound.sent",
    "app": "crm",
    "ses_message_id": "0100018f-aaaa",
    "recipients": "1",
    "level": "info",
}
BOUNCED_LINE = {
    "event": "feedback.bounced",
    "app": "crm",
    "bounce_type": "Permanent",
    "recipients": 1,
    "level": "info",
}
COMPLAINED_LINE = {"event": "feedback.complained", "app": "crm", "recipients": 1, "level": "info"}
OTHER_LINES = [
    {"event": "message.failed", "app": "crm", "level": "error"},
    {"event": "feedback.told", "app": "crm", "level": "info"},
    {"event": "feedback.suppressed", "by_app": "crm", "level": "warning"},
    {"event": "outbound.duplicate_already_sent", "app": "crm", "level": "info"},
]
LINES = {
    "outbound_sent": SENT_LINE,
    "feedback_bounced": BOUNCED_LINE,
    "feedback_complained": COMPLAINED_LINE,
}
ALARMS = {
    # alarm resource: (numerator filter, its extra dimensions, threshold var, guard var)
    "app_bounce_rate": (
        "feedback_bounced",
        {"bounce_type": "Permanent"},
        "app_bounce_rate_alarm_threshold",
        "app_bounce_rate_alarm_min_sent",
    ),
    "app_complaint_rate": (
        "feedback_complained",
        {},
        "app_complaint_rate_alarm_threshold",
        "app_complaint_rate_alarm_min_sent",
    ),
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _filter_metric(name: str) -> str:
    return f"${{aws_cloudwatch_log_metric_filter.{name}.metric_transformation[0].name}}"


@pytest.mark.parametrize("name", sorted(LINES))
def test_a_metric_filter_counts_each_log_line_per_app(module: Module, name: str) -> None:
    log_filter = module.resource("aws_cloudwatch_log_metric_filter", name)
    assert log_filter["log_group_name"] == "${aws_cloudwatch_log_group.worker.name}"
    assert matches(log_filter["pattern"], LINES[name])
    others = [line for key, line in LINES.items() if key != name] + OTHER_LINES
    assert not any(matches(log_filter["pattern"], line) for line in others)
    (transformation,) = log_filter["metric_transformation"]
    assert transformation["namespace"] == "${local.metrics_namespace}"
    # One per email or event, like the worker's Prometheus counters (outbound.sent's
    # `recipients` is a string, so it could not be summed anyway).
    assert transformation["value"] == "1"
    assert transformation["unit"] == "Count"
    assert transformation["dimensions"]["app"] == "$.app"
    # CloudWatch rejects a default value on a filter with dimensions.
    assert "default_value" not in transformation
    # Three filters serve every app: none is multiplied per app (100 filters per group).
    assert "for_each" not in log_filter
    assert "count" not in log_filter


def test_bounces_keep_their_type_as_a_dimension(module: Module) -> None:
    (transformation,) = module.resource("aws_cloudwatch_log_metric_filter", "feedback_bounced")[
        "metric_transformation"
    ]
    assert transformation["dimensions"] == {"app": "$.app", "bounce_type": "$.bounce_type"}
    # Every dimension is a field of the line the filter matches.
    for name, line in LINES.items():
        (t,) = module.resource("aws_cloudwatch_log_metric_filter", name)["metric_transformation"]
        for field in t["dimensions"].values():
            assert field.removeprefix("$.") in line, (name, field)


def test_metric_names_are_unique_in_the_namespace(module: Module) -> None:
    names = [
        f["metric_transformation"][0]["name"]
        for f in module.resources["aws_cloudwatch_log_metric_filter"].values()
    ]
    assert len(names) == len(set(names)), names
    filter_names = [
        f["name"] for f in module.resources["aws_cloudwatch_log_metric_filter"].values()
    ]
    assert len(filter_names) == len(set(filter_names)), filter_names


def _queries(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in alarm["metric_query"]}


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_an_alarm_per_app_divides_feedback_by_sent(module: Module, name: str) -> None:
    numerator, extra_dimensions, threshold, guard = ALARMS[name]
    alarm = module.resource("aws_cloudwatch_metric_alarm", name)
    assert alarm["for_each"] == "${var.apps}"
    kind = name.removeprefix("app_").replace("_", "-")
    assert alarm["alarm_name"] == f"${{local.prefix}}${{each.key}}-{kind}"
    assert "metric_name" not in alarm
    assert "namespace" not in alarm
    queries = _queries(alarm)
    (result,) = [q for q in queries.values() if q.get("return_data") is True]
    # PutMetricAlarm: every other query must say ReturnData false.
    assert all(q.get("return_data") is False for q in queries.values() if q is not result)
    inputs = {qid: q["metric"][0] for qid, q in queries.items() if "metric" in q}
    assert len(inputs) == 2
    by_metric = {m["metric_name"]: (qid, m) for qid, m in inputs.items()}
    sent_id, sent = by_metric[_filter_metric("outbound_sent")]
    events_id, events = by_metric[_filter_metric(numerator)]
    assert sent["dimensions"] == {"app": "${each.key}"}
    assert events["dimensions"] == {"app": "${each.key}", **extra_dimensions}
    for metric in (sent, events):
        assert metric["namespace"] == "${local.metrics_namespace}"
        assert metric["stat"] == "Sum"
        assert metric["period"] == "${var.app_feedback_alarm_period_seconds}"
    expression = result["expression"]
    assert expression == (
        f"IF(FILL({sent_id}, 0) >= ${{var.{guard}}}, FILL({events_id}, 0) / {sent_id}, 0)"
    )
    assert alarm["threshold"] == f"${{var.{threshold}}}"
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["evaluation_periods"] == 1
    assert alarm["treat_missing_data"] == "notBreaching"
    assert alarm["alarm_actions"] == "${var.alarm_actions}"
    assert alarm["ok_actions"] == "${var.alarm_actions}"
    assert alarm["tags"] == "${local.tags}"
    # The page says which app, and where its feedback is.
    description = alarm["alarm_description"]
    assert "${each.key}" in description
    assert LINES[numerator]["event"] in description
    assert "${aws_cloudwatch_log_group.worker.name}" in description


def _split_arguments(text: str) -> list[str]:
    depth, start, parts = 0, 0, []
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def metric_math(expression: str, values: dict[str, float | None]) -> float | None:
    """Evaluate the alarms' CloudWatch metric math for one period: IF (lazy, as
    CloudWatch picks per data point), FILL, comparisons and arithmetic; None is a
    period without data. Enough for `IF(FILL(a, 0) >= n, FILL(b, 0) / a, 0)`."""
    text = expression.strip()
    if text.startswith("IF(") and text.endswith(")"):
        condition, then, otherwise = _split_arguments(text[3:-1])
        chosen = then if metric_math(condition, values) else otherwise
        return metric_math(chosen, values)

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return repr(float(match.group(2)) if value is None else value)

    text = re.sub(r"FILL\((\w+), ([0-9.]+)\)", fill, text)
    if any(values.get(name) is None for name in re.findall(r"\b[a-z]\w*\b", text)):
        return None  # a bare reference to a period without data: no data point
    return eval(text, {"__builtins__": {}}, dict(values))


@pytest.mark.parametrize(
    ("name", "sent", "events", "pages"),
    [
        ("app_bounce_rate", 2, 1, False),  # 50 %, but 2 mails: the volume guard
        ("app_bounce_rate", 99, 30, False),
        ("app_bounce_rate", 100, 5, False),  # exactly 5 %: not above
        ("app_bounce_rate", 100, 6, True),
        ("app_bounce_rate", 10_000, 600, True),
        ("app_bounce_rate", 10_000, None, False),  # no bounce line in the period
        ("app_bounce_rate", None, 3, False),  # bounces of mail sent earlier, none now
        ("app_complaint_rate", 100, 1, False),  # a single complaint never pages alone
        ("app_complaint_rate", 999, 5, False),
        ("app_complaint_rate", 1000, 1, False),  # exactly 0.1 %
        ("app_complaint_rate", 1000, 2, True),
        ("app_complaint_rate", 50_000, 60, True),
    ],
)
def test_the_volume_guard_and_thresholds_at_the_defaults(
    module: Module, name: str, sent: int | None, events: int | None, pages: bool
) -> None:
    _, _, threshold_var, _ = ALARMS[name]
    alarm = module.resource("aws_cloudwatch_metric_alarm", name)
    queries = _queries(alarm)
    (result,) = [q for q in queries.values() if q.get("return_data") is True]
    expression = re.sub(
        r"\$\{var\.(\w+)\}",
        lambda m: repr(module.variables[m.group(1)]["default"]),
        result["expression"],
    )
    ids = [qid for qid, q in queries.items() if "metric" in q]
    sent_id = next(i for i in ids if "outbound_sent" in queries[i]["metric"][0]["metric_name"])
    (events_id,) = [i for i in ids if i != sent_id]
    rate = metric_math(expression, {sent_id: sent, events_id: events})
    threshold = module.variables[threshold_var]["default"]
    # treat_missing_data = notBreaching: no value is no page.
    assert (rate is not None and rate > threshold) is pages, (expression, rate)


def test_thresholds_and_guards_default_to_awss_review_levels(module: Module) -> None:
    variables = module.variables
    assert variables["app_bounce_rate_alarm_threshold"]["default"] == 0.05
    assert variables["app_complaint_rate_alarm_threshold"]["default"] == 0.001
    assert variables["app_bounce_rate_alarm_min_sent"]["default"] == 100
    # One complaint alone stays at or below the threshold.
    guard = variables["app_complaint_rate_alarm_min_sent"]["default"]
    assert 1 / guard <= variables["app_complaint_rate_alarm_threshold"]["default"]
    assert variables["app_feedback_alarm_period_seconds"]["default"] == 3600


@pytest.mark.parametrize(
    ("variable", "good", "bad"),
    [
        ("app_bounce_rate_alarm_threshold", [0.01, 0.05, 0.5], [0, 1, -0.1]),
        ("app_complaint_rate_alarm_threshold", [0.0005, 0.001], [0, 1.5]),
        ("app_bounce_rate_alarm_min_sent", [1, 100, 5000], [0, 0.5, -1]),
        ("app_complaint_rate_alarm_min_sent", [1, 1000], [0, 10.5]),
        ("app_feedback_alarm_period_seconds", [300, 3600, 86400], [60, 90, 3630, 172800]),
    ],
)
def test_alarm_variables_are_validated(
    module: Module, variable: str, good: list[float], bad: list[float]
) -> None:
    (validation,) = module.variables[variable]["validation"]
    for value in good:
        assert evaluate_condition(module, validation["condition"], {variable: value}), value
    for value in bad:
        assert not evaluate_condition(module, validation["condition"], {variable: value}), value


def test_the_account_level_reputation_alarms_stay(module: Module) -> None:
    for name, metric in (
        ("ses_bounce_rate", "Reputation.BounceRate"),
        ("ses_complaint_rate", "Reputation.ComplaintRate"),
    ):
        alarm = module.resource("aws_cloudwatch_metric_alarm", name)
        assert alarm["namespace"] == "AWS/SES"
        assert alarm["metric_name"] == metric
        assert alarm["alarm_actions"] == "${var.alarm_actions}"


def test_feedback_events_are_published_by_default_opens_and_clicks_opt_in(
    module: Module,
) -> None:
    variable = module.variables["ses_event_types"]
    default = set(variable["default"])
    assert default >= {"SEND", "REJECT", "DELIVERY", "BOUNCE", "COMPLAINT", "DELIVERY_DELAY"}
    assert not default & {"OPEN", "CLICK"}
    description = variable["description"]
    for words in ("OPEN", "CLICK", "opt-in"):
        assert words in description, words


def test_the_guide_documents_the_per_app_alarms() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    monitoring = guide[guide.index("## Monitoring") : guide.index("## The task role")]
    for words in (
        "<name>-<app>-bounce-rate",
        "<name>-<app>-complaint-rate",
        "feedback.bounced",
        "feedback.complained",
        "app_bounce_rate_alarm_threshold",
        "app_complaint_rate_alarm_min_sent",
        "deploy/prometheus/mailflow-rules.yml",
    ):
        assert words in monitoring, words


def test_alarm_names_reference_only_known_filters(module: Module) -> None:
    filters = set(module.resources["aws_cloudwatch_log_metric_filter"])
    for name in ALARMS:
        alarm = module.resource("aws_cloudwatch_metric_alarm", name)
        used = set(re.findall(r"aws_cloudwatch_log_metric_filter\.(\w+)", expr(str(alarm))))
        assert used, name
        assert used <= filters, used
