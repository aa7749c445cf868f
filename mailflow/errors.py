"""One error hierarchy whose classes decide what happens to an SQS message.

The consumer engine never inspects error *types* beyond this module: a handler raises a
`MailflowError` subclass and the class attribute `retryable` picks the message's fate
(aiokafka's `retriable` pattern). Anything else a handler raises is treated as retryable,
because an unknown failure is more likely a bug or an outage than bad input, and a retry
loses nothing: after `max_attempts` it becomes a permanent failure with a DLQ record.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MailflowError(Exception):
    """Root of every error mailflow raises on purpose.

    `code` is a stable machine-readable identifier (it lands in DLQ records, failure
    events and the `reason` label of metrics, so keep the set small and bounded);
    the message is for humans.
    """

    retryable: ClassVar[bool] = False
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        app: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.app = app
        self.details: dict[str, Any] = details or {}

    @property
    def reason(self) -> str:
        return str(self)


class RetryableError(MailflowError):
    """Transient: leave the message for SQS to redeliver after a backoff."""

    retryable = True
    code = "retryable"

    def __init__(self, message: str, *, delay_seconds: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # A handler that knows better than exponential backoff (a scheduled send, a
        # throttle with a Retry-After) says so here; None means "use the backoff".
        self.delay_seconds = delay_seconds


class PermanentError(MailflowError):
    """The message can never succeed as it is: record it in the DLQ, tell the app, delete."""

    code = "permanent"


class ValidationFailed(PermanentError):
    """Input does not match the contract (bad JSON, wrong types, forbidden values)."""

    code = "validation_error"


class PolicyRejected(PermanentError):
    """Input is well formed but our security policy refuses it (virus, spoofing, limits)."""

    code = "policy_rejected"


class MissingResource(RetryableError):
    """A queue, bucket or table is not there. Retryable per message (an operator can
    recreate it and nothing is lost meanwhile); fatal only in the start-up check."""

    code = "missing_resource"


class ConfigurationError(MailflowError):
    """Settings or the resources they name are wrong; raised at start, never per message."""

    code = "configuration_error"


class Defer(MailflowError):
    """Not a failure: hold the message and hand it back later (scheduled sends).

    The engine re-sends the body with `DelaySeconds` (at most 900, SQS's cap) and deletes
    the original, so waiting does not count as a delivery attempt: a visibility change
    would raise `ApproximateReceiveCount` and trip the queue's redrive policy.
    """

    retryable = True
    code = "deferred"

    def __init__(self, message: str, *, delay_seconds: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.delay_seconds = delay_seconds
