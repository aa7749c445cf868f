"""The cost section of docs/deployment.md adds up, states its date, and prices the
module's actual defaults and every network option.

Not a price check (prices change; the section says when they were read): a check that
the tables are arithmetic on the stated prices and assumptions, so an edit to one
figure cannot silently leave the totals or the recommendation behind.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.hcl import ROOT, Module, load_module

GUIDE = ROOT / "docs" / "deployment.md"
HOURS = 730
# Stated in the section: task-hours and GB through NAT/endpoints per scenario.
SCENARIOS = {
    "10,000 (always on)": {"task_hours": HOURS, "gb": 1},
    "10,000 (scale to zero, office hours)": {"task_hours": 240, "gb": 1},
    "1,000,000": {"task_hours": HOURS, "gb": 100},
    "10,000,000": {"task_hours": 2 * HOURS, "gb": 1000},
}


@pytest.fixture(scope="module")
def section() -> str:
    text = GUIDE.read_text()
    start = text.index("## What it costs per month")
    end = text.index("\n## ", start + 1)
    return text[start:end]


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def money(cell: str) -> float:
    return float(cell.replace("*", "").replace("$", "").replace(",", "").strip())


def table(section: str, header_start: str) -> dict[str, list[float]]:
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows: dict[str, list[float]] = {}
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [money(c) for c in cells[1:]]
    return rows


def test_states_the_date_and_where_prices_come_from(section: str) -> None:
    assert "2026-11" in section
    assert "from memory" in section
    for words in (
        "per 1,000 **recipients**",
        "public IPv4",
        "NAT gateway",
        "interface VPC endpoint",
    ):
        assert words in section, words


def test_prices_the_modules_default_task(section: str, module: Module) -> None:
    cpu = module.variables["task_cpu"]["default"] / 1024
    memory_gb = module.variables["task_memory"]["default"] / 1024
    storage = module.variables["ephemeral_storage_gib"]["default"]
    assert f"{cpu:g} vCPU and {memory_gb:g} GB" in section
    assert f"{storage} GiB of task storage" in section
    hourly = cpu * 0.03238 + memory_gb * 0.00356 + (storage - 20) * 0.000111
    assert f"**${hourly * HOURS:.2f}**" in section
    assert module.variables["raw_mail_expiration_days"]["default"] == 15
    assert "raw mail kept 15 days" in section


def test_service_rows_add_up(section: str) -> None:
    rows = table(section, "| emails / month | Fargate |")
    assert set(rows) == set(SCENARIOS)
    for name, values in rows.items():
        *parts, subtotal = values
        assert round(sum(parts), 2) == subtotal, name


def test_network_totals_are_subtotal_plus_the_stated_network_cost(section: str) -> None:
    subtotals = {
        name: values[-1] for name, values in table(section, "| emails / month | Fargate |").items()
    }
    totals = table(section, "| emails / month | public subnets")
    assert set(totals) == set(SCENARIOS)
    for name, (public, nat, endpoints) in totals.items():
        scenario = SCENARIOS[name]
        expected = (
            scenario["task_hours"] * 0.005,  # a public IPv4 per running task
            2 * (0.045 + 0.005) * HOURS + 0.045 * scenario["gb"],  # NAT + its IP, 2 AZs
            7 * 2 * 0.01 * HOURS + 0.01 * scenario["gb"],  # 7 interface endpoints, 2 AZs
        )
        for documented, network in zip((public, nat, endpoints), expected, strict=True):
            assert documented == pytest.approx(subtotals[name] + network, abs=0.011), name


def test_scale_to_zero_is_compared_with_always_on(section: str) -> None:
    totals = table(section, "| emails / month | public subnets")
    always, idle = totals["10,000 (always on)"], totals["10,000 (scale to zero, office hours)"]
    saving = always[0] - idle[0]
    share = round(100 * saving / always[0])
    assert f"~${round(saving)} ({share} %)" in section
    assert "1-3 minutes" in section


def test_the_endpoint_set_priced_is_the_modules_default(section: str, module: Module) -> None:
    services = module.variables["vpc_endpoint_interface_services"]["default"]
    assert len(services) == 7
    assert re.search(r"the default 7 in 2 AZs: 14 x \$7\.30 = \$102\.20", section)
