"""The Fargate task: drain time, memory and its byte budget, task storage.

- The drain after SIGTERM outlasts the longest single AWS call (the SES client's read
  timeout, read from the code), and ECS waits drain + 10 s, within Fargate's 120 s.
- Memory is the task's hard limit: the worker's byte budget
  (MAILFLOW_MAX_IN_FLIGHT_BYTES) is derived from it so that no mix of large mails
  exceeds it, and the CPU/memory pair is one Fargate offers.
- Task storage holds the spool of large in-flight mail.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.hcl import ROOT, Module, evaluate, evaluate_condition, expr, load_module

MIB = 1024 * 1024
# SES's largest message (SESv2 and receiving): 40 MB.
MAX_EMAIL_BYTES = 40 * MIB
# Measured: handling an email costs ~3x its size in RSS (39 MB mail -> ~110 MB).
RSS_PER_EMAIL_BYTE = 3
BASELINE_MIB = 384

# Fargate's CPU -> memory (MiB) combinations for the CPU values the module allows
# (AWS Fargate task definition parameters, "Task CPU and memory").
FARGATE = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def longest_read_timeout() -> float:
    """The largest botocore read_timeout the worker's code configures (live code, any
    module: the package's layout changes, the number is what matters)."""
    found = [
        float(m)
        for path in (ROOT / "mailflow").rglob("*.py")
        for m in re.findall(r"\bread_timeout\s*=\s*(\d+(?:\.\d+)?)", path.read_text())
    ]
    assert found, "no read_timeout=N in mailflow/: update this test's lookup"
    return max(found)


# --- drain ----------------------------------------------------------------------------


def test_drain_outlasts_the_longest_aws_call(module: Module) -> None:
    variable = module.variables["shutdown_grace_seconds"]
    read_timeout = longest_read_timeout()
    assert read_timeout == 30
    assert variable["default"] == 45
    assert variable["default"] > read_timeout
    (validation,) = variable["validation"]
    accepted = [
        g
        for g in range(0, 200)
        if evaluate_condition(module, validation["condition"], {"shutdown_grace_seconds": g})
    ]
    assert min(accepted) > read_timeout, "the validation admits a drain shorter than an SES call"
    for grace in accepted:
        stop = evaluate(
            module, module.locals["stop_timeout_seconds"], {"shutdown_grace_seconds": grace}
        )
        assert stop == grace + 10 <= 120, grace
    assert max(accepted) == 110
    env = module.locals["worker_environment_base"]
    assert env["MAILFLOW_SHUTDOWN_GRACE_SECONDS"] == "${tostring(var.shutdown_grace_seconds)}"


# --- memory -----------------------------------------------------------------------------


def test_memory_defaults_to_2_gib_on_a_valid_fargate_size(module: Module) -> None:
    cpu = module.variables["task_cpu"]["default"]
    memory = module.variables["task_memory"]["default"]
    assert (cpu, memory) == (512, 2048)
    assert memory in FARGATE[cpu]


def test_cpu_memory_combinations_are_fargates(module: Module) -> None:
    table = {
        int(k): evaluate(module, v) for k, v in module.locals["fargate_memory_options"].items()
    }
    assert table == FARGATE
    task = module.resource("aws_ecs_task_definition", "worker")
    combination = next(
        p
        for block in task["lifecycle"]
        for p in block["precondition"]
        if "fargate_memory_options" in p["condition"]
    )
    condition = combination["condition"].replace("local.fargate_memory_options", "fargate")
    for cpu, sizes in FARGATE.items():
        for memory in range(512, 30721, 512):
            python = (
                expr(condition)
                .replace("var.task_cpu", str(cpu))
                .replace("var.task_memory", str(memory))
            )
            allowed = eval(  # the HCL condition, on Python's copy of the table
                python,
                {"__builtins__": {}},
                {
                    "contains": lambda items, x: x in items,
                    "tostring": str,
                    "fargate": {str(k): v for k, v in FARGATE.items()},
                },
            )
            assert allowed == (memory in sizes), (cpu, memory)


def budget(module: Module, memory: int, override: int | None = None) -> int:
    values = {"task_memory": memory, "max_in_flight_bytes": override}
    return int(evaluate(module, module.locals["max_in_flight_bytes"], values))


def test_byte_budget_is_derived_from_task_memory(module: Module) -> None:
    assert expr(module.locals["max_in_flight_bytes_derived"]) == (
        "floor((var.task_memory - 384) * 1048576 / 4)"
    )
    assert expr(module.locals["max_in_flight_bytes"]) == (
        "coalesce(var.max_in_flight_bytes, local.max_in_flight_bytes_derived)"
    )
    derived = module.locals["max_in_flight_bytes_derived"]
    for memory in sorted({m for sizes in FARGATE.values() for m in sizes}):
        value = int(evaluate(module, derived, {"task_memory": memory}))
        assert value == (memory - BASELINE_MIB) * MIB // 4
        # The point of the budget: emails held at once, at the measured RSS cost, plus
        # the baseline, stay below the task's hard limit.
        assert value * RSS_PER_EMAIL_BYTE + BASELINE_MIB * MIB < memory * MIB
    assert int(evaluate(module, derived, {"task_memory": 2048})) == 416 * MIB
    env = module.locals["worker_environment_base"]
    assert env["MAILFLOW_MAX_IN_FLIGHT_BYTES"] == "${tostring(local.max_in_flight_bytes)}"
    assert "max_in_flight_bytes" in module.outputs
    assert budget(module, 2048) == 416 * MIB
    assert budget(module, 2048, override=100 * MIB) == 100 * MIB


def test_byte_budget_override_is_bounded(module: Module) -> None:
    variable = module.variables["max_in_flight_bytes"]
    assert variable["default"] is None
    (validation,) = variable["validation"]

    def valid(value: float | None) -> bool:
        return evaluate_condition(module, validation["condition"], {"max_in_flight_bytes": value})

    assert valid(None)
    assert valid(MAX_EMAIL_BYTES)
    assert not valid(MAX_EMAIL_BYTES - 1), "a budget below one maximum-size email"
    assert not valid(MAX_EMAIL_BYTES + 0.5)
    task = module.resource("aws_ecs_task_definition", "worker")
    conditions = [p["condition"] for block in task["lifecycle"] for p in block["precondition"]]
    below_memory = next(c for c in conditions if "(var.task_memory - 384) * 1048576" in c)
    at_least_one_email = next(c for c in conditions if ">= 41943040" in c)
    values = {"task_memory": 2048, "max_in_flight_bytes": None}
    assert evaluate_condition(module, below_memory, values)
    assert evaluate_condition(module, at_least_one_email, values)
    assert not evaluate_condition(
        module, below_memory, {**values, "max_in_flight_bytes": 2048 * MIB}
    )
    # 512 MiB leaves less than one maximum-size email: refused with a reason.
    assert not evaluate_condition(
        module, at_least_one_email, {"task_memory": 512, "max_in_flight_bytes": None}
    )


# --- task storage ----------------------------------------------------------------------


def test_task_storage_holds_the_spool(module: Module) -> None:
    variable = module.variables["ephemeral_storage_gib"]
    assert variable["default"] == 21
    (validation,) = variable["validation"]
    accepted = [
        g
        for g in range(0, 300)
        if evaluate_condition(module, validation["condition"], {"ephemeral_storage_gib": g})
    ]
    assert (min(accepted), max(accepted)) == (21, 200)
    task = module.resource("aws_ecs_task_definition", "worker")
    assert task["ephemeral_storage"] == [{"size_in_gib": "${var.ephemeral_storage_gib}"}]
    # Worst case of the spool: every in-flight message of both consumers at the largest
    # size, at the highest concurrency the module allows; plus room for the image.
    (concurrency_rule,) = module.variables["concurrency"]["validation"]
    highest = max(
        c
        for c in range(1, 1000)
        if evaluate_condition(module, concurrency_rule["condition"], {"concurrency": c})
    )
    spool = highest * MAX_EMAIL_BYTES * 2
    image_allowance = 4 * 1024 * MIB
    assert spool + image_allowance <= variable["default"] * 1024 * MIB
