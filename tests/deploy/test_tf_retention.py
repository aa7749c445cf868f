"""Objects a failure record needs outlive the record.

Every queue, DLQs included, keeps a message 14 days. Redriving an inbound failure
record re-reads its raw mail from S3, and a redriven outbound message reads its
attachments again: raw mail used to expire after 7 days, so an old record failed with
NoSuchKey. Both buckets now keep objects at least as long as the DLQs keep records,
by validation (at input) and by precondition (against the queues' actual retention).
"""

from __future__ import annotations

import pytest

from tests.deploy.hcl import Module, evaluate, evaluate_condition, expr, load_module

DAY = 86400


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def retention_days(module: Module) -> float:
    return float(evaluate(module, module.locals["message_retention_seconds"])) / DAY


def test_every_queue_uses_the_one_retention(module: Module) -> None:
    assert retention_days(module) == 14
    assert evaluate(module, module.locals["message_retention_days"]) == 14
    for name, queue in module.resources["aws_sqs_queue"].items():
        assert queue["message_retention_seconds"] == "${local.message_retention_seconds}", name


@pytest.mark.parametrize("variable", ["raw_mail_expiration_days", "attachments_expiration_days"])
def test_bucket_expiry_is_at_least_the_dlq_retention(module: Module, variable: str) -> None:
    days = retention_days(module)
    definition = module.variables[variable]
    assert definition["default"] >= days
    (validation,) = definition["validation"]
    accepted = [
        d
        for d in range(1, 60)
        if evaluate_condition(module, validation["condition"], {variable: d})
    ]
    assert min(accepted) == days, f"{variable} admits less than the DLQs' {days} days"


def test_raw_mail_outlives_a_record_written_after_retries(module: Module) -> None:
    # A record is written after the worker's attempts (hours with the default backoff)
    # and then kept 14 days; S3 rounds expiry to the next midnight UTC. One spare day.
    assert module.variables["raw_mail_expiration_days"]["default"] == retention_days(module) + 1


def test_lifecycle_rules_are_checked_against_the_queues(module: Module) -> None:
    buckets = module.locals["buckets"]
    assert "var.raw_mail_expiration_days" in str(buckets)
    assert "var.attachments_expiration_days" in str(buckets)
    lifecycle = module.resource("aws_s3_bucket_lifecycle_configuration", "this")
    (precondition,) = [p for block in lifecycle["lifecycle"] for p in block["precondition"]]
    assert expr(precondition["condition"]) == (
        "local.buckets[each.key].expiration_days >= local.message_retention_days"
    )
    assert "NoSuchKey" in precondition["error_message"]
