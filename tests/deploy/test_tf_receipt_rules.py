"""The receipt rule goes into the module's own rule set or into an existing one, and the
module never deactivates another active rule set without being told to.

A region has one active receipt rule set per account. Before: activating the module's
set silently deactivated any other; naming an existing set made the module create it;
and the raw bucket accepted writes only from a rule in the module's own set.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.hcl import Module, evaluate_condition, expr, load_module, render

ACCOUNT = {
    "local.account_id": "123456789012",
    "local.region": "eu-west-1",
    "local.partition": "aws",
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _preconditions(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for block in resource.get("lifecycle", []) for p in block.get("precondition", [])]


def test_an_existing_rule_set_is_used_not_created(module: Module) -> None:
    assert module.variables["create_receipt_rule_set"]["default"] is True
    rule_set = module.resource("aws_ses_receipt_rule_set", "this")
    assert rule_set["count"] == "${var.create_receipt_rule_set ? 1 : 0}"
    assert rule_set["rule_set_name"] == "${local.rule_set_name}"
    rule = module.resource("aws_ses_receipt_rule", "store")
    # Into the created set (an implicit dependency), or the existing one by name.
    assert rule["rule_set_name"] == (
        "${var.create_receipt_rule_set ? aws_ses_receipt_rule_set.this[0].rule_set_name"
        " : local.rule_set_name}"
    )
    assert rule["after"] == "${var.receipt_rule_after}"
    # create_receipt_rule_set = false needs the existing set's name.
    (needs_name,) = _preconditions(rule)
    condition = needs_name["condition"]
    assert not evaluate_condition(module, condition, {"create_receipt_rule_set": False})
    assert evaluate_condition(
        module,
        condition,
        {"create_receipt_rule_set": False, "receipt_rule_set_name": "default-rule-set"},
    )
    assert evaluate_condition(module, condition, {})


def test_activation_is_checked_against_the_active_set(module: Module) -> None:
    assert module.variables["activate_receipt_rule_set"]["default"] is True
    assert module.variables["replace_active_receipt_rule_set"]["default"] is False
    locals_ = module.locals
    assert expr(locals_["activate_rule_set"]) == (
        "var.create_receipt_rule_set && var.activate_receipt_rule_set"
    )
    assert expr(locals_["check_active_rule_set"]) == (
        "local.activate_rule_set && !var.replace_active_receipt_rule_set"
    )
    # The region's active set is read whenever activation is to be checked...
    current = module.data["aws_ses_active_receipt_rule_set"]["current"]
    assert current["count"] == "${local.check_active_rule_set ? 1 : 0}"
    active = module.resource("aws_ses_active_receipt_rule_set", "this")
    assert active["count"] == "${local.activate_rule_set ? 1 : 0}"
    # ...and activation fails unless the active set is already ours (or opted in).
    (guard,) = _preconditions(active)
    condition = expr(guard["condition"])
    assert condition.startswith("!local.check_active_rule_set ||")
    assert "data.aws_ses_active_receipt_rule_set.current[0].rule_set_name" in condition
    assert "== local.rule_set_name" in condition
    assert "replace_active_receipt_rule_set = true" in guard["error_message"]
    assert "create_receipt_rule_set = false" in guard["error_message"]

    def checked(**values: Any) -> bool:
        return evaluate_condition(module, locals_["check_active_rule_set"], values)

    assert checked() is True
    assert checked(replace_active_receipt_rule_set=True) is False
    assert checked(create_receipt_rule_set=False) is False
    assert checked(activate_receipt_rule_set=False) is False


def test_source_arns_name_the_rule_wherever_it_lives(module: Module) -> None:
    existing = render(
        module,
        module.locals["receipt_rule_arn"],
        {**ACCOUNT, "receipt_rule_set_name": "inbound-rules"},
    )
    assert existing == (
        "arn:aws:ses:eu-west-1:123456789012:receipt-rule-set/inbound-rules"
        ":receipt-rule/mailflow-store"
    )
    own = render(module, module.locals["receipt_rule_arn"], ACCOUNT)
    assert "receipt-rule-set/mailflow-rules:receipt-rule/mailflow-store" in own
    # The rule is named and placed exactly as the ARN says.
    rule = module.resource("aws_ses_receipt_rule", "store")
    assert rule["name"] == "${local.receipt_rule_name}"
    assert "local.rule_set_name" in rule["rule_set_name"]
    # Both writers SES checks at rule creation accept exactly that ARN.
    documents = module.data["aws_iam_policy_document"]
    raw = next(
        s for s in documents["raw_bucket"]["statement"] if s["sid"] == "AllowSESReceiptRulePuts"
    )
    topic = documents["inbound_topic"]["statement"][0]
    for statement in (raw, topic):
        arns = {c["variable"]: c["values"] for c in statement["condition"]}
        assert arns["aws:SourceArn"] == ["${local.receipt_rule_arn}"]
        assert arns["aws:SourceAccount"] == ["${local.account_id}"]


def test_the_rule_set_output_follows_the_rule(module: Module) -> None:
    assert module.outputs["receipt_rule_set_name"]["value"] == (
        "${aws_ses_receipt_rule.store.rule_set_name}"
    )
    assert module.outputs["receipt_rule_arn"]["value"] == "${local.receipt_rule_arn}"
