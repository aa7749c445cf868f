"""Where the docs say a recipient's mail goes is where the router sends it.

Each claim is quoted from the docs with the configuration it is made under (the compose
file's MAILFLOW_APPS, the Terraform example's `apps`, the settings docs/inbound.md
describes) and run through `mailflow.inbound.routing.route`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from mailflow.inbound.routing import DEFAULT_ROUTE, route
from mailflow.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def compose_settings() -> Settings:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-mailflow-environment"]
    return load_settings(
        domains=env["MAILFLOW_DOMAINS"].split(","),
        apps=json.loads(env["MAILFLOW_APPS"]),
        aws_endpoint_url="http://127.0.0.1:1",
    )


def terraform_example_settings() -> Settings:
    with (ROOT / "deploy/terraform/examples/complete/main.tf").open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    # python-hcl2 keeps the quotes of labels and strings
    [module] = [m['"mailflow"'] for m in parsed["module"] if '"mailflow"' in m]
    apps = {
        name: {"aliases": [a.strip('"') for a in conf.get("aliases", [])]}
        for name, conf in module["apps"].items()
    }
    return load_settings(domains=["example.com"], apps=apps, aws_endpoint_url="http://127.0.0.1:1")


def inbound_md_settings() -> Settings:
    return load_settings(
        domains=["example.com", "example.org"],
        apps={"app1": {"aliases": ["support", "billing@example.org"]}, "app2": {}},
        aws_endpoint_url="http://127.0.0.1:1",
    )


def routed(recipient: str, settings: Settings) -> str | None:
    plan = route([recipient], settings)
    [key] = list(plan.destinations) or [None]
    return key


CLAIMS = [
    # docs/deployment.md, compose: `inject ... --to support@example.com`, then `peek app1`
    ("compose", "support@example.com", "app1"),
    # docs/deployment.md, step 4: `_support@<domain>` or `help@<domain>` on ...-support;
    # `support@<domain>` goes to the default queue
    ("terraform", "_support@example.com", "support"),
    ("terraform", "help@example.com", "support"),
    ("terraform", "support@example.com", DEFAULT_ROUTE),
    # docs/inbound.md, Routing rules 2-5 and the plus tag
    ("inbound.md", "support@example.com", "app1"),
    ("inbound.md", "billing@example.org", "app1"),
    ("inbound.md", "billing@example.com", DEFAULT_ROUTE),
    ("inbound.md", "_app2@example.com", "app2"),
    ("inbound.md", "_App2@EXAMPLE.COM.", "app2"),
    ("inbound.md", "_app1+ticket-42@example.com", "app1"),
    ("inbound.md", "_nobody@example.com", DEFAULT_ROUTE),
    ("inbound.md", "someone@example.org", DEFAULT_ROUTE),
    ("inbound.md", "_app1@elsewhere.example", None),
    # README: `_app1@example.com` -> mailflow-app1
    ("inbound.md", "_app1@example.com", "app1"),
]
SETTINGS = {
    "compose": compose_settings,
    "terraform": terraform_example_settings,
    "inbound.md": inbound_md_settings,
}


@pytest.mark.parametrize(("where", "recipient", "expected"), CLAIMS)
def test_documented_routes_are_the_routers(
    where: str, recipient: str, expected: str | None
) -> None:
    assert routed(recipient, SETTINGS[where]()) == expected
