"""Generated names fit AWS's limits for every allowed input, and plan-time keys are known.

- IAM role names are global to the account: they carry the region, or two deployments
  of the same name in two regions collide (and stay within IAM's 64 characters).
- S3 bucket names: at most 63 characters for the longest allowed `name`, account id
  and region; a precondition checks the actual names, given ones included.
- SQS names: at most 80 characters; `<name>-<app>-dlq` and `<name>-ses-events-dlq` are
  checked by preconditions.
- Security group rules are counted over the lists, not keyed by their values, which
  may be unknown until apply.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.hcl import Module, expr, load_module, render

ACCOUNT = "123456789012"
# Long region names, the longest first (15 characters).
REGIONS = ["us-isof-south-1", "ap-southeast-5", "us-gov-west-1", "eu-west-1", "us-east-1"]


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def longest_name(module: Module) -> str:
    """The longest `name` the variable's validation admits."""
    (validation,) = module.variables["name"]["validation"]
    found = re.search(r'regex\("([^"]+)"', validation["condition"])
    assert found, validation["condition"]
    pattern = found.group(1).replace("\\\\", "\\")
    candidates = ["a" * n for n in range(1, 80)]
    admitted = [c for c in candidates if re.fullmatch(pattern, c)]
    return max(admitted, key=len)


def names(module: Module, local: str, **values: Any) -> list[str]:
    return [
        render(
            module,
            module.locals[local],
            {"local.account_id": ACCOUNT, "local.region": region, **values},
        )
        for region in REGIONS
    ]


def _preconditions(resource: dict[str, Any]) -> list[str]:
    return [
        p["condition"] for block in resource.get("lifecycle", []) for p in block["precondition"]
    ]


def test_iam_role_names_carry_the_region_and_fit(module: Module) -> None:
    name = longest_name(module)
    assert len(name) == 30
    roles = module.resources["aws_iam_role"]
    assert roles["task"]["name"] == "${local.task_role_name}"
    assert roles["execution"]["name"] == "${local.execution_role_name}"
    for local in ("task_role_name", "execution_role_name"):
        generated = names(module, local, name=name)
        assert len(set(generated)) == len(REGIONS), "two regions would collide"
        for role, region in zip(generated, REGIONS, strict=True):
            assert region in role
            assert len(role) <= 64, role


def test_generated_bucket_names_fit_s3s_63_characters(module: Module) -> None:
    name = longest_name(module)
    for local in ("raw_bucket_name", "attachments_bucket_name"):
        for bucket in names(module, local, name=name):
            assert len(bucket) <= 63, f"{bucket} ({len(bucket)})"
            assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket), bucket
    # The actual names (given ones included) are checked before anything is created.
    (condition,) = _preconditions(module.resource("aws_s3_bucket", "this"))
    assert expr(condition) == "length(each.value.name) >= 3 && length(each.value.name) <= 63"
    for variable in ("raw_bucket_name", "attachments_bucket_name"):
        (validation,) = module.variables[variable]["validation"]
        assert "{1,61}" in validation["condition"]


def _sqs_precondition_holds(condition: str, queue_name: str) -> bool:
    python = expr(condition).replace("${each.value}", queue_name)
    python = python.replace("${local.ses_events_queue_name}", queue_name)
    match = re.fullmatch(r'length\("([^"]+)"\) <= (\d+)', python)
    assert match, condition
    return len(match.group(1)) <= int(match.group(2))


def test_queue_names_are_checked_against_sqss_80_characters(module: Module) -> None:
    name = longest_name(module)
    (app_rule,) = module.variables["apps"]["validation"][:1]
    repeat = re.search(r"\{0,(\d+)\}", app_rule["condition"])
    assert repeat, app_rule["condition"]
    longest_app = "a" * (int(repeat.group(1)) + 1)
    (dlq_condition,) = _preconditions(module.resource("aws_sqs_queue", "dlq"))
    # Too long for SQS at the allowed maximum of both parts: the precondition says so.
    assert not _sqs_precondition_holds(dlq_condition, f"{name}-{longest_app}")
    assert len(f"{name}-{longest_app}-dlq") > 80
    # What fits, passes.
    assert _sqs_precondition_holds(dlq_condition, f"{name}-{'a' * 45}")
    assert len(f"{name}-{'a' * 45}-dlq") == 80
    assert not _sqs_precondition_holds(dlq_condition, f"{name}-{'a' * 46}")
    (events_condition,) = _preconditions(module.resource("aws_sqs_queue", "ses_events_dlq"))
    events = render(module, module.locals["ses_events_queue_name"], {"name": name})
    assert _sqs_precondition_holds(events_condition, events)
    assert len(f"{events}-dlq") <= 80


def test_ingress_rules_do_not_key_on_values_unknown_at_plan(module: Module) -> None:
    for rule_name, variable in (
        ("metrics_cidr", "metrics_ingress_cidr_blocks"),
        ("metrics_sg", "metrics_ingress_security_group_ids"),
    ):
        rule = module.resource("aws_vpc_security_group_ingress_rule", rule_name)
        assert "for_each" not in rule
        assert rule["count"] == f"${{length(var.{variable})}}"
        assert f"var.{variable}[count.index]" in str(rule)
    # Nowhere in the module is a for_each keyed by those lists' values.
    for text in module.files.values():
        for line in text.splitlines():
            if "for_each" in line:
                assert "metrics_ingress" not in line, line
