"""What an SES SendEmail error means for the message, the worker and the account.

- throttled: per-second rate exceeded; retry the message later with backoff, never drop.
- quota: the daily quota is exhausted or sending is paused/suspended; stop sending from
  this task for a while (the message stays queued), alarm through a metric.
- permanent: this message cannot be sent as it is (rejected, unverified sender, bad
  request); no retry, the app gets `email.failed`.
- transient: anything else (5xx, network); the consumer's ordinary retry with backoff.
"""

from __future__ import annotations

from typing import Literal

SesFailure = Literal["throttled", "quota", "permanent", "transient"]

_THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException"})
_QUOTA_CODES = frozenset(
    {
        "SendingPausedException",
        "AccountSendingPausedException",
        "AccountSuspendedException",
        "LimitExceededException",
    }
)
_PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "MailFromDomainNotVerified",
        "NotFoundException",
        "BadRequestException",
        "InvalidParameterValue",
        "ValidationException",
        "ConfigurationSetDoesNotExist",
        "ConfigurationSetDoesNotExistException",
    }
)


def classify_ses_error(code: str, message: str) -> SesFailure:
    """Classify by code, with the message text deciding SES v1-style "Throttling" errors.

    SES reports an exhausted daily quota as `Throttling: Daily message quota exceeded`,
    the same code as a per-second throttle, so the text must be read.
    """
    text = message.lower()
    if "daily message quota" in text or "quota exceeded" in text:
        return "quota"
    if code in _QUOTA_CODES:
        return "quota"
    if code in _THROTTLE_CODES or "maximum sending rate" in text:
        return "throttled"
    if code in _PERMANENT_CODES:
        return "permanent"
    return "transient"


def permanent_code(code: str) -> str:
    """Our stable error code for a permanent SES refusal."""
    if code.startswith("MailFromDomainNotVerified"):
        return "ses_sender_not_verified"
    if code == "MessageRejected":
        return "ses_rejected"
    return "ses_bad_request"
