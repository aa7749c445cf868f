"""The one shape of record that lands in `MAILFLOW_DLQ` (the original had three)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from mailflow.contracts.base import Instant, WireModel

# Error codes that no replay can turn into a success, with why: `mailflow redrive` skips
# their records unless `--force`. A code is here only when the body itself (which a
# replay carries unchanged) or the safety of what was already done decides the outcome;
# anything an operator can fix (configuration such as a missing app or sender, a queue,
# a bucket, an IAM policy, an outage) stays replayable, validation errors included.
NOT_REPLAYABLE: Mapping[str, str] = {
    "virus_detected": "SES's virus verdict is written in the notification a replay"
    " resends: it is rejected again, and letting one known virus through is a decision"
    " about that email (--force), not a fix",
    "spam_detected": "SES's spam verdict is part of the replayed notification: rejected"
    " again while REJECT_SPAM is on",
    "spf_failed": "the SPF verdict is part of the replayed notification: rejected again"
    " while REJECT_SPF_FAIL is on",
    "dkim_failed": "the DKIM verdict is part of the replayed notification: rejected again"
    " while REJECT_DKIM_FAIL is on",
    "dmarc_failed": "the DMARC verdict is part of the replayed notification: rejected"
    " again while REJECT_DMARC_FAIL is on",
    "writer_not_allowed": "a message forged in another app's name; a replay is written by"
    " the operator, whom the worker trusts to write for every app, so it would send the"
    " forgery instead of refusing it",
    "send_outcome_unknown": "the email may already have gone out: a replay is refused"
    " again while the send marker lives and may send it twice after; check SES first",
    "idempotency_conflict": "the app used this correlationId for a different email that"
    " was sent: a replay conflicts again within the claim's 24 h, and the fix is the"
    " app's (a new correlationId)",
    "idempotency_mismatch": "this SES message id was already delivered with a different"
    " raw email: a replay meets the same claim, and the notification is suspect",
}


def is_replayable(error_code: str) -> bool:
    """Whether a failure with this code can succeed when its body is put back."""
    return error_code not in NOT_REPLAYABLE


class FailureRecord(WireModel):
    """Why a message could not be handled, with everything needed to replay it.

    `body` is the original SQS body verbatim, so `mailflow redrive` can put it back on
    `sourceQueue` unchanged once the cause is fixed. `replayable` is decided from the
    error code when the record is written, so whoever reads the DLQ sees which records
    no fix can make succeed.
    """

    version: Literal["1.0"] = "1.0"
    type: Literal["mailflow.failure"] = "mailflow.failure"
    direction: Literal["inbound", "outbound", "events"]
    source_queue: str = Field(description="Queue name or URL the message was received from.")
    sqs_message_id: str
    error_code: str = Field(description="Stable machine-readable code, e.g. validation_error.")
    reason: str = Field(description="Human-readable explanation.")
    retryable: bool = Field(description="True when retries were exhausted on a transient error.")
    replayable: bool = Field(
        default=True,
        description="False when no fix can make a replay succeed (a virus verdict, a forged"
        " writer): `mailflow redrive` skips the record unless --force.",
    )
    attempts: int = Field(description="ApproximateReceiveCount when the record was written.")
    first_attempt_at: Instant | None = None
    last_attempt_at: Instant
    app: str | None = Field(default=None, description="The app concerned, when known.")
    details: dict[str, Any] = Field(default_factory=dict)
    body: str = Field(description="The original message body, verbatim.")
