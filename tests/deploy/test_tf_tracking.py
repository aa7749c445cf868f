"""Opens and clicks are tracked only for emails that ask for it (issue 14).

SES adds a tracking image and rewrites the links of every email sent through a
configuration set whose event destination matches OPEN or CLICK. So the outbound set
never does, and with `ses_tracking` the module adds a second set, `<name>-tracking`, made
by the same resource (same options), publishing the outbound set's events plus OPEN and
CLICK to the same topic and queue. The worker sends an email through it only when the
message says `"options": {"tracking": true}` (MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET,
set exactly when the set exists), and the task role may send through it.
"""

from __future__ import annotations

import re
from itertools import product
from typing import Any

import hcl2
import pytest

from tests.deploy.hcl import (
    ROOT,
    Module,
    clean,
    evaluate,
    evaluate_condition,
    expr,
    load_module,
    render,
)

SWITCHES = [
    {"create_configuration_set": created, "ses_tracking": tracking}
    for created, tracking in product((True, False), repeat=2)
]


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _split_top_level(text: str) -> list[str]:
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


def configuration_sets(module: Module, values: dict[str, Any]) -> dict[str, str]:
    """local.configuration_sets (the sets' for_each) evaluated: role -> set name.

    Each term of its merge(...) must be `<condition> ? {<role> = local.<name>} : {}`."""
    text = expr(module.locals["configuration_sets"])
    assert text.startswith("merge("), text
    assert text.endswith(")"), text
    sets: dict[str, str] = {}
    for term in _split_top_level(text[len("merge(") : -1]):
        match = re.fullmatch(r"(.+?) \? \{(\w+) = local\.(\w+)\} : \{\}", term)
        assert match, term
        condition, role, local = match.groups()
        if evaluate(module, "${" + condition + "}", values):
            sets[role] = render(module, module.locals[local], values)
    return sets


def _count(module: Module, resource: dict[str, Any], values: dict[str, Any]) -> int:
    return int(evaluate(module, resource["count"], values))


# --- the switch ---------------------------------------------------------------------------


def test_tracking_is_off_by_default(module: Module) -> None:
    variable = module.variables["ses_tracking"]
    assert variable["type"] == "${bool}" or variable["type"] == "bool"
    assert variable["default"] is False
    assert configuration_sets(module, {}) == {"outbound": "mailflow-outbound"}
    destination = module.resource("aws_sesv2_configuration_set_event_destination", "tracking")
    assert _count(module, destination, {}) == 0
    env = module.locals["worker_environment_optional"]
    setting = expr(env["MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET"])
    literal = setting.replace("local.tracking_configuration_set_name", '"mailflow-tracking"')
    assert evaluate(module, literal, {}) is None, "unset by default (the null is dropped)"
    assert expr(module.locals["worker_environment"]).endswith("if v != null}")


@pytest.mark.parametrize("values", SWITCHES, ids=lambda v: f"{v}")
def test_the_tracking_set_exists_exactly_with_ses_tracking_and_the_events_queue(
    module: Module, values: dict[str, Any]
) -> None:
    sets = configuration_sets(module, {**values, "name": "mailflow-prod"})
    queue = module.resource("aws_sqs_queue", "ses_events")
    topic = module.resource("aws_sns_topic", "ses_events")
    queue_exists = _count(module, queue, values) == 1
    assert queue_exists == (_count(module, topic, values) == 1)
    wanted = values["ses_tracking"] and queue_exists
    assert ("tracking" in sets) == wanted
    assert ("outbound" in sets) == values["create_configuration_set"]
    if wanted:
        assert sets == {"outbound": "mailflow-prod-outbound", "tracking": "mailflow-prod-tracking"}
    destination = module.resource("aws_sesv2_configuration_set_event_destination", "tracking")
    assert _count(module, destination, values) == (1 if wanted else 0)
    # Asked for without the events topic and queue: the plan fails rather than ignore it.
    task = module.resource("aws_ecs_task_definition", "worker")
    (guard,) = [
        p
        for block in task["lifecycle"]
        for p in block["precondition"]
        if "ses_tracking" in p["condition"]
    ]
    holds = evaluate_condition(module, guard["condition"], values)
    assert holds == (values["create_configuration_set"] or not values["ses_tracking"])
    assert "create_configuration_set" in guard["error_message"]


@pytest.mark.parametrize("values", SWITCHES, ids=lambda v: f"{v}")
def test_the_worker_gets_the_tracking_set_exactly_when_it_exists(
    module: Module, values: dict[str, Any]
) -> None:
    env = module.locals["worker_environment_optional"]
    assert [k for k, v in env.items() if "tracking" in str(v)] == [
        "MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET"
    ]
    setting = expr(env["MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET"])
    assert setting == "local.ses_tracking ? local.tracking_configuration_set_name : null"
    for name in ("mailflow", "mailflow-prod"):
        sets = configuration_sets(module, {**values, "name": name})
        tracking_name = render(
            module, module.locals["tracking_configuration_set_name"], {"name": name}
        )
        assert tracking_name == f"{name}-tracking"
        literal = setting.replace("local.tracking_configuration_set_name", f'"{tracking_name}"')
        assert evaluate(module, literal, values) == sets.get("tracking")
        # The outbound set's variable follows its own set, as before.
        outbound = expr(env["MAILFLOW_OUTBOUND__CONFIGURATION_SET"]).replace(
            "local.configuration_set_name", f'"{name}-outbound"'
        )
        assert evaluate(module, outbound, values) == sets.get("outbound")


def test_the_setting_is_the_workers() -> None:
    """MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET is Settings.outbound's field."""
    from mailflow.outbound.config import OutboundSettings
    from mailflow.settings import Settings

    assert Settings.model_fields["outbound"].annotation is OutboundSettings
    assert "tracking_configuration_set" in OutboundSettings.model_fields


# --- one resource, the same options ---------------------------------------------------------


def test_both_sets_are_one_resource_with_the_same_options(module: Module) -> None:
    sets = module.resource("aws_sesv2_configuration_set", "this")
    assert sets["for_each"] == "${local.configuration_sets}"
    assert "count" not in sets
    assert sets["configuration_set_name"] == "${each.value}"
    assert sets["reputation_options"] == [{"reputation_metrics_enabled": True}]
    assert sets["sending_options"] == [{"sending_enabled": True}]
    assert sets["delivery_options"][0]["tls_policy"] in ("OPTIONAL", "REQUIRE")
    # Nothing in the options depends on which set it is, except the redirect domain.
    static = {k: v for k, v in sets.items() if k not in ("dynamic", "for_each")}
    assert "each.key" not in str(static)
    (dynamic,) = sets["dynamic"]
    (label,) = dynamic
    assert label == "tracking_options"
    gate = expr(dynamic["tracking_options"]["for_each"])
    assert 'each.key == "tracking"' in gate
    assert "var.ses_tracking_redirect_domain != null" in gate
    assert dynamic["tracking_options"]["content"] == [
        {"custom_redirect_domain": "${tracking_options.value}"}
    ]
    assert module.variables["ses_tracking_redirect_domain"]["default"] is None


def test_the_outbound_set_keeps_its_state_address(module: Module) -> None:
    parsed = clean(hcl2.loads(module.files["ses.tf"]))
    moves = [(m["from"], m["to"]) for m in parsed.get("moved", [])]
    assert (
        "${aws_sesv2_configuration_set.this[0]}",
        '${aws_sesv2_configuration_set.this["outbound"]}',
    ) in moves
    # Nothing else still names the counted address.
    for name, text in module.files.items():
        code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("from"))
        assert "aws_sesv2_configuration_set.this[0]" not in code, name


def test_identities_default_to_the_outbound_set(module: Module) -> None:
    identity = module.resource("aws_sesv2_email_identity", "domain")
    assert 'aws_sesv2_configuration_set.this["outbound"]' in identity["configuration_set_name"]
    assert "tracking" not in identity["configuration_set_name"]


# --- events ---------------------------------------------------------------------------------


def tracking_event_types(module: Module, event_types: list[str]) -> list[str]:
    """local.tracking_event_types for the given ses_event_types."""
    text = expr(module.locals["tracking_event_types"])
    assert text == 'distinct(concat(var.ses_event_types, ["OPEN", "CLICK"]))', text
    return list(dict.fromkeys([*event_types, "OPEN", "CLICK"]))


def test_the_tracking_destination_adds_opens_and_clicks_on_the_same_topic(
    module: Module,
) -> None:
    destinations = module.resources["aws_sesv2_configuration_set_event_destination"]
    main, tracking = destinations["events"], destinations["tracking"]
    assert tracking["count"] == "${local.ses_tracking ? 1 : 0}"
    assert tracking["configuration_set_name"] == (
        '${aws_sesv2_configuration_set.this["tracking"].configuration_set_name}'
    )
    assert main["configuration_set_name"] == (
        '${aws_sesv2_configuration_set.this["outbound"].configuration_set_name}'
    )
    event, main_event = tracking["event_destination"][0], main["event_destination"][0]
    assert event["enabled"] is True
    assert event["matching_event_types"] == "${local.tracking_event_types}"
    assert event["sns_destination"] == main_event["sns_destination"]
    assert event["sns_destination"][0]["topic_arn"] == "${aws_sns_topic.ses_events[0].arn}"
    assert tracking["depends_on"] == main["depends_on"]
    default = module.variables["ses_event_types"]["default"]
    types = tracking_event_types(module, default)
    assert set(types) == set(default) | {"OPEN", "CLICK"}
    assert len(types) == len(set(types))


def test_the_outbound_set_refuses_opens_and_clicks(module: Module) -> None:
    variable = module.variables["ses_event_types"]
    (guard,) = [v for v in variable["validation"] if "!contains" in v["condition"]]
    default = variable["default"]
    assert evaluate_condition(module, guard["condition"], {"ses_event_types": default})
    for extra in ("OPEN", "CLICK"):
        types = [*default, extra]
        assert not evaluate_condition(module, guard["condition"], {"ses_event_types": types})
    assert "ses_tracking" in guard["error_message"]
    assert "ses_tracking" in variable["description"]
    assert not {"OPEN", "CLICK"} & set(default)


def test_the_topic_accepts_the_tracking_set_only_with_ses_tracking(module: Module) -> None:
    policy = module.data["aws_iam_policy_document"]["ses_events_topic"]
    (static,) = policy["statement"]
    (dynamic,) = policy["dynamic"]
    block = dynamic["statement"]
    assert expr(block["for_each"]) == (
        "local.ses_tracking ? [local.tracking_configuration_set_name] : []"
    )
    (content,) = block["content"]
    assert content["sid"] != static["sid"]
    for key in ("actions", "resources", "principals"):
        assert content[key] == static[key], key
    conditions = {c["variable"]: c for c in content["condition"]}
    static_conditions = {c["variable"]: c for c in static["condition"]}
    assert conditions["aws:SourceAccount"] == static_conditions["aws:SourceAccount"]
    arn = conditions["aws:SourceArn"]
    assert arn["test"] == static_conditions["aws:SourceArn"]["test"]
    assert arn["values"] == [
        static_conditions["aws:SourceArn"]["values"][0].replace(
            "${local.configuration_set_name}", "${statement.value}"
        )
    ]


# --- IAM, output, names, docs ---------------------------------------------------------------


def test_the_task_role_may_send_through_every_set_the_module_creates(module: Module) -> None:
    statements = module.data["aws_iam_policy_document"]["task"]["statement"]
    (send,) = [s for s in statements if "ses:SendEmail" in s["actions"]]
    resources = expr(send["resources"])
    # A `for` over the for_each resource: the tracking set's ARN is there when it exists,
    # and nothing names one set by key (which would fail without it).
    assert "[for c in aws_sesv2_configuration_set.this : c.arn]" in resources
    assert "aws_sesv2_configuration_set.this[" not in resources
    assert "aws_sesv2_email_identity.domain" in resources


def test_the_tracking_set_is_an_output(module: Module) -> None:
    output = module.outputs["tracking_configuration_set_name"]
    assert output["value"] == (
        '${try(aws_sesv2_configuration_set.this["tracking"].configuration_set_name, null)}'
    )
    assert module.outputs["configuration_set_name"]["value"] == (
        '${try(aws_sesv2_configuration_set.this["outbound"].configuration_set_name, null)}'
    )


def test_the_tracking_set_name_fits_ses(module: Module) -> None:
    # SES: letters, digits, '_' and '-', at most 64 characters; `name` has at most 30.
    name = render(module, module.locals["tracking_configuration_set_name"], {"name": "a" * 30})
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name)


def test_the_descriptions_say_what_tracking_costs_and_gives(module: Module) -> None:
    tracking = module.variables["ses_tracking"]["description"]
    for words in ("privacy", "OPEN", "CLICK", "email.opened", "email.clicked", "<name>-tracking"):
        assert words in tracking, words
    redirect = module.variables["ses_tracking_redirect_domain"]["description"]
    for words in ("verified", "CloudFront", "HTTPS"):
        assert words in redirect, words


def test_the_guide_explains_tracking() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for words in (
        "ses_tracking = true",
        "<name>-tracking",
        "MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET",
        "ses_tracking_redirect_domain",
    ):
        assert words in guide, words
