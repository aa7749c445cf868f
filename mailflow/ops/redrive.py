"""Replay failure records: select them, put their bodies back, leave everything else.

`mailflow redrive` is how an operator finishes a failure once its cause is fixed. The
DLQ holds failures of every kind side by side, so a replay must be selective (the app
whose configuration was fixed, the code that was fixed, a time window) and must never
lose a record it does not move: SQS has no query, so the scan receives every record,
holding it hidden while it looks, and gives back all it did not move at the end.

A replay is safe to repeat: the body goes back unchanged, so the pipelines' idempotency
(the inbound delivery claims, the outbound claim per `(source, correlationId)`) turns a
second copy of a record, or a record whose DLQ copy could not be deleted, into a no-op.

The pure core (filters, selection, the table, the summary) comes first; the SQS shell
(`redrive`) last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import anyio
import structlog
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.contracts.base import wire_time
from mailflow.contracts.failure import FailureRecord, is_replayable
from mailflow.engine.message import Direction
from mailflow.errors import MailflowError, describe
from mailflow.ops.queues import give_back, visible_count
from mailflow.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = structlog.get_logger("mailflow.devtools")

# How long the scan holds what it received. Everything not moved is given back (made
# visible) as soon as the scan ends; this only bounds how long records stay hidden if
# the process dies first. Long enough for a pass over a large DLQ (the worker never
# reads the DLQ, so hiding a record delays nothing).
REDRIVE_HOLD_SECONDS = 300
# Reasons are cut to this many characters in the table (the record keeps all of it).
REASON_WIDTH = 60

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}

# --- the pure core ---------------------------------------------------------------------


def parse_instant(text: str, now: datetime) -> datetime:
    """`30m`, `2h`, `3d`, `1w` before `now`, or an ISO-8601 instant, as an aware UTC time.

    An instant without an offset is taken as UTC, the zone of every time mailflow
    writes, so `2026-03-03T09:00` means what the records say. Raises ValueError.
    """
    value = text.strip()
    relative = _RELATIVE.fullmatch(value.lower())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (2026-03-03T09:00:00Z) nor a relative one"
            " (30m, 2h, 3d, 1w)"
        ) from None
    return as_utc(instant)


def as_utc(instant: datetime) -> datetime:
    """Aware and in UTC; a naive time is taken as UTC (see `parse_instant`)."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def record_app(record: FailureRecord) -> str | None:
    """The app a record is about: its `app`, else the app its outbound body claims.

    A message from an app that is not configured yet (`unknown_app`) names nobody in
    `app`, since there is no queue to tell; its body's `source` is the only place the
    app appears, and it is exactly the record an operator replays after adding that app.
    """
    if record.app or record.direction != "outbound":
        return record.app
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    source = body.get("source") if isinstance(body, dict) else None
    return source if isinstance(source, str) and source else None


@dataclass(frozen=True)
class Selection:
    """Which records a replay is about; an unset filter selects everything.

    The time window is half-open on `lastAttemptAt` (`since` <= t < `until`), so two
    adjacent windows never select a record twice.
    """

    app: str | None = None
    codes: frozenset[str] = frozenset()
    direction: Direction | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: FailureRecord) -> bool:
        at = as_utc(record.last_attempt_at)
        return (
            (self.app is None or record_app(record) == self.app)
            and (not self.codes or record.error_code in self.codes)
            and (self.direction is None or record.direction == self.direction)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )


def build_selection(
    *,
    app: str | None,
    codes: list[str] | None,
    direction: Direction | None,
    since: str | None,
    until: str | None,
    now: datetime,
) -> Selection:
    """The selection the command line describes; ValueError names the flag that is wrong."""
    window: dict[str, datetime | None] = {}
    for flag, text in (("since", since), ("until", until)):
        try:
            window[flag] = parse_instant(text, now) if text is not None else None
        except ValueError as exc:
            raise ValueError(f"--{flag}: {exc}") from None
    start, end = window["since"], window["until"]
    if start is not None and end is not None and start >= end:
        raise ValueError(
            f"--since ({wire_time(start)}) is not before --until ({wire_time(end)}):"
            " nothing can match"
        )
    return Selection(
        app=app,
        codes=frozenset(codes or ()),
        direction=direction,
        since=start,
        until=end,
    )


Decision = Literal["move", "skip", "leave", "unparseable"]


def parse_record(body: str) -> FailureRecord | None:
    """The failure record in a DLQ body, or None when it is not one (it stays put)."""
    try:
        return FailureRecord.model_validate_json(body)
    except ValidationError:
        return None


def replay_allowed(record: FailureRecord) -> bool:
    """Whether a replay can succeed: the mark written with the record, and its code.

    The code is asked too because records written before `replayable` existed carry
    no mark (they read as replayable), and a forged message must not slip through.
    """
    return record.replayable and is_replayable(record.error_code)


def decide(record: FailureRecord | None, selection: Selection, force: bool) -> Decision:
    """What the replay does with one DLQ message."""
    if record is None:
        return "unparseable"
    if not selection.matches(record):
        return "leave"
    if not force and not replay_allowed(record):
        return "skip"
    return "move"


TABLE_COLUMNS = (
    "sqsMessageId",
    "direction",
    "app",
    "errorCode",
    "lastAttemptAt",
    "sourceQueue",
    "reason",
)


def truncate(text: str, width: int = REASON_WIDTH) -> str:
    """One line of at most `width` characters, `...` marking a cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def table_row(record: FailureRecord) -> tuple[str, ...]:
    return (
        record.sqs_message_id,
        record.direction,
        record_app(record) or "-",
        record.error_code,
        wire_time(as_utc(record.last_attempt_at)),
        record.source_queue,
        truncate(record.reason),
    )


def format_table(records: list[FailureRecord]) -> list[str]:
    """The records as aligned columns under a header (the header alone when none)."""
    rows = [TABLE_COLUMNS, *(table_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


@dataclass
class RedriveReport:
    """What one replay did (or, dry, would do), for the operator and for tests."""

    dlq: str
    dry_run: bool
    limit: int
    moved: list[FailureRecord] = field(default_factory=list)
    skipped: int = 0
    left: int = 0
    unparseable: int = 0
    # Records whose send failed: still in the DLQ, with why.
    failed: list[tuple[FailureRecord, str]] = field(default_factory=list)
    # Moved, but the DLQ copy could not be deleted: a later replay repeats them.
    not_deleted: int = 0
    # Records that could not be made visible again: hidden until the hold lapses.
    still_hidden: int = 0

    def count(self, decision: Decision) -> None:
        if decision == "skip":
            self.skipped += 1
        elif decision == "leave":
            self.left += 1
        elif decision == "unparseable":
            self.unparseable += 1

    @property
    def limit_reached(self) -> bool:
        return len(self.moved) >= self.limit

    def summary(self) -> list[str]:
        """The counts, then whatever the operator should know about them."""
        verb = "would move" if self.dry_run else "moved"
        line = (
            f"{self.dlq}: {verb} {len(self.moved)}, skipped (not replayable) {self.skipped},"
            f" left (not matching) {self.left}, unparseable {self.unparseable}"
        )
        lines = [line + (f", failed {len(self.failed)}" if self.failed else "")]
        if self.skipped:
            lines.append(
                f"{self.skipped} record(s) can never succeed on replay (a verdict, a forged"
                " writer, a send that may have happened): --force moves them anyway"
            )
        if self.limit_reached:
            lines.append(
                f"stopped at --limit {self.limit}: records not yet looked at stay in {self.dlq}"
            )
        if self.not_deleted:
            lines.append(
                f"warning: {self.not_deleted} record(s) were moved but their DLQ copy could"
                " not be deleted; a later redrive repeats them, which idempotency absorbs"
            )
        if self.still_hidden:
            lines.append(
                f"warning: {self.still_hidden} record(s) could not be made visible again and"
                f" stay hidden for up to {REDRIVE_HOLD_SECONDS} s"
            )
        return lines


# --- the SQS shell ---------------------------------------------------------------------


async def redrive(
    settings: Settings,
    selection: Selection,
    *,
    limit: int,
    dry_run: bool = False,
    force: bool = False,
) -> RedriveReport:
    """Move the selected records' bodies to their source queues (at most `limit`).

    Each record is received once and held; a moved record's DLQ copy is deleted only
    after its body was sent; everything else (not selected, not replayable,
    unparseable, failed, or simply not reached) is made visible again at the end, even
    when the run is cancelled.
    """
    report = RedriveReport(dlq=settings.dlq, dry_run=dry_run, limit=limit)
    async with open_clients(settings) as clients:
        scan = _Scan(clients, await clients.queues.url(settings.dlq), selection, force, report)
        try:
            await scan.run()
        finally:
            with anyio.CancelScope(shield=True):
                report.still_hidden = await give_back(
                    clients, scan.dlq_url, list(scan.held.values())
                )
    return report


@dataclass
class _Scan:
    """One pass over the DLQ: every record received once, decided, held or moved."""

    clients: AwsClients
    dlq_url: str
    selection: Selection
    force: bool
    report: RedriveReport
    # Message id -> receipt handle of every record received and not deleted: given back.
    held: dict[str, str] = field(default_factory=dict)

    async def run(self) -> None:
        """Receive until the DLQ or the limit runs out."""
        waiting = await visible_count(self.clients, self.dlq_url)
        seen: set[str] = set()
        while not self.report.limit_reached:
            response = await self.clients.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=REDRIVE_HOLD_SECONDS,
                # As in peek: long-poll while the count says more wait, then one short poll.
                WaitTimeSeconds=1 if len(seen) < waiting else 0,
            )
            batch = response.get("Messages", [])
            for raw in batch:
                # A record seen before came back (its hold lapsed): keep its new handle.
                self.held[raw["MessageId"]] = raw["ReceiptHandle"]
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for raw in fresh:
                if self.report.limit_reached:
                    break
                seen.add(raw["MessageId"])
                await self._settle(raw)

    async def _settle(self, raw: MessageTypeDef) -> None:
        record = parse_record(raw.get("Body", ""))
        decision = decide(record, self.selection, self.force)
        if decision == "unparseable":
            log.warning("redrive.unparseable_record", sqs_message_id=raw["MessageId"])
        if record is None or decision != "move":
            self.report.count(decision)
        elif self.report.dry_run:
            self.report.moved.append(record)
        else:
            await self._move(raw, record)

    async def _move(self, raw: MessageTypeDef, record: FailureRecord) -> None:
        """Send the body where it came from, then delete the DLQ copy; never the reverse."""
        try:
            target = await self.clients.queues.url(record.source_queue)
            with anyio.CancelScope(shield=True):
                # Shielded: a cancel between the send and the delete would leave a copy.
                await self.clients.sqs.send_message(QueueUrl=target, MessageBody=record.body)
                self.report.moved.append(record)
                await self._delete(raw)
        except (ClientError, BotoCoreError, MailflowError) as exc:
            log.warning("redrive.send_failed", sqs_message_id=raw["MessageId"], error=_why(exc))
            self.report.failed.append((record, _why(exc)))

    async def _delete(self, raw: MessageTypeDef) -> None:
        """Delete a moved record's DLQ copy; if that fails it stays and is given back."""
        try:
            await self.clients.sqs.delete_message(
                QueueUrl=self.dlq_url, ReceiptHandle=raw["ReceiptHandle"]
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "redrive.delete_failed", sqs_message_id=raw["MessageId"], error=describe(exc)
            )
            self.report.not_deleted += 1
            return
        del self.held[raw["MessageId"]]


def _why(exc: BaseException) -> str:
    """One line naming what failed, without the record's content."""
    if isinstance(exc, MailflowError):
        return str(exc)
    if isinstance(exc, ClientError):
        return f"{describe(exc)}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    return describe(exc)
