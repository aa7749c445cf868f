"""The worker learns who may write each app's outbound mail from the module (issue 9).

Offline: the module's HCL is parsed and its expressions checked; the unique ids come
from `data.aws_iam_role` at plan time, which only a real plan can resolve.
"""

from __future__ import annotations

import pytest

from tests.deploy.hcl import Module, expr, load_module


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def test_apps_carry_their_producers_and_the_worker_trusts_itself(module: Module) -> None:
    env = module.locals["worker_environment_base"]
    assert env["MAILFLOW_APPS"] == "${jsonencode(local.worker_apps)}"
    assert env["MAILFLOW_OUTBOUND__WRITER_IDENTITY"] == "${var.outbound_writer_identity}"
    assert env["MAILFLOW_OUTBOUND__TRUSTED_WRITERS"] == "${jsonencode(local.trusted_writers)}"
    apps = expr(module.locals["worker_apps"])
    assert "data.aws_iam_role.producer[" in apps
    assert ".unique_id" in apps
    assert "cfg.producers" in apps
    trusted = expr(module.locals["trusted_writers"])
    assert "aws_iam_role.task.unique_id" in trusted  # the worker re-sends deferred mail
    assert "data.aws_iam_role.operator[" in trusted  # operators replay failures


def test_enforced_by_default(module: Module) -> None:
    variable = module.variables["outbound_writer_identity"]
    assert variable["default"] == "enforce"
    app = module.variables["apps"]["type"]
    assert "producer_role_arns" in app
    assert "producers" in app
