"""Sent at most once: the claim and the send marker of one outbound email, in the table.

    build ── claim + mark send (one UpdateItem) ── SendEmail ── tell app ── complete claim
      │                                          │            │
      a failure before SendEmail releases   SES refused (4xx):    no answer, 5xx, cut off:
      the claim (nothing was sent:          forget marker, release the outcome is unknown;
      a retry sends)                        (nothing was sent)    keep the marker

Every send attempt has a random token, written on the marker and carried by the email to
SES (tag and header) and back in SES's events. An attempt that finds an earlier marker
asks what became of it (`resolve`):

- an SES event names its token         -> it was sent: record it, tell the app `sent`;
- SES's refusal proved it was not sent, or SES's events for mail sent `settle` seconds
  *after* it have arrived and none names it -> not sent: take over the marker, send once;
- otherwise, younger than the window   -> wait (the message is held, not failed);
- older, with nothing learnt           -> report `send_outcome_unknown`, never re-send.

The claim is one conditional write (never check-then-act). Every write after a send has
begun is shielded from cancellation: a worker draining at shutdown must still record it.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
import structlog

from mailflow.aws import keys
from mailflow.aws.table import Claim, SendClaim, SendMark, Table
from mailflow.errors import describe
from mailflow.feedback.event import SesEvent
from mailflow.feedback.report import SentBy
from mailflow.outbound.validation import ValidatedEmail

log = structlog.get_logger("mailflow.outbound")

EVIDENCE_TTL_SECONDS = 3 * 24 * 3600  # longer than any claim lives (the watermark)
_VOIDED_KEPT = 10_000  # tokens this process saw refused, when the marker could not go


def new_token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Resolution:
    """What became of an earlier attempt (see the module docstring)."""

    verdict: Literal["sent", "not_sent", "pending", "unknown"]
    evidence: dict[str, str] = field(default_factory=dict)
    # Pending only because no mail sent since has had its events yet (a quiet account):
    # one email of our own (a canary) would move the watermark and settle it.
    quiet: bool = False


@dataclass
class SendEvidence:
    """SES's events, as far as exactly-once and feedback need them: per attempt, the
    first event's SES message id (on the item that says whose attempt it was); and the
    watermark, the latest send time among the events processed, written only when it
    moves by a second or more, so most events cost one write, not two.
    """

    table: Table
    ttl_seconds: int = 30 * 24 * 3600
    _written: float = 0.0

    async def record(self, event: SesEvent) -> SentBy | None:
        """Record the event; whose email it is about, when mailflow sent it."""
        sent_by = None
        if event.token:
            fields = {"sesMessageId": event.ses_message_id, "eventType": event.event_type}
            item = await self.table.record_evidence(
                keys.send_token(event.token), fields, self.ttl_seconds
            )
            if item.get("app") and item.get("correlationId"):
                sent_by = SentBy(item["app"], item["correlationId"], item.get("tracking") == "1")
        if event.sent_at >= self._written + 1.0:
            await self.table.advance_mark(
                keys.events_watermark(), event.sent_at, EVIDENCE_TTL_SECONDS
            )
            self._written = event.sent_at
        return sent_by

    async def for_token(self, token: str) -> dict[str, str] | None:
        """The first event's facts for attempt `token`; None while SES has told nothing."""
        found = await self.table.read_fields(keys.send_token(token))
        return found if found and "sesMessageId" in found else None

    async def watermark(self) -> float | None:
        return await self.table.read_mark(keys.events_watermark())


@dataclass
class SendLedger:
    """Claims and send markers of outbound emails (verbs over `Table`)."""

    table: Table
    lease_seconds: float
    ttl_seconds: int
    events_flow: bool = False  # an events consumer feeds `SendEvidence`
    feedback_ttl_seconds: int = 30 * 24 * 3600  # how long an attempt's app is remembered
    settle_seconds: float = 120.0
    window_seconds: float = 900.0
    clock: Callable[[], float] = time.time
    _voided: OrderedDict[str, None] = field(default_factory=OrderedDict)
    evidence: SendEvidence = field(init=False)

    def __post_init__(self) -> None:
        self.evidence = SendEvidence(self.table, self.feedback_ttl_seconds)

    async def read_claim(self, email: ValidatedEmail) -> Claim | None:
        """What the email's claim says (completed, in progress, ...), without claiming."""
        return await self.table.read_claim(_claim_key(email), email.payload_hash)

    async def remember(self, email: ValidatedEmail, token: str, tracking: bool) -> None:
        """Whose attempt `token` is: SES's events carry only the token, and must find the
        app (for bounces, complaints) for as long as SES can send them. Written before the
        claim (an attempt that never sends leaves an orphan that expires), batched with
        the other handlers' records."""
        fields = {"app": email.app, "correlationId": email.correlation_id}
        if tracking:
            fields["tracking"] = "1"
        await self.table.put_soon(keys.send_token(token), fields, self.feedback_ttl_seconds)

    async def claim_send(self, email: ValidatedEmail, token: str) -> tuple[Claim, SendMark | None]:
        """Claim the email and mark attempt `token` as about to send, in one write; the
        earlier attempt's marker when the claim was lapsed with one on it."""
        return await self.table.claim_send(
            SendClaim(
                claim_key=_claim_key(email),
                payload_hash=email.payload_hash,
                token=token,
                lease_seconds=self.lease_seconds,
                ttl_seconds=self.ttl_seconds,
            )
        )

    async def take_over(self, email: ValidatedEmail, earlier: SendMark, token: str) -> bool:
        """Replace a marker whose send is proven not to have happened."""
        return await self.table.take_over(_claim_key(email), earlier, token)

    async def resolve(self, earlier: SendMark) -> Resolution:
        if earlier.token and earlier.token in self._voided:
            return Resolution("not_sent")
        age = self.clock() - earlier.started_at
        quiet = False
        if earlier.token:
            found = await self.evidence.for_token(earlier.token)
            if found:
                return Resolution("sent", found)
            if self.events_flow:
                mark = await self.evidence.watermark()
                if mark is not None and mark >= earlier.started_at + self.settle_seconds:
                    return Resolution("not_sent")
                quiet = age >= self.settle_seconds
        if age < self.window_seconds:
            return Resolution("pending", quiet=quiet)
        return Resolution("unknown")

    async def note_unknown(self, email: ValidatedEmail, token: str, cause: str) -> None:
        """Say on the marker why attempt `token`'s outcome is unknown (best effort)."""
        with anyio.CancelScope(shield=True):
            try:
                await self.table.note_send_cause(_claim_key(email), token, cause)
            except Exception as exc:
                log.warning("outbound.cause_not_noted", error=describe(exc))

    async def release(self, email: ValidatedEmail) -> None:
        """Give up the claim, keeping any send marker on it: a retry may claim again."""
        with anyio.CancelScope(shield=True):
            try:
                await self.table.lapse(_claim_key(email))
            except Exception as exc:
                # The lease lapses by itself; the retry is only delayed.
                log.warning("outbound.release_failed", error=describe(exc))

    async def forget(self, email: ValidatedEmail, token: str) -> None:
        """SES refused attempt `token` (nothing was sent): drop the claim and its marker.

        If they cannot be removed, this process remembers the token as refused, so its
        own retry sends at once; another task's retry learns it from SES's events.
        """
        with anyio.CancelScope(shield=True):
            try:
                await self.table.clear_send_mark(_claim_key(email), token)
            except Exception as exc:
                log.warning("outbound.marker_clear_failed", error=describe(exc))
                self._voided[token] = None
                while len(self._voided) > _VOIDED_KEPT:
                    self._voided.popitem(last=False)
                await self.release(email)

    async def complete(
        self, email: ValidatedEmail, result: dict[str, str], *, emitted: bool
    ) -> None:
        """Record the send (and whether the app was told); retried in place, because SES
        already sent the email."""
        with anyio.CancelScope(shield=True):
            for attempt in range(3):
                try:
                    await self.table.complete(_claim_key(email), result, emitted=emitted)
                    return
                except Exception as exc:
                    log.warning(
                        "outbound.complete_failed", error=describe(exc), attempt=attempt + 1
                    )
                    await anyio.sleep(0.2 * 2**attempt)
        # The marker still stops any re-send, and SES's events will prove it sent.
        log.error("outbound.complete_abandoned", correlation_id=email.correlation_id)

    async def emitted(self, email: ValidatedEmail) -> None:
        """The `email.sent` event is on the app's queue; a repeat need not emit it again."""
        try:
            await self.table.mark_emitted(_claim_key(email))
        except Exception as exc:
            # A repeat would emit it again, with the same eventId: apps deduplicate.
            log.warning("outbound.emitted_not_recorded", error=describe(exc))


def _claim_key(email: ValidatedEmail) -> str:
    return keys.outbound_email(email.app, email.correlation_id)
