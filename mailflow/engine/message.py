"""The contract between the consumer engine and a pipeline: what goes in, what comes out.

A pipeline (`Handler`) receives one `SqsMessage` and either returns an `Outcome` or
raises. The outcome is explicit: which app the message concerned (the `app` label of the
metrics) and whether it is to be held back for later (`Deferral`). A raised exception
is a failure whose fate `mailflow.errors.fate` decides. Nothing travels through context
variables or attributes found with `getattr`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

from mailflow.contracts.failure import FailureRecord
from mailflow.errors import MailflowError

Direction = Literal["inbound", "outbound", "events"]


@dataclass(frozen=True)
class SqsMessage:
    """One received SQS message, as a pipeline sees it."""

    queue: str  # the configured name or URL, as in settings
    queue_url: str
    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def receive_count(self) -> int:
        """How many times SQS has delivered this message, this delivery included."""
        return int(self.attributes.get("ApproximateReceiveCount", "1"))

    @property
    def first_received_at(self) -> datetime | None:
        stamp = self.attributes.get("ApproximateFirstReceiveTimestamp")
        return datetime.fromtimestamp(int(stamp) / 1000, tz=UTC) if stamp else None

    @property
    def sender_id(self) -> str | None:
        """SQS's `SenderId`: the account or role unique id of whoever wrote the message."""
        return self.attributes.get("SenderId")


@dataclass(frozen=True)
class Deferral:
    """Hold the message and hand it back after `seconds`; waiting is not an attempt.

    The engine re-sends the body with `DelaySeconds` (at most 900, SQS's cap) and deletes
    the original: a visibility change would raise `ApproximateReceiveCount` and walk a
    patient message (a scheduled send, a throttled one) into the redrive DLQ.
    """

    seconds: int
    reason: str
    # String message attributes set on the re-sent message (the engine's own bookkeeping).
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What handling a message came to, short of a failure."""

    app: str | None = None
    deferral: Deferral | None = None

    @classmethod
    def deferred(cls, seconds: int, reason: str, app: str | None = None) -> Outcome:
        return cls(app=app, deferral=Deferral(seconds, reason))


class BackgroundJob(NamedTuple):
    """A coroutine a pipeline needs running for the worker's life (a rate refresh, say).

    The worker supervises it: if it raises, the error is logged and it is started again
    after a pause; it never ends the process.
    """

    name: str
    run: Callable[[], Awaitable[None]]


class Handler(Protocol):
    """A pipeline plugged into the consumer engine.

    `handle` returns an `Outcome` (the message is deleted, or re-sent later for a
    deferral) or raises: `mailflow.errors.fate` turns the exception into a retry with
    backoff or a failure record. `on_permanent_failure` runs after the failure record is
    written and before the message is deleted, so the pipeline can tell the app (an
    `email.failed` event); if it raises, the message is kept and judged again.
    """

    direction: Direction

    async def handle(self, message: SqsMessage) -> Outcome: ...

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None: ...

    def background_jobs(self) -> Sequence[BackgroundJob]: ...
