"""The task role grants exactly the AWS actions the worker's code calls, on our resources.

The action set is derived at test time from mailflow/ (tools/iam_actions.py walks the
source with `ast` and maps each boto call to IAM through botocore's service models), so
a pipeline that starts calling a new API fails here until deploy/terraform/iam.tf grants
it, and a grant the code no longer needs fails here until it is removed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.hcl import ROOT, Module, expr, load_module


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("iam_actions", ROOT / "tools" / "iam_actions.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["iam_actions"] = module
    spec.loader.exec_module(module)
    return module


iam = _load_tool()

# Which resources each action may be granted on: a regex over the Terraform expression
# (each term of a concat(...) on its own, see _terms). SQS: the worker's queues and the
# SES events queue it consumes, not its redrive DLQ (`\b` stops at ses_events_dlq).
RESOURCE_RULES: list[tuple[str, str]] = [
    (r"^sqs:", r"aws_sqs_queue\.(this|ses_events)\b"),
    (
        r"^s3:ListBucket$",
        r"aws_s3_bucket\.this(\[\"\w+\"\])?\.arn$|^\$\{\[for b in aws_s3_bucket\.this",
    ),
    (r"^s3:", r"aws_s3_bucket\.this\[\"\w+\"\]\.arn\}/|attachment_source_object_arns"),
    (r"^dynamodb:", r"aws_dynamodb_table\.idempotency\.arn"),
    (
        r"^ses:(SendEmail|SendRawEmail)$",
        r"aws_sesv2_email_identity\.domain|aws_sesv2_configuration_set\.this"
        r"|sandbox_recipient_identity_arns",
    ),
    (r"^ses:GetAccount$", r"^\*$"),
    (r"^kms:", r"aws_kms_key\.this\.arn"),
]
# Actions AWS does not let a policy scope to a resource.
RESOURCELESS = {"ses:GetAccount"}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


@pytest.fixture(scope="module")
def derivation() -> Any:
    return iam.derive()


def _statements(module: Module) -> list[dict[str, Any]]:
    return module.data["aws_iam_policy_document"]["task"]["statement"]


def _granted(module: Module) -> set[str]:
    return {a for s in _statements(module) for a in s["actions"]}


def _split_top_level(text: str) -> list[str]:
    """`a, [b, c], f(d, e)` -> ["a", "[b, c]", "f(d, e)"]: commas outside brackets.
    (Enough for the policy's expressions, which have no comma inside a string.)"""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _terms(resource: str) -> list[str]:
    """The resource expressions a `concat(...)` joins, a list literal's elements apart,
    so that each is held to the rule and one allowed term cannot cover another."""
    text = expr(resource)
    if not (text.startswith("concat(") and text.endswith(")")):
        return [resource]
    terms: list[str] = []
    for argument in _split_top_level(text[len("concat(") : -1]):
        is_list = argument.startswith("[") and not argument.startswith("[for ")
        terms += _split_top_level(argument[1:-1]) if is_list else [argument]
    return terms


def test_code_calls_are_all_resolvable(derivation: Any) -> None:
    assert derivation.problems == []
    assert derivation.calls, "no AWS call found in mailflow/: the walker is broken"


def test_task_policy_grants_exactly_what_the_code_calls(module: Module, derivation: Any) -> None:
    granted = _granted(module)
    needed = derivation.actions
    missing = sorted(needed - granted)
    unused = sorted(granted - needed)
    where = {a: [f"{c.path}:{c.line}" for c in derivation.calls if a in c.actions] for a in missing}
    assert not missing, f"deploy/terraform/iam.tf lacks actions the code calls: {where}"
    assert not unused, f"deploy/terraform/iam.tf grants actions no worker code calls: {unused}"


def test_task_policy_is_scoped_to_this_deployments_resources(module: Module) -> None:
    for statement in _statements(module):
        resources = statement["resources"]
        resources = resources if isinstance(resources, list) else [resources]
        resources = [term for resource in resources for term in _terms(str(resource))]
        for action in statement["actions"]:
            rule = next((pat for prefix, pat in RESOURCE_RULES if re.search(prefix, action)), None)
            assert rule, f"no resource rule for {action}; add one to RESOURCE_RULES"
            for resource in resources:
                if resource == "*":
                    assert action in RESOURCELESS, f"{action} granted on '*'"
                assert re.search(rule, str(resource)), f"{action} granted on {resource}"


def test_scope_check_holds_each_concatenated_term_to_the_rule() -> None:
    joined = (
        '${concat([aws_sqs_queue.this["inbound"].arn, aws_sqs_queue.dlq["inbound"].arn],'
        " [for q in aws_sqs_queue.ses_events : q.arn], local.extra)}"
    )
    assert _terms(joined) == [
        'aws_sqs_queue.this["inbound"].arn',
        'aws_sqs_queue.dlq["inbound"].arn',
        "[for q in aws_sqs_queue.ses_events : q.arn]",
        "local.extra",
    ]
    rule = next(pat for prefix, pat in RESOURCE_RULES if re.search(prefix, "sqs:SendMessage"))
    allowed = [term for term in _terms(joined) if re.search(rule, term)]
    assert allowed == [_terms(joined)[0], _terms(joined)[2]]
    assert not re.search(rule, "[for q in aws_sqs_queue.ses_events_dlq : q.arn]")
    assert _terms("${[for q in aws_sqs_queue.this : q.arn]}") == [
        "${[for q in aws_sqs_queue.this : q.arn]}"
    ]


def test_task_policy_statements_are_allow_only(module: Module) -> None:
    for statement in _statements(module):
        assert statement.get("effect", "Allow") == "Allow"
        assert "not_actions" not in statement
        assert "not_resources" not in statement
        assert all("*" not in a for a in statement["actions"]), statement["actions"]


def test_deployment_doc_lists_every_action(derivation: Any) -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    undocumented = sorted(a for a in derivation.actions if f"`{a}`" not in doc)
    assert not undocumented, (
        f"docs/deployment.md's IAM table misses {undocumented}: "
        "regenerate it with `python tools/iam_actions.py`"
    )


# --- the walker itself, on a synthetic package ------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "mailflow"
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def test_walker_maps_calls_special_cases_and_kms(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": """
                async def f(clients, s3):
                    await clients.sqs.send_message(QueueUrl="q", MessageBody="b")
                    await s3.head_object(Bucket="b", Key="k")
                    await clients.s3.generate_presigned_url("get_object", Params={})
                    clients.s3.get_paginator("list_objects_v2")
                    await clients.ses.send_email(Content={})
                    await clients.ses.get_account()
            """,
        },
    )
    result = iam.derive(root)
    assert result.problems == []
    assert result.actions == {
        "sqs:SendMessage",
        "s3:GetObject",
        "s3:ListBucket",
        "ses:SendEmail",
        "ses:SendRawEmail",
        "ses:GetAccount",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }


def test_walker_skips_operator_directories_and_ignored_lines(tmp_path: Path) -> None:
    call = "async def f(c):\n    await c.sqs.purge_queue(QueueUrl='q')\n"
    root = _package(
        tmp_path,
        {
            "ops/provision.py": call,
            "ops/inject.py": call,
            "local/env.py": call,
            "cli.py": call,
            "worker.py": "async def f(c):\n"
            "    await c.sqs.purge_queue(QueueUrl='q')  # iam: ignore\n",
            "other.py": "def f(d):\n    return d.get('x'), d.items(), d.close()\n",
        },
    )
    result = iam.derive(root)
    assert result.calls == []
    assert result.problems == []


def test_a_files_name_excludes_nothing(tmp_path: Path) -> None:
    """Only the directory decides: a worker module called devtools.py is still walked."""
    call = "async def f(c):\n    await c.sqs.purge_queue(QueueUrl='q')\n"
    root = _package(tmp_path, {"inbound/devtools.py": call})
    assert [c.operation for c in iam.derive(root).calls] == ["PurgeQueue"]


def test_walker_reports_ambiguous_and_dynamic_calls(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": """
                async def f(client, name):
                    await client.tag_resource(ResourceArn="x", Tags=[])
                    client.generate_presigned_url(name)
            """,
        },
    )
    problems = iam.derive(root).problems
    assert len(problems) == 2
    assert "tag_resource" in problems[0]
    assert "literal operation name" in problems[1]
