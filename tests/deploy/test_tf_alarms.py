"""Alarms page on failures, not on policy rejections.

The worker's failure-record queue (MAILFLOW_DLQ) also receives policy rejections
(virus, blocked attachment, unknown app, invalid outbound JSON): an alarm on its depth
stays red in normal operation. The worker logs one JSON line per permanent fate,
`message.failed` (error) or `message.rejected` (warning); a metric filter counts the
failures and the alarm fires on them. The SQS redrive DLQs (`<queue>-dlq`) keep their
alarms: only crash loops reach them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.hcl import Module, expr, load_module

FAILED_LINE = {
    "event": "message.failed",
    "direction": "inbound",
    "error_code": "retries_exhausted:s3_unavailable",
    "level": "error",
    "sqs_message_id": "5fea7756-0ea4-451a-a703-a558b933e274",
}
REJECTED_LINE = {
    "event": "message.rejected",
    "direction": "inbound",
    "error_code": "virus_detected",
    "level": "warning",
}
OTHER_LINES = [
    {"event": "message.handled", "level": "info"},
    {"event": "consumer.draining", "level": "info", "note": "message.failed"},
]


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def matches(pattern: str, line: dict[str, Any]) -> bool:
    """CloudWatch Logs JSON filter patterns of the form `{ $.key = "value" && ... }`."""
    body = pattern.replace('\\"', '"').strip()  # HCL's escaped quotes, as parsed
    assert body.startswith("{"), pattern
    assert body.endswith("}"), pattern
    terms = [t.strip() for t in body[1:-1].split("&&")]
    for term in terms:
        match = re.fullmatch(r'\$\.(\w+)\s*=\s*"([^"*]*)"', term)
        assert match, f"unsupported term {term!r}"
        if line.get(match.group(1)) != match.group(2):
            return False
    return True


def test_the_failure_record_queue_has_no_depth_alarm(module: Module) -> None:
    dead_letter_queues = expr(module.locals["dead_letter_queues"])
    assert 'aws_sqs_queue.this["dlq"]' not in dead_letter_queues
    assert "for role, q in aws_sqs_queue.dlq" in dead_letter_queues
    depth = module.resource("aws_cloudwatch_metric_alarm", "dlq_not_empty")
    assert depth["for_each"] == "${local.dead_letter_queues}"
    assert depth["metric_name"] == "ApproximateNumberOfMessagesVisible"
    # No other alarm watches MAILFLOW_DLQ's depth either.
    for name, alarm in module.resources["aws_cloudwatch_metric_alarm"].items():
        assert 'aws_sqs_queue.this["dlq"].name' not in str(alarm.get("dimensions", "")), name


def test_failures_are_counted_from_the_workers_log_lines(module: Module) -> None:
    failed = module.resource("aws_cloudwatch_log_metric_filter", "messages_failed")
    assert failed["log_group_name"] == "${aws_cloudwatch_log_group.worker.name}"
    assert matches(failed["pattern"], FAILED_LINE)
    assert not matches(failed["pattern"], REJECTED_LINE)
    assert not any(matches(failed["pattern"], line) for line in OTHER_LINES)
    (transformation,) = failed["metric_transformation"]
    assert transformation["value"] == "1"
    assert transformation["namespace"] == "${local.metrics_namespace}"
    # The worker's container logs to that group (awslogs), as JSON lines.
    container = module.locals["worker_container"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == (
        "${aws_cloudwatch_log_group.worker.name}"
    )
    assert module.locals["worker_environment_base"]["MAILFLOW_LOG_FORMAT"] == "json"


def test_the_failure_alarm_fires_on_any_failure_in_five_minutes(module: Module) -> None:
    alarm = module.resource("aws_cloudwatch_metric_alarm", "messages_failed")
    assert alarm["namespace"] == "${local.metrics_namespace}"
    assert alarm["metric_name"] == (
        "${aws_cloudwatch_log_metric_filter.messages_failed.metric_transformation[0].name}"
    )
    assert alarm["statistic"] == "Sum"
    assert alarm["period"] == 300
    assert alarm["evaluation_periods"] == 1
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["threshold"] == 0
    assert alarm["treat_missing_data"] == "notBreaching"
    assert alarm["alarm_actions"] == "${var.alarm_actions}"


def test_rejections_are_counted_but_page_nobody(module: Module) -> None:
    rejected = module.resource("aws_cloudwatch_log_metric_filter", "messages_rejected")
    assert matches(rejected["pattern"], REJECTED_LINE)
    assert not matches(rejected["pattern"], FAILED_LINE)
    name = rejected["metric_transformation"][0]["name"]
    for alarm in module.resources["aws_cloudwatch_metric_alarm"].values():
        assert "messages_rejected" not in str(alarm)
        assert alarm.get("metric_name") != name


def test_redrive_dlqs_keep_their_crash_loop_alarms(module: Module) -> None:
    dead_letter_queues = expr(module.locals["dead_letter_queues"])
    assert '"${role}-dlq" => q.name' in dead_letter_queues
    assert '"ses-events-dlq" => q.name' in dead_letter_queues
