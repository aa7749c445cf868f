"""SES sending events reach a queue: configuration set -> SNS topic -> `<name>-ses-events`.

Before, the configuration set's topic had no subscriber, so bounce and complaint events
(which the SES production-access request asks about) went nowhere. The worker consumes
the queue (MAILFLOW_SES_EVENTS_QUEUE): Send, Delivery, Bounce and Reject events settle
sends whose outcome was unknown, and later bounces and complaints arrive there too. It
gets the queue exactly when the module creates it, the same SQS actions as on its other
consumed queues, and the same redrive rule.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.hcl import Module, evaluate, evaluate_number, expr, load_module, render

REQUIRED_EVENTS = {
    "SEND",
    "REJECT",
    "DELIVERY",
    "BOUNCE",
    "COMPLAINT",
    "DELIVERY_DELAY",
    "RENDERING_FAILURE",
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def test_event_destination_publishes_the_events_to_the_topic(module: Module) -> None:
    assert set(module.variables["ses_event_types"]["default"]) >= REQUIRED_EVENTS
    destination = module.resource("aws_sesv2_configuration_set_event_destination", "events")
    event = destination["event_destination"][0]
    assert event["enabled"] is True
    assert event["matching_event_types"] == "${var.ses_event_types}"
    assert event["sns_destination"][0]["topic_arn"] == "${aws_sns_topic.ses_events[0].arn}"
    assert "${aws_sns_topic_subscription.ses_events}" in destination["depends_on"]


def test_the_topic_feeds_its_own_queue_with_a_redrive_dlq(module: Module) -> None:
    queues = module.resources["aws_sqs_queue"]
    queue, dlq = queues["ses_events"], queues["ses_events_dlq"]
    assert module.locals["ses_events_queue_name"] == "${local.prefix}ses-events"
    assert queue["name"] == "${local.ses_events_queue_name}"
    assert dlq["name"] == "${local.ses_events_queue_name}-dlq"
    for q in (queue, dlq):
        assert q["count"] == "${var.create_configuration_set ? 1 : 0}"
        assert q["kms_master_key_id"] == "${aws_kms_key.this.arn}"
        assert q["message_retention_seconds"] == "${local.message_retention_seconds}"
    assert "aws_sqs_queue.ses_events_dlq[0].arn" in expr(queue["redrive_policy"])
    allow = module.resource("aws_sqs_queue_redrive_allow_policy", "ses_events_dlq")
    assert "aws_sqs_queue.ses_events[0].arn" in expr(allow["redrive_allow_policy"])


def test_only_the_events_topic_may_send_to_the_queue(module: Module) -> None:
    (statement,) = module.data["aws_iam_policy_document"]["ses_events_queue"]["statement"]
    assert statement.get("effect", "Allow") == "Allow"
    assert statement["actions"] == ["sqs:SendMessage"]
    assert statement["resources"] == ["${aws_sqs_queue.ses_events[0].arn}"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["sns.amazonaws.com"]}]
    (condition,) = statement["condition"]
    assert condition == {
        "test": "ArnEquals",
        "variable": "aws:SourceArn",
        "values": ["${aws_sns_topic.ses_events[0].arn}"],
    }
    policy = module.resource("aws_sqs_queue_policy", "ses_events")
    assert policy["queue_url"] == "${aws_sqs_queue.ses_events[0].id}"


def test_subscription_keeps_the_sns_envelope(module: Module) -> None:
    subscription = module.resource("aws_sns_topic_subscription", "ses_events")
    assert subscription["topic_arn"] == "${aws_sns_topic.ses_events[0].arn}"
    assert subscription["protocol"] == "sqs"
    assert subscription["endpoint"] == "${aws_sqs_queue.ses_events[0].arn}"
    assert subscription["raw_message_delivery"] is False
    assert subscription["depends_on"] == ["${aws_sqs_queue_policy.ses_events}"]


def test_topic_accepts_only_our_configuration_set(module: Module) -> None:
    (statement,) = module.data["aws_iam_policy_document"]["ses_events_topic"]["statement"]
    conditions = {c["variable"]: c["values"][0] for c in statement["condition"]}
    assert conditions["aws:SourceAccount"] == "${local.account_id}"
    assert conditions["aws:SourceArn"].endswith(
        ":configuration-set/${local.configuration_set_name}"
    )
    topic = module.resource("aws_sns_topic", "ses_events")
    assert topic["kms_master_key_id"] == "${aws_kms_key.this.arn}"


def test_the_key_lets_ses_and_sns_encrypt(module: Module) -> None:
    statements = {s["sid"]: s for s in module.data["aws_iam_policy_document"]["kms"]["statement"]}
    for sid, service in (
        ("SESWritesEncryptedMailAndNotifications", "ses.amazonaws.com"),
        ("SNSDeliversToEncryptedQueues", "sns.amazonaws.com"),
    ):
        statement = statements[sid]
        assert statement["principals"] == [{"type": "Service", "identifiers": [service]}]
        assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(statement["actions"])
        assert statement["condition"][0]["variable"] == "aws:SourceAccount"


def test_queue_is_an_output(module: Module) -> None:
    assert module.outputs["ses_events_queue_url"]["value"] == (
        "${try(aws_sqs_queue.ses_events[0].url, null)}"
    )
    assert module.outputs["ses_events_queue_name"]["value"] == (
        "${try(aws_sqs_queue.ses_events[0].name, null)}"
    )


def test_the_worker_reads_the_queue_exactly_when_it_is_created(module: Module) -> None:
    environment = {
        **module.locals["worker_environment_base"],
        **module.locals["worker_environment_optional"],
    }
    assert [k for k, v in environment.items() if "ses_events" in str(v)] == [
        "MAILFLOW_SES_EVENTS_QUEUE"
    ]
    setting = expr(environment["MAILFLOW_SES_EVENTS_QUEUE"])
    assert setting == "var.create_configuration_set ? local.ses_events_queue_name : null"
    queue = module.resource("aws_sqs_queue", "ses_events")
    assert queue["name"] == "${local.ses_events_queue_name}"
    for name in ("mailflow", "mailflow-prod"):
        queue_name = render(module, module.locals["ses_events_queue_name"], {"name": name})
        assert queue_name == f"{name}-ses-events"
        literal = setting.replace("local.ses_events_queue_name", f'"{queue_name}"')
        for created in (True, False):
            values = {"create_configuration_set": created}
            exists = evaluate(module, queue["count"], values) == 1
            assert evaluate(module, literal, values) == (queue_name if exists else None)
    # A null setting is dropped, so without the queue the variable is unset (no consumer).
    merged = expr(module.locals["worker_environment"])
    assert "local.worker_environment_optional" in merged
    assert merged.endswith("if v != null}")


def _task_statements(module: Module) -> list[dict[str, Any]]:
    return module.data["aws_iam_policy_document"]["task"]["statement"]


def _actions_on(module: Module, *references: str) -> set[str]:
    """Actions of the task-role statements whose resources name one of `references`."""
    return {
        action
        for statement in _task_statements(module)
        if any(ref in str(statement["resources"]) for ref in references)
        for action in statement["actions"]
    }


def test_the_task_role_consumes_the_queue_like_its_other_queues(module: Module) -> None:
    events = _actions_on(module, "[for q in aws_sqs_queue.ses_events : q.arn]")
    inbound = _actions_on(
        module, 'aws_sqs_queue.this["inbound"].arn', "[for q in aws_sqs_queue.this : q.arn]"
    )
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= events
    assert events == inbound, "the events queue gets the same SQS actions as inbound"
    statements = str(_task_statements(module))
    # Granted through a `for` over the counted queue: nothing (and no error) without it.
    assert "aws_sqs_queue.ses_events[0]" not in statements
    # Its redrive DLQ is SQS's own: the worker writes failure records to MAILFLOW_DLQ.
    assert "ses_events_dlq" not in statements


def _max_receive_count(queue: dict[str, Any]) -> str:
    match = re.search(r"maxReceiveCount\s*=\s*([\w.]+)", expr(queue["redrive_policy"]))
    assert match, queue["redrive_policy"]
    return match.group(1)


def test_the_queue_is_redriven_and_leased_like_the_workers_queues(module: Module) -> None:
    queues = module.resources["aws_sqs_queue"]
    events, worker = queues["ses_events"], queues["this"]
    assert _max_receive_count(events) == _max_receive_count(worker) == "local.max_receive_count"
    headroom = module.variables["redrive_headroom"]["default"]
    for attempts in (1, module.variables["max_attempts"]["default"], 100):
        count = evaluate_number(module, "${local.max_receive_count}", {"max_attempts": attempts})
        assert count == attempts + headroom
        assert count > attempts
    assert events["visibility_timeout_seconds"] == worker["visibility_timeout_seconds"]
    assert events["receive_wait_time_seconds"] == worker["receive_wait_time_seconds"]


def test_its_dlq_is_alarmed_like_the_others(module: Module) -> None:
    dead_letter_queues = expr(module.locals["dead_letter_queues"])
    assert '"ses-events-dlq" => q.name' in dead_letter_queues
    assert "aws_sqs_queue.ses_events_dlq" in dead_letter_queues
