"""The suppression list: addresses mailflow no longer sends to, in the one DynamoDB table.

Why our own list and not (only) SES's account-level suppression list: SES's list works
across every tool sending from the account, but SES applies it *after* accepting the
call (the email is dropped and a `Bounce` of subtype `OnAccountSuppressionList` follows),
so the app would learn only later, as a bounce, and mailflow could not say which app put
the address there or apply its own soft-bounce threshold. mailflow's list is checked
before the send: the app gets `email.failed` (reason `suppressed`) or a `skipped` entry at
once, with who suppressed it, when and why. SES's list stays on as a second net; its
`OnAccountSuppressionList` bounces land in ours too.

The list is account-wide, not per app: SES pauses the whole account when its bounce or
complaint rate is too high, whichever app caused it. Entries never expire; operators
remove them (`mailflow suppression remove`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from mailflow.aws import keys
from mailflow.aws.table import Table
from mailflow.feedback.config import FeedbackSettings
from mailflow.feedback.report import Suppression, SuppressionReason


@dataclass(frozen=True)
class Entry:
    """One suppressed address, as the list holds it."""

    address: str
    reason: str
    detail: str
    app: str
    since: str  # ISO-8601

    @classmethod
    def from_item(cls, item: dict[str, str]) -> Entry:
        return cls(
            address=item.get("address", item[keys.KEY_ATTRIBUTE].partition("#")[2]),
            reason=item.get("reason", ""),
            detail=item.get("detail", ""),
            app=item.get("app", ""),
            since=item.get("since", ""),
        )

    def describe(self) -> str:
        by = f" by app {self.app}" if self.app else ""
        return f"{self.address} is suppressed since {self.since}{by}: {self.detail}"


def entries_in(items: dict[str, dict[str, str]]) -> dict[str, Entry]:
    """The suppression entries among items read by key (other kinds are ignored)."""
    prefix = keys.suppressed("")
    entries = (Entry.from_item(item) for key, item in items.items() if key.startswith(prefix))
    return {e.address: e for e in entries}


@dataclass
class SuppressionList:
    table: Table
    settings: FeedbackSettings
    clock: Callable[[], float] = time.time

    async def check(self, addresses: Iterable[str]) -> dict[str, Entry]:
        """The suppressed ones among `addresses`, by lower-cased address."""
        wanted = sorted({a.strip().lower() for a in addresses})
        found = await self.table.read_many([keys.suppressed(a) for a in wanted]) if wanted else {}
        return entries_in(found)

    async def add(
        self, address: str, reason: SuppressionReason, detail: str, app: str | None
    ) -> bool:
        """Suppress `address`; False when it already was (the first reason stays)."""
        normalized = address.strip().lower()
        fields = {
            "address": normalized,
            "reason": reason,
            "detail": detail[:1000],
            "since": datetime.fromtimestamp(self.clock(), tz=UTC).isoformat(timespec="seconds"),
        }
        if app:
            fields["app"] = app
        return await self.table.put_if_absent(keys.suppressed(normalized), fields)

    async def remove(self, address: str) -> Entry | None:
        old = await self.table.delete(keys.suppressed(address))
        return Entry.from_item(old) if old else None

    async def apply(self, suppressions: list[Suppression], app: str | None) -> list[str]:
        """Suppress each (a repeat keeps the first entry); the addresses, normalized."""
        for s in suppressions:
            await self.add(s.address, s.reason, s.detail, app)
        return [s.address.strip().lower() for s in suppressions]

    async def soft_bounce(self, address: str, bounce_id: str, app: str | None) -> bool:
        """Count a soft bounce (by `bounce_id`: SES's repeat of one event counts once);
        True when it reached the limit and the address is now suppressed."""
        limit = self.settings.soft_bounce_limit
        if limit == 0:
            return False
        hours = self.settings.soft_bounce_window_hours
        if limit > 1:
            # The window holds up to limit - 1 distinct bounces; the limit-th finds it full.
            below = await self.table.count_in_window(
                keys.soft_bounces(address), bounce_id, limit=limit - 1, ttl_seconds=hours * 3600
            )
            if below:
                return False
        await self.add(address, "soft_bounces", f"{limit} soft bounces within {hours} h", app)
        return True
