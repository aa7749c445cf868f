"""Routing by envelope recipients."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mailflow.inbound.routing import DEFAULT_ROUTE, route, split_address


def summary(plan: Any) -> dict[str, tuple[list[str], str | None]]:
    return {k: (d.recipients, d.mailbox_hash) for k, d in plan.destinations.items()}


def test_app_addresses_route_to_their_app(pure_settings: Any) -> None:
    plan = route(["_app1@example.com", "_app2@example.org"], pure_settings())
    assert summary(plan) == {
        "app1": (["_app1@example.com"], None),
        "app2": (["_app2@example.org"], None),
    }


def test_domain_and_local_part_are_case_insensitive(pure_settings: Any) -> None:
    plan = route(["_App1@EXAMPLE.Com."], pure_settings())
    assert list(plan.destinations) == ["app1"]
    assert plan.destinations["app1"].domain == "example.com"


def test_plus_tag_is_the_mailbox_hash_and_keeps_its_case(pure_settings: Any) -> None:
    plan = route(["_app1+Ticket-42@example.com"], pure_settings())
    assert summary(plan) == {"app1": (["_app1+Ticket-42@example.com"], "Ticket-42")}


def test_aliases_by_local_part_or_full_address(pure_settings: Any) -> None:
    settings = pure_settings()
    assert list(route(["support@example.org"], settings).destinations) == ["app1"]
    assert list(route(["support+vip@example.com"], settings).destinations) == ["app1"]
    assert list(route(["billing@example.org"], settings).destinations) == ["app1"]
    # a full-address alias only matches on its own domain
    assert list(route(["billing@example.com"], settings).destinations) == [DEFAULT_ROUTE]


def test_one_destination_per_app_with_all_its_recipients(pure_settings: Any) -> None:
    plan = route(
        ["_app1@example.com", "support@example.org", "_app1+t@example.com", "_app1@example.com"],
        pure_settings(),
    )
    assert summary(plan) == {
        "app1": (["_app1@example.com", "support@example.org", "_app1+t@example.com"], "t")
    }


def test_non_app_addresses_of_our_domains_go_to_default(pure_settings: Any) -> None:
    plan = route(["info@example.com", "_nosuch@example.org"], pure_settings())
    assert summary(plan) == {DEFAULT_ROUTE: (["info@example.com", "_nosuch@example.org"], None)}


def test_unknown_app_can_be_rejected(pure_settings: Any) -> None:
    plan = route(["_nosuch@example.com", "_app2@example.com"], pure_settings(unknown_app="reject"))
    assert list(plan.destinations) == ["app2"]
    assert plan.rejected == {"_nosuch@example.com": "no app named 'nosuch'"}


def test_foreign_domains_are_ignored(pure_settings: Any) -> None:
    plan = route(
        ["_app1@evil.test", "_app1@example.com.evil.test", "not-an-address"], pure_settings()
    )
    assert plan.destinations == {}
    assert len(plan.ignored) == 3


def test_adding_an_app_is_configuration_only() -> None:
    from mailflow.settings import load_settings

    settings = load_settings(domains=["example.com"], apps=["billing"])
    assert list(route(["_billing@example.com"], settings).destinations) == ["billing"]


def test_split_address() -> None:
    assert split_address("<A+b+c@Ex.COM>") == ("a", "ex.com", "b+c")
    assert split_address("plain") is None
    assert split_address("@example.com") is None
    assert split_address("x+@example.com") == ("x", "example.com", None)


LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=12)
DOMAINS = st.sampled_from(["example.com", "EXAMPLE.org", "evil.test", "example.com.evil.test"])
TAG = st.one_of(st.none(), st.text(alphabet="abcXYZ123-", min_size=1, max_size=8))


@st.composite
def recipients(draw: st.DrawFn) -> str:
    local = draw(st.one_of(LOCAL, st.sampled_from(["_app1", "_app2", "support", "_nope"])))
    tag = draw(TAG)
    return f"{local}{'+' + tag if tag else ''}@{draw(DOMAINS)}"


@given(st.lists(recipients(), max_size=8))
def test_routing_invariants(addresses: list[str]) -> None:
    from mailflow.settings import load_settings

    settings = load_settings(
        domains=["example.com", "example.org"], apps={"app1": {"aliases": ["support"]}, "app2": {}}
    )
    plan = route(addresses, settings)
    routed = [r for d in plan.destinations.values() for r in d.recipients]
    # every recipient is accounted for exactly once, and only our domains are routed
    assert sorted(set(routed) | set(plan.ignored)) == sorted(set(addresses))
    for recipient in routed:
        assert recipient.rpartition("@")[2].lower() in {"example.com", "example.org"}
    for key, destination in plan.destinations.items():
        assert key in {"app1", "app2", DEFAULT_ROUTE}
        for recipient in destination.recipients:
            local = recipient.partition("+")[0].partition("@")[0].lower()
            if local in {"_app1", "_app2"}:
                assert key == local[1:]
