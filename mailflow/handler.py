"""What a consumer hands to a handler, and what a handler must offer.

Kept apart from the engine so that pipelines depend on this small surface only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from mailflow.contracts.failure import FailureRecord
from mailflow.errors import MailflowError

Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True)
class SqsMessage:
    """One received SQS message, as the handler sees it."""

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
    def sent_at(self) -> datetime | None:
        stamp = self.attributes.get("SentTimestamp")
        return datetime.fromtimestamp(int(stamp) / 1000, tz=UTC) if stamp else None


class Handler(Protocol):
    """A pipeline plugged into the consumer engine.

    `handle` returns normally on success (the message is deleted) or raises: a
    `MailflowError` whose `retryable` is False is permanent, anything else is retried
    with backoff until `max_attempts`. `on_permanent_failure` runs after the DLQ record
    is written and before the message is deleted, so the handler can tell the app (an
    `email.failed` event); if it raises, the message is retried rather than deleted.
    """

    direction: Direction

    async def handle(self, message: SqsMessage) -> None: ...

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None: ...
