"""Classification of SES SendEmail errors into the message's and the worker's fate."""

from __future__ import annotations

import pytest

from mailflow.outbound.ses_errors import classify_ses_error, permanent_code


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        ("TooManyRequestsException", "Too many requests", "throttled"),
        ("Throttling", "Maximum sending rate exceeded.", "throttled"),
        ("ThrottlingException", "Rate exceeded", "throttled"),
        ("Throttling", "Daily message quota exceeded.", "quota"),
        ("LimitExceededException", "Daily message quota exceeded", "quota"),
        ("SendingPausedException", "Sending is paused for this account", "quota"),
        ("AccountSuspendedException", "suspended", "quota"),
        ("MessageRejected", "Email address is not verified.", "permanent"),
        ("MailFromDomainNotVerifiedException", "not verified", "permanent"),
        ("NotFoundException", "Configuration set does not exist", "permanent"),
        ("BadRequestException", "Illegal address", "permanent"),
        ("InternalFailure", "oops", "transient"),
        ("ServiceUnavailable", "", "transient"),
    ],
)
def test_classification(code: str, message: str, kind: str) -> None:
    assert classify_ses_error(code, message) == kind


def test_permanent_codes_are_stable() -> None:
    assert permanent_code("MessageRejected") == "ses_rejected"
    assert permanent_code("MailFromDomainNotVerifiedException") == "ses_sender_not_verified"
    assert permanent_code("BadRequestException") == "ses_bad_request"
