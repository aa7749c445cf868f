"""Which AWS failures are worth a retry."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from mailflow.inbound.storage import aws_failure


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("code", "status"), [("NoSuchKey", 404), ("NoSuchBucket", 404), ("404", 404)]
)
def test_missing_objects_are_permanent(code: str, status: int) -> None:
    error = aws_failure(client_error(code, status), "GetObject s3://b/k")
    assert not error.retryable
    assert error.code == "raw_email_missing"
    assert code in str(error)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("ThrottlingException", 400),
        ("InternalError", 500),
        ("AccessDenied", 403),
    ],
)
def test_throttling_server_errors_and_access_are_retried(code: str, status: int) -> None:
    error = aws_failure(client_error(code, status), "op")
    assert error.retryable
    assert error.code == "aws_error"


def test_connection_problems_are_retried() -> None:
    for exc in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ):
        error = aws_failure(exc, "op")
        assert error.retryable
        assert error.code == "aws_unavailable"
