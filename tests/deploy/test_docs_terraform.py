"""The deployment guide documents the module's switches by their real names.

Settings written as `name = value` in the Terraform part of docs/deployment.md must be
variables of the module (a renamed variable leaves a stale guide behind), and the
choices an operator must make before the first apply are explained there.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.hcl import ROOT, Module, load_module

GUIDE = ROOT / "docs" / "deployment.md"


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


@pytest.fixture(scope="module")
def terraform_part() -> str:
    text = GUIDE.read_text()
    return text[
        text.index("## Deploying to AWS with Terraform") : text.index("## What it costs per month")
    ]


def test_settings_named_in_the_guide_are_module_variables(
    module: Module, terraform_part: str
) -> None:
    named = set(re.findall(r"`([a-z][a-z0-9_]+) = [^`]+`", terraform_part))
    assert named, "no `variable = value` in the guide: the pattern is broken"
    unknown = sorted(n for n in named if n not in module.variables)
    assert not unknown, f"docs/deployment.md names settings the module does not have: {unknown}"


@pytest.mark.parametrize(
    "words",
    [
        "create_receipt_rule_set = false",
        "replace_active_receipt_rule_set = true",
        "empty result",
        "min_tasks = 0",
        "MAILFLOW_MAX_IN_FLIGHT_BYTES",
        "floor((task_memory - 384) * 1048576 / 4)",
        "ephemeral_storage_gib",
        "create_vpc_endpoints = true",
        "message.failed",
        "message.rejected",
        "<name>-ses-events",
    ],
)
def test_the_guide_explains(terraform_part: str, words: str) -> None:
    assert words in terraform_part
