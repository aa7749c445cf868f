"""Scale to zero: with min_tasks = 0 an idle deployment runs no task.

Target tracking (backlog per task) scales in to min_tasks, zero included, but cannot
scale out from zero: its adjustment is proportional to the running count. A queue
alarm does it: messages visible on inbound or outbound while neither queue sees a
receive (a running worker long-polls both) -> a step-scaling policy sets the desired
count to 1. The "no running task" alarm, meaningless then, exists only with
min_tasks >= 1.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.hcl import Module, evaluate_condition, expr, load_module


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def test_zero_tasks_is_an_allowed_floor(module: Module) -> None:
    variable = module.variables["min_tasks"]
    assert variable["default"] == 1
    (validation,) = variable["validation"]
    assert evaluate_condition(module, validation["condition"], {"min_tasks": 0})
    assert not evaluate_condition(module, validation["condition"], {"min_tasks": -1})
    assert not evaluate_condition(module, validation["condition"], {"min_tasks": 0.5})
    target = module.resource("aws_appautoscaling_target", "worker")
    assert target["min_capacity"] == "${var.min_tasks}"
    assert module.resource("aws_ecs_service", "worker")["desired_count"] == "${var.min_tasks}"
    assert expr(module.locals["scale_to_zero"]) == "var.min_tasks == 0"


def test_a_queue_alarm_starts_the_first_task(module: Module) -> None:
    policy = module.resource("aws_appautoscaling_policy", "wake_up")
    assert policy["count"] == "${local.scale_to_zero ? 1 : 0}"
    assert policy["policy_type"] == "StepScaling"
    (config,) = policy["step_scaling_policy_configuration"]
    assert config["adjustment_type"] == "ExactCapacity"
    assert config["step_adjustment"] == [
        {"metric_interval_lower_bound": 0, "scaling_adjustment": 1}
    ]
    alarm = module.resource("aws_cloudwatch_metric_alarm", "wake_up")
    assert alarm["count"] == "${local.scale_to_zero ? 1 : 0}"
    assert alarm["alarm_actions"] == ["${aws_appautoscaling_policy.wake_up[0].arn}"]
    assert (alarm["comparison_operator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["evaluation_periods"] == 1
    # Its inputs: visible messages and receives on both work queues, by minute.
    (dynamic,) = alarm["dynamic"]
    inputs = dynamic["metric_query"]["for_each"]
    assert {(v["queue"], v["metric"]) for v in inputs.values()} == {
        (queue, metric)
        for queue in ("inbound", "outbound")
        for metric in (
            "ApproximateNumberOfMessagesVisible",
            "NumberOfEmptyReceives",
            "NumberOfMessagesReceived",
        )
    }
    (content,) = dynamic["metric_query"]["content"]
    assert content["metric"][0]["period"] == 60
    (result,) = [q for q in alarm["metric_query"] if q.get("return_data") is True]
    expression = result["expression"]
    visible = [k for k, v in inputs.items() if v["metric"] == "ApproximateNumberOfMessagesVisible"]
    receives = [k for k, v in inputs.items() if v["metric"] != "ApproximateNumberOfMessagesVisible"]
    assert re.match(r"IF\(\(inbound_visible \+ outbound_visible\) > 0 AND ", expression)
    for name in visible + receives:
        assert name in expression
    assert expression.endswith("== 0, 1, 0)")


def test_target_tracking_still_scales_on_backlog(module: Module) -> None:
    policy = module.resource("aws_appautoscaling_policy", "backlog")
    assert policy["policy_type"] == "TargetTrackingScaling"
    assert "(inbound + outbound) / tasks" in str(policy)


def test_no_running_task_alarm_only_when_tasks_are_expected(module: Module) -> None:
    alarm = module.resource("aws_cloudwatch_metric_alarm", "no_running_tasks")
    assert alarm["count"] == "${var.min_tasks > 0 ? 1 : 0}"
    # A wake-up that fails still pages: messages age on the work queues.
    age = module.resource("aws_cloudwatch_metric_alarm", "oldest_message_age")
    assert age["metric_name"] == "ApproximateAgeOfOldestMessage"
