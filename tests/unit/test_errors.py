"""The fate table: what every exception a pipeline can meet means for its message."""

from __future__ import annotations

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from mailflow.errors import (
    FATES,
    Fate,
    MissingResource,
    PermanentError,
    PolicyRejected,
    RetryableError,
    ValidationFailed,
    as_mailflow_error,
    aws_errors,
    fate,
)
from mailflow.inbound.io import RAW_EMAIL_CODES
from mailflow.outbound.io import ATTACHMENT_CODES
from mailflow.outbound.pipeline import SES_CODES


def client_error(code: str, status: int = 400, message: str = "") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Operation",
    )


# (AWS error code, HTTP status, message) -> (retryable, code): the decisions, as a table.
TABLE = [
    # A missing object never appears by retrying.
    ("NoSuchKey", 404, "", False, "object_not_found"),
    ("404", 404, "", False, "object_not_found"),
    ("InvalidObjectState", 403, "", False, "object_not_found"),
    # A missing bucket, queue, table, configuration set or key is an operator's to fix.
    ("NoSuchBucket", 404, "", True, "missing_resource"),
    ("AWS.SimpleQueueService.NonExistentQueue", 400, "", True, "missing_resource"),
    ("ResourceNotFoundException", 400, "", True, "missing_resource"),
    ("ConfigurationSetDoesNotExistException", 400, "", True, "missing_resource"),
    ("NotFoundException", 404, "", True, "missing_resource"),
    ("KMS.DisabledException", 400, "", True, "missing_resource"),
    # Access denied: retried in every pipeline (a deploy or policy change in progress).
    ("AccessDenied", 403, "", True, "access_denied"),
    ("403", 403, "", True, "access_denied"),
    ("AccessDeniedException", 400, "", True, "access_denied"),
    ("KMS.AccessDeniedException", 400, "", True, "access_denied"),
    ("ExpiredToken", 400, "", True, "access_denied"),
    # Throttling, per service.
    ("SlowDown", 503, "", True, "aws_throttled"),
    ("ProvisionedThroughputExceededException", 400, "", True, "aws_throttled"),
    ("RequestThrottled", 403, "", True, "aws_throttled"),
    ("TooManyRequestsException", 429, "", True, "aws_throttled"),
    ("Throttling", 400, "Maximum sending rate exceeded.", True, "aws_throttled"),
    ("SomethingNew", 400, "Maximum sending rate exceeded.", True, "aws_throttled"),
    # SES's daily quota hides behind the throttle code: the text decides.
    ("Throttling", 400, "Daily message quota exceeded.", True, "ses_quota"),
    ("LimitExceededException", 400, "Daily message quota exceeded", True, "ses_quota"),
    ("SendingPausedException", 400, "", True, "ses_quota"),
    ("AccountSuspendedException", 400, "", True, "ses_quota"),
    # Server side.
    ("InternalError", 500, "", True, "aws_unavailable"),
    ("ServiceUnavailable", 503, "", True, "aws_unavailable"),
    ("WhateverBroke", 502, "", True, "aws_unavailable"),
    # The request itself is wrong: repeating it cannot help.
    ("ValidationException", 400, "", False, "aws_bad_request"),
    ("InvalidParameterValue", 400, "", False, "aws_bad_request"),
    ("BadRequestException", 400, "", False, "aws_bad_request"),
    ("MessageRejected", 400, "Email address is not verified.", False, "ses_rejected"),
    ("MailFromDomainNotVerifiedException", 400, "", False, "ses_sender_not_verified"),
    # Unknown 4xx: retried, bounded by max attempts.
    ("SomethingNew", 400, "", True, "aws_error"),
]


@pytest.mark.parametrize(("code", "status", "message", "retryable", "fate_code"), TABLE)
def test_aws_error_fates(
    code: str, status: int, message: str, retryable: bool, fate_code: str
) -> None:
    assert fate(client_error(code, status, message)) == Fate(retryable, fate_code)


def test_every_code_in_the_table_is_decided_by_it() -> None:
    for code, expected in FATES.items():
        assert fate(client_error(code)) == expected, code


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), (True, "aws_unavailable")),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), (True, "aws_unavailable")),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), (True, "aws_unavailable")),
        (aiohttp.ClientPayloadError("truncated"), (True, "aws_unavailable")),
        (NoCredentialsError(), (True, "access_denied")),
        (ConnectionResetError(), (True, "io_error")),
        (OSError(28, "No space left on device"), (True, "io_error")),
        (KeyError("bug"), (True, "unexpected_error")),
        (RecursionError(), (True, "unexpected_error")),
        (ValidationFailed("bad"), (False, "validation_error")),
        (PolicyRejected("virus", code="virus_detected"), (False, "virus_detected")),
        (PermanentError("x", code="poison"), (False, "poison")),
        (RetryableError("later"), (True, "retryable")),
        (MissingResource("queue gone"), (True, "missing_resource")),
    ],
)
def test_other_exception_fates(exc: BaseException, expected: tuple[bool, str]) -> None:
    assert fate(exc) == expected


@pytest.mark.parametrize("renames", [RAW_EMAIL_CODES, ATTACHMENT_CODES, SES_CODES])
def test_contract_names_rename_table_codes_and_never_change_retryability(
    renames: dict[str, str],
) -> None:
    table_codes = {f.code for f in FATES.values()}
    for aws_code, fate_entry in FATES.items():
        renamed = as_mailflow_error(client_error(aws_code), "op", renames)
        assert renamed.retryable == fate_entry.retryable
        assert renamed.code == renames.get(fate_entry.code, fate_entry.code)
    assert set(renames) <= table_codes, "a rename names a code the table never produces"


def test_aws_errors_translates_and_keeps_the_cause() -> None:
    with pytest.raises(RetryableError) as info, aws_errors("PutObject s3://b/k"):
        raise client_error("AccessDenied", 403, "User: arn:... is not authorized for x@y.com")
    error = info.value
    assert error.code == "access_denied"
    assert error.details["awsErrorCode"] == "AccessDenied"
    assert isinstance(error.__cause__, ClientError)
    assert "PutObject s3://b/k: AccessDenied" in str(error)
    assert "x@y.com" not in str(error)  # AWS's text may quote an address: domain only


def test_aws_errors_lets_mailflow_errors_through() -> None:
    with pytest.raises(PolicyRejected), aws_errors("op"):
        raise PolicyRejected("too large", code="email_too_large")


def test_a_local_os_error_keeps_the_systems_words() -> None:
    """An operator reading the failure record needs "No usable temporary directory"."""
    exc = FileNotFoundError(2, "No usable temporary directory found in ['/tmp']")
    error = as_mailflow_error(exc, "reading s3://raw/inbound/abc")
    assert error.code == "io_error"
    assert error.retryable
    assert "No usable temporary directory" in str(error)
