"""Envelope recipients -> destinations (pure).

Only the SES envelope recipients count (never To/Cc: a BCC'd app must get its mail and a
forged header must not reach another app's queue), and only on our configured domains,
compared case-insensitively. For a recipient `local+tag@domain` on one of our domains:

- `_app` where app is configured -> that app, the tag becomes `mailboxHash`;
- a configured alias (`support` or `support@example.com`) -> its app;
- `_x` where x is no app -> the default queue, or rejected when configured so;
- any other local part -> the default queue.

Several recipients for one app make one destination (one message per app). Recipients
on other domains are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailflow.settings import Settings

DEFAULT_ROUTE = "_default"  # routingKey of the default queue; no app name starts with "_"


@dataclass
class Destination:
    """One app (or the default queue) and the recipients that chose it."""

    key: str  # app name or DEFAULT_ROUTE
    domain: str
    recipients: list[str] = field(default_factory=list)
    mailbox_hash: str | None = None


@dataclass
class RoutingPlan:
    """Where one email goes; `rejected` maps a recipient to the reason it was refused."""

    destinations: dict[str, Destination] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def add(self, key: str, recipient: str, domain: str, tag: str | None) -> None:
        destination = self.destinations.setdefault(key, Destination(key=key, domain=domain))
        if recipient not in destination.recipients:
            destination.recipients.append(recipient)
        if destination.mailbox_hash is None and tag:
            destination.mailbox_hash = tag


def split_address(address: str) -> tuple[str, str, str | None] | None:
    """`Local+Tag@Domain.` -> ('local', 'domain', 'Tag'); None when not an address.

    The tag keeps its case (ticket ids are often case-sensitive); the rest is lowercased.
    """
    text = address.strip().strip("<>").strip()
    if text.count("@") < 1:
        return None
    local, _, domain = text.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not local or not domain:
        return None
    base, plus, tag = local.partition("+")
    return base.lower(), domain, (tag if plus and tag else None)


def _alias_index(settings: Settings) -> dict[str, str]:
    index: dict[str, str] = {}
    for app, config in settings.apps.items():
        for alias in config.aliases:
            index[alias] = app
    return index


def route(recipients: list[str] | tuple[str, ...], settings: Settings) -> RoutingPlan:
    """Decide every recipient's destination (see the module docstring for the rules)."""
    plan = RoutingPlan()
    aliases = _alias_index(settings)
    domains = set(settings.domains)
    for recipient in recipients:
        parts = split_address(recipient)
        if parts is None or parts[1] not in domains:
            plan.ignored.append(recipient)
            continue
        local, domain, tag = parts
        app = aliases.get(f"{local}@{domain}") or aliases.get(local)
        if app is None and local.startswith("_") and len(local) > 1:
            app = local[1:]
            if app not in settings.apps:
                if settings.inbound.unknown_app == "reject":
                    plan.rejected[recipient] = f"no app named {app!r}"
                    continue
                app = None
        plan.add(app or DEFAULT_ROUTE, recipient, domain, tag)
    return plan
