"""Who an outbound email may go to: suppression, mail loops.

Checked before anything is built or claimed (the pipeline refuses only an email that
was not already sent: a repeat stays silent, whatever happened to its recipients since):

- an automatic email (`Auto-Submitted` other than `no`) that answers a message mailflow
  received as automated (an auto-reply, a bounce, bulk mail: the inbound side remembers
  those Message-IDs) is refused: answering it is how auto-responders start mail loops
  (RFC 3834 section 2);
- a suppressed recipient is skipped;
- an automatic email to a recipient that itself sent mailflow automated mail lately (the
  inbound side remembers those senders for 7 days) counts toward a per-hour limit; past
  `loop_limit_per_hour` automatic emails from the same app this clock hour, that
  recipient is skipped: two auto-responders answering each other stop there, while an
  app's notifications to people (who send no automated mail) are never counted.

Skipped recipients leave the envelope only; the others get the email. When no recipient
is left, the email is refused (`suppressed` or `loop_suspected`) and the app gets
`email.failed` naming the addresses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from mailflow.aws import keys
from mailflow.aws.table import Table
from mailflow.contracts.outbound import SkippedRecipient
from mailflow.errors import PolicyRejected
from mailflow.feedback.suppression import Entry, entries_in
from mailflow.outbound import metrics
from mailflow.outbound.config import OutboundSettings
from mailflow.outbound.validation import ValidatedEmail

LOOP_WINDOW_TTL_SECONDS = 2 * 3600  # one clock hour, and some


@dataclass
class RecipientScreen:
    table: Table
    config: OutboundSettings
    suppression: bool = True  # MAILFLOW_FEEDBACK__SUPPRESSION
    clock: Callable[[], float] = time.time

    async def skipped(self, email: ValidatedEmail) -> dict[str, SkippedRecipient]:
        """Recipients (lower-cased) the email must not go to; raises when none is left."""
        automatic = email.auto_submitted != "no"
        if automatic and email.in_reply_to:
            await self._refuse_reply_to_automated(email.in_reply_to)
        recipients = _unique(email.recipients)
        counted = automatic and bool(self.config.loop_limit_per_hour)
        entries, automated = await self._look_up(recipients, counted)
        skipped = {
            address: SkippedRecipient(address=address, reason="suppressed", detail=e.describe())
            for address, e in entries.items()
        }
        if counted:
            rest = [a for a in recipients if a in automated and a not in skipped]
            for address in await self._over_loop_limit(email, rest):
                skipped[address] = SkippedRecipient(
                    address=address,
                    reason="loop_suspected",
                    detail=f"app {email.app} already sent {self.config.loop_limit_per_hour}"
                    f" automatic emails to {address} this hour",
                )
        for skip in skipped.values():
            metrics.SKIPPED.labels(email.app, skip.reason).inc()
        if skipped and len(skipped) == len(recipients):
            raise _refusal(skipped)
        return skipped

    async def _look_up(
        self, recipients: list[str], counted: bool
    ) -> tuple[dict[str, Entry], set[str]]:
        """In one BatchGetItem: the suppressed recipients, and (when the loop limit
        applies) those that sent mailflow automated mail lately."""
        wanted = [keys.suppressed(a) for a in recipients] if self.suppression else []
        if counted:
            wanted += [keys.automated_sender(a) for a in recipients]
        found = await self.table.read_many(wanted) if wanted else {}
        automated = {a for a in recipients if keys.automated_sender(a) in found}
        return entries_in(found), automated

    async def _refuse_reply_to_automated(self, in_reply_to: str) -> None:
        if await self.table.exists(keys.automated_message(in_reply_to)):
            raise PolicyRejected(
                f"this automatic email answers {in_reply_to}, which mailflow received as"
                " automated mail (an auto-reply, a bounce or bulk mail); answering it could"
                ' start a mail loop. Set options.autoSubmitted to "no" when a person wrote'
                " the reply.",
                code="loop_suspected",
                details={"inReplyTo": in_reply_to},
            )

    async def _over_loop_limit(self, email: ValidatedEmail, addresses: list[str]) -> list[str]:
        """Count this email (by correlationId: a retry counts once) for each address; the
        addresses whose hourly window was already full."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        over: list[str] = []

        async def count(address: str) -> None:
            admitted = await self.table.count_in_window(
                keys.loop_window(email.app, address, now),
                email.correlation_id,
                limit=self.config.loop_limit_per_hour,
                ttl_seconds=LOOP_WINDOW_TTL_SECONDS,
            )
            if not admitted:
                over.append(address)

        async with anyio.create_task_group() as group:
            for address in addresses:
                group.start_soon(count, address)
        return sorted(over)


def _unique(addresses: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(a.strip().lower() for a in addresses))


def _refusal(skipped: dict[str, SkippedRecipient]) -> PolicyRejected:
    reasons = {s.reason for s in skipped.values()}
    code = reasons.pop() if len(reasons) == 1 else "suppressed"
    listed = "; ".join(s.detail for s in skipped.values())
    return PolicyRejected(
        f"not sent: no recipient may receive it ({listed})",
        code=code,
        details={"recipients": [s.model_dump(mode="json") for s in skipped.values()]},
    )
