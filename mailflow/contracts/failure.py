"""The one shape of record that lands in `MAILFLOW_DLQ` (the original had three)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mailflow.contracts.base import Instant, WireModel


class FailureRecord(WireModel):
    """Why a message could not be handled, with everything needed to replay it.

    `body` is the original SQS body verbatim, so `mailflow redrive` can put it back on
    `sourceQueue` unchanged once the cause is fixed.
    """

    version: Literal["1.0"] = "1.0"
    type: Literal["mailflow.failure"] = "mailflow.failure"
    direction: Literal["inbound", "outbound", "events"]
    source_queue: str = Field(description="Queue name or URL the message was received from.")
    sqs_message_id: str
    error_code: str = Field(description="Stable machine-readable code, e.g. validation_error.")
    reason: str = Field(description="Human-readable explanation.")
    retryable: bool = Field(description="True when retries were exhausted on a transient error.")
    attempts: int = Field(description="ApproximateReceiveCount when the record was written.")
    first_attempt_at: Instant | None = None
    last_attempt_at: Instant
    app: str | None = Field(default=None, description="The app concerned, when known.")
    details: dict[str, Any] = Field(default_factory=dict)
    body: str = Field(description="The original message body, verbatim.")
