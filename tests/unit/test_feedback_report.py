"""What each SES event (as AWS documents them, tests/fixtures/ses-events) means for the
suppression list and for the app, in both delivery forms (SNS envelope and raw)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow.contracts.outbound import OutboundStatusEvent
from mailflow.feedback.event import SesEvent, parse_event
from mailflow.feedback.report import SentBy, app_event, soft_bounced, suppressions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ses-events"
SENT_BY = SentBy("app1", "order-42")
FORMS = ("raw", "sns")


def event(kind: str, form: str = "sns") -> SesEvent:
    return parse_event((FIXTURES / form / f"{kind}.json").read_text())


@pytest.mark.parametrize("form", FORMS)
def test_a_permanent_bounce_suppresses_each_bounced_address_with_the_servers_words(
    form: str,
) -> None:
    (suppression,) = suppressions(event("bounce-permanent-general", form))
    assert suppression.address == "bounce@simulator.amazonses.com"
    assert suppression.reason == "bounce"
    assert suppression.detail == "permanent bounce (General): smtp; 550 5.1.1 user unknown"
    assert soft_bounced(event("bounce-permanent-general", form)) == []


def test_ses_account_suppression_list_bounces_suppress_too() -> None:
    (suppression,) = suppressions(event("bounce-permanent-onaccountsuppressionlist"))
    assert "OnAccountSuppressionList" in suppression.detail


@pytest.mark.parametrize("kind", ["bounce-transient-mailboxfull", "bounce-undetermined"])
def test_soft_bounces_only_count(kind: str) -> None:
    assert suppressions(event(kind)) == []
    assert soft_bounced(event(kind))


@pytest.mark.parametrize("kind", ["complaint-abuse", "complaint-no-feedback-report"])
def test_a_complaint_suppresses_with_or_without_a_feedback_report(kind: str) -> None:
    found = suppressions(event(kind))
    assert [s.reason for s in found] == ["complaint"]


def test_a_not_spam_report_suppresses_nothing() -> None:
    not_spam = event("complaint-abuse")
    detail = {**not_spam.detail, "complaintFeedbackType": "not-spam"}
    assert suppressions(SesEvent(**{**not_spam.__dict__, "detail": detail})) == []


@pytest.mark.parametrize("kind", ["delivery", "delivery-delay", "reject", "send", "open"])
def test_other_events_suppress_nothing(kind: str) -> None:
    assert suppressions(event(kind)) == []
    assert soft_bounced(event(kind)) == []


EXPECTED_TYPES = {
    "delivery": "email.delivered",
    "bounce-permanent-general": "email.bounced",
    "bounce-transient-mailboxfull": "email.bounced",
    "bounce-undetermined": "email.bounced",
    "complaint-abuse": "email.complained",
    "complaint-no-feedback-report": "email.complained",
    "delivery-delay": "email.delayed",
    "reject": "email.rejected",
    "notification-bounce": "email.bounced",
    "notification-complaint": "email.complained",
}


@pytest.mark.parametrize(("kind", "expected"), sorted(EXPECTED_TYPES.items()))
def test_the_app_event_names_the_email_and_validates_against_the_contract(
    kind: str, expected: str
) -> None:
    ses = event(kind)
    told = app_event(ses, SENT_BY, [])
    assert told is not None
    wire = OutboundStatusEvent.model_validate_json(told.to_wire()).root
    assert wire.type == expected
    assert (wire.correlation_id, wire.source) == ("order-42", "app1")
    assert wire.ses_message_id == ses.ses_message_id
    assert wire.event_id


def test_a_bounce_event_carries_type_subtype_and_diagnostic_per_recipient() -> None:
    told = app_event(event("bounce-permanent-general"), SENT_BY, ["bounce@simulator.amazonses.com"])
    wire = told.model_dump(by_alias=True, mode="json") if told else {}
    assert (wire["bounceType"], wire["bounceSubType"]) == ("Permanent", "General")
    assert wire["recipients"] == [
        {
            "address": "bounce@simulator.amazonses.com",
            "action": "failed",
            "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
        }
    ]
    assert wire["suppressed"] == ["bounce@simulator.amazonses.com"]
    assert wire["timestamp"].startswith("2025-03-14T10:02:12")


def test_an_undetermined_bounce_without_a_dsn_still_names_its_recipient() -> None:
    told = app_event(event("bounce-undetermined"), SENT_BY, [])
    wire = told.model_dump(by_alias=True, mode="json", exclude_none=True) if told else {}
    assert wire["bounceType"] == "Undetermined"
    assert [r["address"] for r in wire["recipients"]]
    assert "diagnosticCode" not in wire["recipients"][0]


def test_a_delay_says_until_when_ses_keeps_trying() -> None:
    told = app_event(event("delivery-delay"), SENT_BY, [])
    wire = told.model_dump(by_alias=True, mode="json") if told else {}
    assert wire["delayType"]
    assert wire["expirationTime"]
    assert wire["recipients"][0]["address"]


@pytest.mark.parametrize("kind", ["open", "click"])
def test_opens_and_clicks_reach_only_apps_whose_email_asked_for_tracking(kind: str) -> None:
    assert app_event(event(kind), SENT_BY, []) is None
    told = app_event(event(kind), SentBy("app1", "order-42", tracking=True), [])
    assert told is not None
    assert told.type == f"email.{'opened' if kind == 'open' else 'clicked'}"


@pytest.mark.parametrize("kind", ["send", "rendering-failure", "subscription"])
def test_events_that_tell_the_app_nothing_new_are_not_forwarded(kind: str) -> None:
    assert app_event(event(kind), SENT_BY, []) is None


def test_the_same_event_in_either_form_has_one_event_id_and_another_event_another() -> None:
    ids = {form: app_event(event("bounce-permanent-general", form), SENT_BY, []) for form in FORMS}
    assert ids["raw"] is not None
    assert ids["sns"] is not None
    assert ids["raw"].event_id == ids["sns"].event_id
    other = app_event(event("bounce-transient-mailboxfull"), SENT_BY, [])
    assert other is not None
    assert other.event_id != ids["raw"].event_id


def test_a_hostile_diagnostic_becomes_one_bounded_line_in_the_suppression_detail() -> None:
    bounce = event("bounce-permanent-general")
    hostile = {
        "emailAddress": "x@example.net",
        "diagnosticCode": "550\r\n\tinjected\x0b" + "y" * 5000,
    }
    detail = {**bounce.detail, "bouncedRecipients": [hostile]}
    (suppression,) = suppressions(SesEvent(**{**bounce.__dict__, "detail": detail}))
    assert suppression.detail.startswith("permanent bounce (General): 550 injected y")
    assert not any(c in suppression.detail for c in "\r\n\t\x0b")
    assert len(suppression.detail) < 600
