"""What SES later learns about a sent email, told to the app that sent it.

SES publishes delivery, bounce, complaint, delay, reject, open and click events through
the configuration set; mailflow's events consumer finds the app and `correlationId` of the
email each is about and puts one of these on the app's queue (the queue its inbound mail
and its `email.sent`/`email.failed` events arrive on). SES delivers its events at least
once, so an event may repeat: it carries the same `eventId` then.

Field names are SES's own where SES has one (`bounceType`, `bounceSubType`,
`diagnosticCode`, `complaintFeedbackType`, `delayType`, `expirationTime`), so an app that
already knows SES's documentation reads them without a glossary.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mailflow.contracts.base import Instant, WireModel

_EVENT_ID = (
    "Deterministic id of this event: a repeat (SES and SQS deliver at least once) carries"
    " the same eventId, so apps deduplicate on it."
)


class FeedbackEvent(WireModel):
    """Fields every feedback event has."""

    version: Literal["1.0"] = "1.0"
    event_id: str = Field(description=_EVENT_ID)
    correlation_id: str = Field(description="The app's id of the email this is about.")
    source: str = Field(description="The app that sent the email.")
    ses_message_id: str = Field(description="SES's id of the email (as in email.sent).")
    message_id: str | None = Field(
        default=None, description="The email's Message-ID header, when SES passed it on."
    )
    timestamp: Instant = Field(description="When SES saw it happen.")


class BouncedRecipient(WireModel):
    address: str
    action: str | None = Field(default=None, description="e.g. failed (from the DSN).")
    status: str | None = Field(default=None, description="SMTP enhanced status, e.g. 5.1.1.")
    diagnostic_code: str | None = Field(
        default=None, description="The receiving server's words, e.g. 'smtp; 550 5.1.1 ...'."
    )


class EmailBouncedEvent(FeedbackEvent):
    """A recipient's server (or SES) refused the email: it did not reach them."""

    type: Literal["email.bounced"] = "email.bounced"
    bounce_type: Literal["Permanent", "Transient", "Undetermined"] = Field(
        description="Permanent: do not send to these addresses again (mailflow suppresses"
        " them); Transient: a later email may get through; Undetermined: SES cannot tell."
    )
    bounce_sub_type: str = Field(description="SES's subtype, e.g. General, NoEmail, MailboxFull.")
    recipients: list[BouncedRecipient]
    suppressed: list[str] = Field(
        default_factory=list,
        description="Addresses this bounce put on mailflow's suppression list: mail to them"
        " is refused until an operator removes them.",
    )
    feedback_id: str | None = None


class EmailComplainedEvent(FeedbackEvent):
    """A recipient marked the email as spam (a feedback loop report reached SES)."""

    type: Literal["email.complained"] = "email.complained"
    recipients: list[str]
    complaint_feedback_type: str | None = Field(
        default=None, description="From the ISP's report when it sent one, e.g. abuse."
    )
    complaint_sub_type: str | None = None
    suppressed: list[str] = Field(
        default_factory=list, description="Addresses this complaint put on the suppression list."
    )
    feedback_id: str | None = None


class EmailDeliveredEvent(FeedbackEvent):
    """The recipients' server accepted the email (not proof that a person read it)."""

    type: Literal["email.delivered"] = "email.delivered"
    recipients: list[str]
    smtp_response: str | None = None
    processing_time_millis: int | None = None


class DelayedRecipient(WireModel):
    address: str
    status: str | None = None
    diagnostic_code: str | None = None


class EmailDelayedEvent(FeedbackEvent):
    """SES could not deliver yet and keeps trying until `expirationTime`."""

    type: Literal["email.delayed"] = "email.delayed"
    delay_type: str = Field(
        description="SES's reason, e.g. MailboxFull, TransientCommunicationFailure."
    )
    recipients: list[DelayedRecipient]
    expiration_time: Instant | None = Field(
        default=None, description="When SES stops trying (a bounce follows)."
    )


class EmailRejectedEvent(FeedbackEvent):
    """SES accepted the call but refused to send the email (e.g. a virus in it)."""

    type: Literal["email.rejected"] = "email.rejected"
    reason: str = Field(description="SES's reason, e.g. 'Bad content'.")


class EmailOpenedEvent(FeedbackEvent):
    """The recipient's client loaded the tracking image (only for emails that asked for
    tracking: `options.tracking`)."""

    type: Literal["email.opened"] = "email.opened"
    ip_address: str | None = None
    user_agent: str | None = None


class EmailClickedEvent(FeedbackEvent):
    """The recipient followed a tracked link (only for emails that asked for tracking)."""

    type: Literal["email.clicked"] = "email.clicked"
    link: str
    link_tags: dict[str, list[str]] = Field(default_factory=dict)
    ip_address: str | None = None
    user_agent: str | None = None


AppFeedback = (
    EmailBouncedEvent
    | EmailComplainedEvent
    | EmailDeliveredEvent
    | EmailDelayedEvent
    | EmailRejectedEvent
    | EmailOpenedEvent
    | EmailClickedEvent
)
