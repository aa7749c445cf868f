"""Invariants of the Terraform module, read from the parsed HCL (no provider needed).

Each test states something that must stay true between the code and the deployment:
queue names and settings the worker expects, the idempotency table's attributes, the
timeouts that make retries and shutdown safe, the SES -> S3 -> SNS -> SQS wiring.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mailflow.aws import clients as aws
from mailflow.aws import keys as idempotency
from mailflow.outbound.config import OutboundSettings
from mailflow.settings import Settings
from tests.deploy.hcl import (
    EXAMPLE_DIR,
    MODULE_DIR,
    ROOT,
    Module,
    evaluate_number,
    expr,
    load_module,
)

TERRAFORM = shutil.which("terraform")


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


def settings_env_names() -> tuple[set[str], set[str]]:
    """(every env name Settings reads, the names it requires) - the operator contract."""
    names: set[str] = set()
    required: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        own = {str(c).upper() for c in choices} if choices else {f"MAILFLOW_{field_name.upper()}"}
        names |= own
        if info.is_required():
            required |= own
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {
                f"MAILFLOW_{field_name.upper()}__{sub.upper()}" for sub in annotation.model_fields
            }
    return names, required


# --- queues ---------------------------------------------------------------------------


def test_every_queue_has_its_own_dlq_and_redrive(module: Module) -> None:
    queues = module.resources["aws_sqs_queue"]
    assert set(queues) == {"this", "dlq", "ses_events", "ses_events_dlq"}
    assert queues["this"]["for_each"] == queues["dlq"]["for_each"] == "${local.queues}"
    redrive = expr(queues["this"]["redrive_policy"])
    assert "deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn" in redrive
    assert "maxReceiveCount = local.max_receive_count" in redrive
    events = expr(queues["ses_events"]["redrive_policy"])
    assert "deadLetterTargetArn = aws_sqs_queue.ses_events_dlq[0].arn" in events
    assert "maxReceiveCount = local.max_receive_count" in events
    assert "redrive_policy" not in queues["dlq"]
    assert "redrive_policy" not in queues["ses_events_dlq"]
    allow = module.resource("aws_sqs_queue_redrive_allow_policy", "dlq")
    assert allow["for_each"] == "${local.queues}"
    for queue in queues.values():
        assert queue["kms_master_key_id"] == "${aws_kms_key.this.arn}"


def test_queue_names_are_the_workers_defaults(module: Module) -> None:
    names = module.locals["queues"]
    fixed = re.findall(r"(\w+)\s*=\s*\"\$\{local\.prefix\}([\w-]+)\"", expr(names))
    roles = {role: f"mailflow-{suffix}" for role, suffix in fixed}
    settings = Settings(domains=("example.com",))
    assert roles == {
        role: name for role, name in settings.all_queues().items() if not role.startswith("app:")
    }
    assert '"app-${app}" => "${local.prefix}${app}"' in expr(names)
    assert module.variables["name"]["default"] == "mailflow"
    assert _default("app_queue_prefix") == "mailflow-"


def test_redrive_comes_after_the_workers_own_attempts(module: Module) -> None:
    for attempts in (1, module.variables["max_attempts"]["default"], 100):
        count = evaluate_number(
            module, module.locals["max_receive_count"], {"max_attempts": attempts}
        )
        assert count > attempts
    assert module.variables["max_attempts"]["default"] == _default("max_attempts")
    conditions = [v["condition"] for v in module.variables["redrive_headroom"]["validation"]]
    assert any(">= 1" in c for c in conditions)


def worst_aws_call_seconds() -> float:
    """Longest one SDK call may block: (connect + read timeout) x attempts."""
    config = aws._CLIENT_CONFIG
    attempts = (config.retries or {}).get("max_attempts", 3)
    return float((config.connect_timeout + config.read_timeout) * attempts)


def test_visibility_timeouts_cover_the_lease_and_the_longest_handling(module: Module) -> None:
    handling = module.variables["max_handling_seconds"]["default"]
    longest = worst_aws_call_seconds() + OutboundSettings().max_rate_wait_seconds
    assert handling >= longest, f"max_handling_seconds {handling} < {longest} (SDK + rate wait)"
    assert module.variables["visibility_timeout_seconds"]["default"] >= _default(
        "visibility_timeout_seconds"
    )
    for lease in (10, 60, 600, 43200):
        visibility = evaluate_number(
            module,
            module.locals["queue_visibility_timeout_seconds"],
            {"visibility_timeout_seconds": lease},
        )
        assert visibility >= lease
        assert visibility >= handling
    queue = module.resource("aws_sqs_queue", "this")
    assert queue["visibility_timeout_seconds"] == "${local.queue_visibility_timeout_seconds}"
    env = module.locals["worker_environment_base"]
    assert (
        env["MAILFLOW_VISIBILITY_TIMEOUT_SECONDS"] == "${tostring(var.visibility_timeout_seconds)}"
    )


# --- idempotency table ------------------------------------------------------------------


def test_idempotency_table_uses_the_codes_attributes(module: Module) -> None:
    table = module.resource("aws_dynamodb_table", "idempotency")
    assert table["hash_key"] == idempotency.KEY_ATTRIBUTE
    assert table["attribute"] == [{"name": idempotency.KEY_ATTRIBUTE, "type": "S"}]
    assert table["ttl"] == [{"attribute_name": idempotency.TTL_ATTRIBUTE, "enabled": True}]
    assert table["point_in_time_recovery"] == [{"enabled": True}]
    assert table["server_side_encryption"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["kms_key_arn"] == "${aws_kms_key.this.arn}"
    env = module.locals["worker_environment_base"]
    assert env["MAILFLOW_IDEMPOTENCY_TABLE"] == "${aws_dynamodb_table.idempotency.name}"


# --- the task's environment: the operator contract ----------------------------------------


def test_task_environment_names_are_settings_fields(module: Module) -> None:
    known, required = settings_env_names()
    env = {
        **module.locals["worker_environment_base"],
        **module.locals["worker_environment_optional"],
    }
    unknown = sorted(set(env) - known)
    assert not unknown, (
        f"Terraform sets variables mailflow.settings.Settings does not read: {unknown}"
    )
    assert required <= set(env), f"required settings missing: {sorted(required - set(env))}"
    assert env["MAILFLOW_APPS"] == "${jsonencode(local.worker_apps)}"
    assert env["MAILFLOW_DOMAINS"] == "${jsonencode(var.domains)}"
    container = module.locals["worker_container"]
    assert "local.worker_environment[k]" in expr(container["environment"])


def test_app_object_fields_are_appconfig_fields(module: Module) -> None:
    from mailflow.settings import AppConfig

    app_type = str(module.variables["apps"]["type"])
    fields = set(re.findall(r"(\w+)\s*[:=]\s*optional\(", app_type)) or set(
        re.findall(r"'(\w+)': '\$\{optional", app_type)
    )
    assert fields, app_type
    # producer_role_arns is the module's own: it becomes AppConfig.producers (unique ids).
    assert fields - {"producer_role_arns"} <= set(AppConfig.model_fields)
    worker_apps = expr(module.locals["worker_apps"])
    given = set(re.findall(r"(\w+)\s*=", worker_apps.split("=>", 1)[1]))
    assert given <= set(AppConfig.model_fields), given - set(AppConfig.model_fields)


def test_app_name_rule_matches_the_code(module: Module) -> None:
    from mailflow.settings import APP_NAME_PATTERN

    conditions = " ".join(v["condition"] for v in module.variables["apps"]["validation"])
    assert APP_NAME_PATTERN in conditions.replace("\\\\", "\\")


# --- shutdown -----------------------------------------------------------------------------


def test_stop_timeout_outlasts_the_graceful_drain(module: Module) -> None:
    # The drain outlasts the longest single AWS call, the SES client's read timeout
    # (tests/deploy/test_tf_task.py also checks the variable's validation against it).
    grace_default = module.variables["shutdown_grace_seconds"]["default"]
    assert grace_default > aws._CLIENT_CONFIG.read_timeout
    for grace in (31, grace_default, 110):
        stop = evaluate_number(
            module, module.locals["stop_timeout_seconds"], {"shutdown_grace_seconds": grace}
        )
        assert grace < stop <= 120
    container = module.locals["worker_container"]
    assert container["stopTimeout"] == "${local.stop_timeout_seconds}"


def test_worker_container_shape(module: Module) -> None:
    container = module.locals["worker_container"]
    assert container["readonlyRootFilesystem"] is True
    assert container["user"] == "10001:10001"
    assert "/healthz" in str(container["healthCheck"]["command"])
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["portMappings"][0]["containerPort"] == "${var.http_port}"
    assert module.variables["http_port"]["default"] == _default("http_port")
    task = module.resource("aws_ecs_task_definition", "worker")
    assert task["requires_compatibilities"] == ["FARGATE"]
    assert task["runtime_platform"][0]["cpu_architecture"] == "${var.cpu_architecture}"
    service = module.resource("aws_ecs_service", "worker")
    assert service["deployment_circuit_breaker"] == [{"enable": True, "rollback": True}]
    cluster = module.resource("aws_ecs_cluster", "this")
    assert cluster["setting"] == [{"name": "containerInsights", "value": "enabled"}]


def test_security_group_admits_only_metrics(module: Module) -> None:
    ingress = module.resources["aws_vpc_security_group_ingress_rule"]
    assert set(ingress) == {"metrics_cidr", "metrics_sg", "endpoints_https"}
    worker = {
        name: rule
        for name, rule in ingress.items()
        if rule["security_group_id"] == "${aws_security_group.worker.id}"
    }
    assert set(worker) == {"metrics_cidr", "metrics_sg"}
    for rule in worker.values():
        assert rule["from_port"] == rule["to_port"] == "${var.http_port}"
    # The VPC endpoints' group admits HTTPS from the workers' group and nothing else.
    endpoints = ingress["endpoints_https"]
    assert endpoints["security_group_id"] == "${aws_security_group.endpoints[0].id}"
    assert endpoints["referenced_security_group_id"] == "${aws_security_group.worker.id}"
    assert endpoints["from_port"] == endpoints["to_port"] == 443
    assert "aws_security_group_rule" not in module.resources
    assert "ingress" not in module.resource("aws_security_group", "worker")


# --- SES -> S3 -> SNS -> SQS --------------------------------------------------------------


def test_receipt_rule_scans_and_stores_with_notification(module: Module) -> None:
    rule = module.resource("aws_ses_receipt_rule", "store")
    assert rule["scan_enabled"] is True
    assert rule["recipients"] == "${var.domains}"
    action = rule["s3_action"][0]
    assert action["bucket_name"] == '${aws_s3_bucket.this["raw"].id}'
    assert action["topic_arn"] == "${aws_sns_topic.inbound.arn}"
    subscription = module.resource("aws_sns_topic_subscription", "inbound")
    assert subscription["protocol"] == "sqs"
    assert subscription["endpoint"] == '${aws_sqs_queue.this["inbound"].arn}'


def test_raw_bucket_accepts_writes_only_from_our_receipt_rule(module: Module) -> None:
    policy = module.data["aws_iam_policy_document"]["raw_bucket"]["statement"]
    allow = next(s for s in policy if s["sid"] == "AllowSESReceiptRulePuts")
    conditions = {c["variable"]: c["values"][0] for c in allow["condition"]}
    assert conditions["aws:SourceAccount"] == "${local.account_id}"
    assert conditions["aws:SourceArn"] == "${local.receipt_rule_arn}"
    assert (
        "receipt-rule-set/${local.rule_set_name}:receipt-rule/${local.receipt_rule_name}"
        in module.locals["receipt_rule_arn"]
    )
    deny = next(s for s in policy if s["sid"] == "DenyWritesByAnyoneButSES")
    assert deny["effect"] == "Deny"
    tls = module.data["aws_iam_policy_document"]["tls_only"]["statement"][0]
    assert tls["effect"] == "Deny"
    assert tls["condition"][0]["variable"] == "aws:SecureTransport"


def test_buckets_are_private_encrypted_and_expire(module: Module) -> None:
    block = module.resource("aws_s3_bucket_public_access_block", "this")
    assert all(
        block[k] is True
        for k in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    sse = module.resource("aws_s3_bucket_server_side_encryption_configuration", "this")
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default == {"sse_algorithm": "aws:kms", "kms_master_key_id": "${aws_kms_key.this.arn}"}
    assert module.variables["raw_mail_expiration_days"]["default"] == 15
    assert module.variables["attachments_expiration_days"]["default"] == 30
    lifecycle = module.resource("aws_s3_bucket_lifecycle_configuration", "this")
    assert "expiration_days" in str(lifecycle["rule"][0]["expiration"])


def test_alarms_and_autoscaling_exist(module: Module) -> None:
    alarms = module.resources["aws_cloudwatch_metric_alarm"]
    metrics = {a["metric_name"] for a in alarms.values() if "metric_name" in a}
    assert metrics == {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "RunningTaskCount",
        "Reputation.BounceRate",
        "Reputation.ComplaintRate",
        "${aws_cloudwatch_log_metric_filter.messages_failed.metric_transformation[0].name}",
    }
    # Metric-math alarms: one starts a task from zero (tests/deploy/test_tf_scaling.py),
    # two per app divide feedback by sent (tests/deploy/test_tf_feedback_alarms.py).
    assert {name for name, a in alarms.items() if "metric_name" not in a} == {
        "wake_up",
        "app_bounce_rate",
        "app_complaint_rate",
    }
    policy = str(module.resource("aws_appautoscaling_policy", "backlog"))
    assert 'aws_sqs_queue.this["inbound"].name' in policy
    assert 'aws_sqs_queue.this["outbound"].name' in policy


# --- registry layout, docs, example -------------------------------------------------------


def test_module_has_the_registry_layout(module: Module) -> None:
    for name in ("versions.tf", "variables.tf", "outputs.tf", "main.tf", "README.md"):
        assert (MODULE_DIR / name).is_file(), name
    assert (EXAMPLE_DIR / "main.tf").is_file()
    for name, variable in module.variables.items():
        assert variable.get("description"), f"variable {name} has no description"
        assert "type" in variable, f"variable {name} has no type"
    for name, output in module.outputs.items():
        assert output.get("description"), f"output {name} has no description"
    readme = (MODULE_DIR / "README.md").read_text()
    missing = [n for n in module.variables if f"`{n}`" not in readme]
    assert not missing, f"deploy/terraform/README.md does not document {missing}"


def test_example_passes_only_known_and_all_required_variables(module: Module) -> None:
    example = load_module(EXAMPLE_DIR)
    call = example.modules["mailflow"]
    args = set(call) - {"source", "version", "providers", "depends_on"}
    assert args <= set(module.variables), sorted(args - set(module.variables))
    required = {n for n, v in module.variables.items() if "default" not in v}
    assert required <= args, sorted(required - args)


# --- terraform CLI ------------------------------------------------------------------------


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed on this machine")
def test_terraform_fmt() -> None:
    result = subprocess.run(
        [str(TERRAFORM), "fmt", "-check", "-recursive", "-diff", str(ROOT / "deploy")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive deploy`:\n{result.stdout}"


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed on this machine")
def test_terraform_validate(tmp_path: Path) -> None:
    """Runs where `terraform init` can get the AWS provider; says so where it cannot."""
    work = tmp_path / "module"
    shutil.copytree(MODULE_DIR, work, ignore=shutil.ignore_patterns(".terraform*", "examples"))
    init = subprocess.run(
        [str(TERRAFORM), "init", "-backend=false", "-input=false", "-no-color"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if init.returncode != 0:
        lines = [ln.strip(" │╷╵") for ln in (init.stderr + init.stdout).splitlines()]
        last = next((ln for ln in lines if "Error:" in ln), lines[-1] if lines else "?")
        pytest.skip(
            f"terraform validate skipped: `terraform init` could not install the "
            f"AWS provider here (no registry access): {last[:160]}"
        )
    result = subprocess.run(
        [str(TERRAFORM), "validate", "-no-color"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_readme_tables_are_current() -> None:
    import runpy

    tables = runpy.run_path(str(ROOT / "tools" / "terraform_docs.py"))["tables"]()
    assert tables in (MODULE_DIR / "README.md").read_text(), "run `python tools/terraform_docs.py`"


META_ARGUMENTS = {"for_each", "count", "depends_on", "lifecycle", "provider", "provisioner"}


def _argument_names(body: Any) -> set[str]:
    """Argument and nested-block names used in a resource body (blocks parse as lists)."""
    names: set[str] = set()
    if not isinstance(body, dict):
        return names
    for key, value in body.items():
        if key in META_ARGUMENTS or key.startswith("__"):
            continue
        if key == "dynamic":
            for item in value:
                for label, dyn in item.items():
                    names.add(label)
                    for content in dyn.get("content", []):
                        names |= _argument_names(content)
            continue
        names.add(key)
        if isinstance(value, list):
            for item in value:
                names |= _argument_names(item)
    return names


@pytest.mark.parametrize("directory", [MODULE_DIR, EXAMPLE_DIR], ids=["module", "example"])
def test_arguments_exist_in_the_aws_provider_schema(directory: Path) -> None:
    """An offline stand-in for `terraform validate`'s argument check (see
    tools/provider_schema.py): every resource/data type and argument name the module
    writes exists in the AWS provider's schema."""
    schema = json.loads((Path(__file__).parent / "aws_provider_schema.json").read_text())
    parsed = load_module(directory)
    unknown = []
    for kind, blocks in (("resource", parsed.resources), ("data", parsed.data)):
        for type_name, named in blocks.items():
            known = schema[kind].get(type_name)
            if known is None:
                unknown.append(f"{kind} type {type_name} (refresh the schema file)")
                continue
            for name, body in named.items():
                bad = sorted(_argument_names(body) - set(known))
                unknown += [f"{type_name}.{name}: {arg}" for arg in bad]
    assert not unknown, unknown


def test_queue_attributes_mirror_local_provisioning(module: Module) -> None:
    """Production queues behave like the ones tests and compose run against."""
    from mailflow.ops import provision

    for queue in module.resources["aws_sqs_queue"].values():
        retention = evaluate_number(module, queue["message_retention_seconds"])
        assert retention == provision.RETENTION_SECONDS
        assert queue["max_message_size"] == provision.MAX_MESSAGE_BYTES
