"""Sent at most once: the claim and the send marker of one outbound email, in the table.

    claim (source, correlationId) ── build ── mark send ── SendEmail ── complete claim
                 │                                 │            │
      a failure here releases the claim   SES answered: forget   cut off mid-call:
      (nothing was sent: a retry sends)   marker, release claim  keep both; the next
                                          (nothing was sent)     attempt finds the marker

The claim is one conditional write (never check-then-act); the marker is written just
before SendEmail and removed only when SES answered with an error, so an attempt that
finds an old marker knows an earlier send's outcome is unknown and sends nothing.
Every write after a send has begun is shielded from cancellation: a worker draining at
shutdown must still record what it did.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import structlog

from mailflow.aws import keys
from mailflow.aws.table import Claim, Table
from mailflow.errors import describe
from mailflow.outbound.validation import ValidatedEmail

log = structlog.get_logger("mailflow.outbound")


@dataclass
class SendLedger:
    """Claims and send markers of outbound emails (verbs over `Table`)."""

    table: Table
    lease_seconds: float
    ttl_seconds: int

    async def claim(self, email: ValidatedEmail) -> Claim:
        return await self.table.claim(
            _claim_key(email),
            payload_hash=email.payload_hash,
            lease_seconds=self.lease_seconds,
            ttl_seconds=self.ttl_seconds,
        )

    async def mark_send(self, email: ValidatedEmail) -> float | None:
        """Write the marker; None on success, else the age of an earlier attempt's marker."""
        return await self.table.mark_send(_marker_key(email), self.ttl_seconds)

    async def release(self, email: ValidatedEmail) -> None:
        """Nothing was sent and the marker was never written: let a retry claim again."""
        with anyio.CancelScope(shield=True):
            try:
                await self.table.release(_claim_key(email))
            except Exception as exc:
                # The lease lapses by itself; the retry is only delayed.
                log.warning("outbound.release_failed", error=describe(exc))

    async def forget(self, email: ValidatedEmail) -> None:
        """SES answered with an error (nothing was sent): drop the marker, then the claim."""
        with anyio.CancelScope(shield=True):
            try:
                await self.table.clear_send_mark(_marker_key(email))
            except Exception as exc:
                # Keeping the claim makes the retry wait for the lease, then see the
                # marker; better a reported unknown outcome than a possible duplicate.
                log.warning("outbound.marker_clear_failed", error=describe(exc))
                return
            await self.release(email)

    async def complete(self, email: ValidatedEmail, result: dict[str, str]) -> None:
        """Record the send; retried in place, because SES already sent the email."""
        with anyio.CancelScope(shield=True):
            for attempt in range(3):
                try:
                    await self.table.complete(_claim_key(email), result)
                    return
                except Exception as exc:
                    log.warning(
                        "outbound.complete_failed", error=describe(exc), attempt=attempt + 1
                    )
                    await anyio.sleep(0.2 * 2**attempt)
        # The marker still stops any re-send; the app still gets its event.
        log.error("outbound.complete_abandoned", correlation_id=email.correlation_id)


def _claim_key(email: ValidatedEmail) -> str:
    return keys.outbound_email(email.app, email.correlation_id)


def _marker_key(email: ValidatedEmail) -> str:
    return keys.send_marker(email.app, email.correlation_id)
