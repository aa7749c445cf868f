"""One error hierarchy, and the one table that decides what any exception means for a message.

A message's fate is `(retryable, code)`. Errors mailflow raises on purpose carry it as
class attributes (aiokafka's `retriable` pattern); everything else, AWS errors above all,
gets it from `FATES` and `fate()` below, in the style of httpx's exception map: the
question "is AccessDenied retryable?" has one answer, here, for every pipeline.

Decisions behind the table, made once:

- A missing *object* (NoSuchKey, a 404 on HEAD, an archived object) can never appear by
  retrying: permanent. Call sites name it for their contract (`raw_email_missing`,
  `attachment_not_found`) but cannot change its retryability.
- A missing *resource* (bucket, queue, table, configuration set, KMS key) is an operator's
  to fix: retryable, so nothing is lost while it is recreated; after `max_attempts` the
  message becomes a failure record that `mailflow redrive` can replay.
- Access denied (IAM, KMS, expired credentials) is retryable for the same reason: it is
  usually a deploy or a policy change in progress.
- Throttling, 5xx, timeouts and broken connections are transient: retryable.
- A request AWS calls invalid cannot succeed when repeated: permanent.
- Anything unknown is retryable: an unknown failure is more likely a bug or an outage than
  bad input, and a retry loses nothing (the attempts are bounded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mailflow.observability.logging import redact_address


class MailflowError(Exception):
    """Root of every error mailflow raises on purpose.

    `code` is a stable machine-readable identifier (it lands in failure records, failure
    events and the `reason` label of metrics, so the set stays small and bounded); the
    message is for humans and names no email address.
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


class PermanentError(MailflowError):
    """The message can never succeed as it is: record it, tell the app, delete it."""

    code = "permanent"


class Rejection(PermanentError):
    """The input was refused by design (bad JSON, a virus, a forbidden sender).

    Still a failure record and an event to the app, but an expected one: it is logged as
    `message.rejected`, apart from `message.failed`, so that alarms page on failures of
    mailflow and its dependencies, not on hostile or careless input.
    """

    code = "rejected"


class ValidationFailed(Rejection):
    """Input does not match the contract (bad JSON, wrong types, forbidden values)."""

    code = "validation_error"


class PolicyRejected(Rejection):
    """Input is well formed but our security policy refuses it (virus, spoofing, limits)."""

    code = "policy_rejected"


class MissingResource(RetryableError):
    """A queue, bucket or table is not there: retryable per message (an operator can
    recreate it and nothing is lost meanwhile); fatal only in the start-up check."""

    code = "missing_resource"


class ConfigurationError(MailflowError):
    """Settings or the resources they name are wrong; raised at start, never per message."""

    code = "configuration_error"


class Fate(NamedTuple):
    """What an exception means for the message that raised it."""

    retryable: bool
    code: str


THROTTLED = Fate(True, "aws_throttled")
UNAVAILABLE = Fate(True, "aws_unavailable")
ACCESS_DENIED = Fate(True, "access_denied")
MISSING = Fate(True, "missing_resource")
OBJECT_NOT_FOUND = Fate(False, "object_not_found")
BAD_REQUEST = Fate(False, "aws_bad_request")
SES_QUOTA = Fate(True, "ses_quota")
UNKNOWN_AWS = Fate(True, "aws_error")
IO_ERROR = Fate(True, "io_error")
UNEXPECTED = Fate(True, "unexpected_error")


def _each(fate: Fate, *codes: str) -> dict[str, Fate]:
    return dict.fromkeys(codes, fate)


# AWS error code -> fate, for S3, SQS, DynamoDB, SESv2, KMS (through S3/SQS) and STS.
FATES: Mapping[str, Fate] = {
    **_each(
        THROTTLED,
        "Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown",
        "RequestThrottled", "RequestLimitExceeded", "ProvisionedThroughputExceededException",
        "KMS.ThrottlingException", "ThrottledException",
    ),
    **_each(
        UNAVAILABLE,
        "InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
        "ServiceUnavailableException", "InternalServiceError", "503", "500",
    ),
    **_each(
        ACCESS_DENIED,
        "AccessDenied", "AccessDeniedException", "Forbidden", "403",
        "KMS.AccessDeniedException", "KMSAccessDeniedException",
        "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
        "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidAccessKeyId",
    ),
    **_each(
        MISSING,
        "NoSuchBucket", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
        "ResourceNotFoundException", "ConfigurationSetDoesNotExist",
        "ConfigurationSetDoesNotExistException", "NotFoundException", "KMS.NotFoundException",
        "KMS.DisabledException", "KMSDisabledException", "KMSNotFoundException",
        "KMS.KMSInvalidStateException", "KMSInvalidStateException",
    ),
    **_each(OBJECT_NOT_FOUND, "NoSuchKey", "404", "NotFound", "InvalidObjectState"),
    **_each(
        BAD_REQUEST,
        "ValidationException", "InvalidParameterValue", "InvalidParameterValueException",
        "InvalidMessageContents", "MessageTooLong", "BadRequestException",
        "ItemCollectionSizeLimitExceededException", "EntityTooLarge",
    ),
    **_each(
        SES_QUOTA,
        "SendingPausedException", "AccountSendingPausedException", "AccountSuspendedException",
        "LimitExceededException",
    ),
    "MessageRejected": Fate(False, "ses_rejected"),
    "MailFromDomainNotVerifiedException": Fate(False, "ses_sender_not_verified"),
    "MailFromDomainNotVerified": Fate(False, "ses_sender_not_verified"),
}  # fmt: skip

# Transport failures: the request may not have reached AWS, or its answer was lost.
_TRANSPORT = (BotoCoreError, aiohttp.ClientError, OSError)


def aws_error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ('' when the response has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error_fate(exc: ClientError) -> Fate:
    code = aws_error_code(exc)
    text = str(exc.response.get("Error", {}).get("Message", "")).lower()
    # SES reports an exhausted daily quota with the per-second throttle's code.
    if "daily message quota" in text or "quota exceeded" in text:
        return SES_QUOTA
    if "maximum sending rate" in text:
        return THROTTLED
    if code in FATES:
        return FATES[code]
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return UNAVAILABLE if status >= 500 else UNKNOWN_AWS


def fate(exc: BaseException) -> Fate:
    """(retryable, code) of anything a pipeline raised: the one decision, in one place."""
    if isinstance(exc, MailflowError):
        return Fate(exc.retryable, exc.code)
    if isinstance(exc, ClientError):
        return _client_error_fate(exc)
    if isinstance(exc, NoCredentialsError):
        return ACCESS_DENIED
    if isinstance(exc, BotoCoreError | aiohttp.ClientError):
        return UNAVAILABLE
    if isinstance(exc, OSError):
        return IO_ERROR
    return UNEXPECTED


def describe(exc: BaseException) -> str:
    """A one-line description of a foreign exception that names no message content."""
    if isinstance(exc, ClientError):
        return aws_error_code(exc) or "error"
    return type(exc).__name__


def _aws_message(exc: ClientError) -> str:
    """AWS's explanation, one line, addresses reduced to their domain (it may quote them)."""
    text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
    return redact_address(text)[:300]


def as_mailflow_error(
    exc: BaseException, action: str, codes: Mapping[str, str] | None = None
) -> MailflowError:
    """The MailflowError that carries `exc`'s fate; `codes` renames a fate for a contract.

    Renaming changes the code an app or operator sees (`object_not_found` ->
    `attachment_not_found`), never whether the message is retried.
    """
    if isinstance(exc, MailflowError):
        return exc
    retryable, code = fate(exc)
    code = (codes or {}).get(code, code)
    cls = RetryableError if retryable else PermanentError
    details: dict[str, Any] = {"exception": type(exc).__name__}
    text = f"{action}: {describe(exc)}"
    if isinstance(exc, ClientError):
        details["awsErrorCode"] = aws_error_code(exc)
        explanation = _aws_message(exc)
        text += f" ({explanation})" if explanation else ""
    elif isinstance(exc, OSError) and not isinstance(exc, BotoCoreError):
        # The system's words matter to an operator ("No usable temporary directory").
        text += f" ({redact_address(str(exc))[:300]})"
    error = cls(text, code=code, details=details)
    error.__cause__ = exc
    return error


@contextmanager
def aws_errors(action: str, codes: Mapping[str, str] | None = None) -> Iterator[None]:
    """Translate AWS and transport exceptions raised inside into their MailflowError.

    with aws_errors(f"GetObject s3://{bucket}/{key}", {"object_not_found": "raw_email_missing"}):
        response = await s3.get_object(Bucket=bucket, Key=key)
    """
    try:
        yield
    except (ClientError, *_TRANSPORT) as exc:
        raise as_mailflow_error(exc, action, codes) from exc
