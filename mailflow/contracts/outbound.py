"""The outbound contract: what apps put on `mailflow-outbound`, and the events they get back.

Field names follow the original system's README: camelCase on the wire (`correlationId`),
snake_case accepted too (`correlation_id`, as in its quick-start). Unknown fields are
ignored so that apps written for a newer version do not break an older worker; a field of
the wrong type is a validation error, never silently coerced (no int -> str).

Deliberate leniencies (all documented in docs/outbound.md):
- an address may be given as an object `{"address", "name"}` or as a bare string;
- `to`, `cc`, `bcc` and `replyTo` accept one address or a list;
- `headers.references` accepts a list or one string of whitespace-separated ids.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    RootModel,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from mailflow.contracts import feedback
from mailflow.contracts.base import Instant, OneOrMany, WireModel


def _one_or_many(value: Any) -> Any:
    """Accept a single item where a list is expected (`"replyTo": {...}`)."""
    if value is None:
        return []
    if isinstance(value, str | dict):
        return [value]
    return value


class EmailAddress(WireModel):
    """A mailbox; `name` is the display name (any Unicode)."""

    address: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"address": value} if isinstance(value, str) else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = super().__get_pydantic_json_schema__(core_schema, handler)
        if handler.mode != "validation":
            return schema
        bare = {"type": "string", "minLength": 3, "maxLength": 320, "description": "An address."}
        return {"anyOf": [bare, schema]}


Addresses = Annotated[list[EmailAddress], BeforeValidator(_one_or_many), OneOrMany()]


class EmailBody(WireModel):
    """At least one of `text` and `html` (checked by the validator with a clear message)."""

    text: str | None = None
    html: str | None = None


class AttachmentRef(WireModel):
    """An attachment the worker reads from S3 (never inline: SQS bodies are small)."""

    filename: str = Field(min_length=1, max_length=255)
    content_type: str | None = Field(
        default=None, description="MIME type; guessed from the filename when absent."
    )
    s3_bucket: str = Field(min_length=3, max_length=63)
    s3_key: str = Field(min_length=1, max_length=1024)


def _split_references(value: Any) -> Any:
    """One string of ids, separated by blanks or commas, is a list too."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return value


class ThreadHeaders(WireModel):
    """Threading headers; ids may be given with or without angle brackets."""

    in_reply_to: str | None = Field(
        default=None,
        alias="in-reply-to",
        validation_alias=AliasChoices("in-reply-to", "inReplyTo", "in_reply_to"),
    )
    references: Annotated[list[str], BeforeValidator(_split_references), OneOrMany()] = Field(
        default_factory=list
    )


class OutboundEmail(WireModel):
    """The email itself; `from` must be one of the sending app's own addresses."""

    from_: EmailAddress = Field(alias="from", validation_alias=AliasChoices("from", "from_"))
    to: Addresses = Field(default_factory=list)
    cc: Addresses = Field(default_factory=list)
    bcc: Addresses = Field(default_factory=list)
    reply_to: Addresses = Field(default_factory=list)
    subject: str = Field(max_length=998)
    body: EmailBody
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=100)
    headers: ThreadHeaders = Field(default_factory=ThreadHeaders)


class SendOptions(WireModel):
    """Per-message sending options."""

    priority: Literal["high", "normal", "low"] | None = Field(
        default=None, description="Sets X-Priority/Importance; 'normal' adds nothing."
    )
    scheduled_send_time: Instant | None = Field(
        default=None,
        description="Send at (or after) this instant; a time without zone is UTC;"
        " at most 14 days ahead.",
    )
    auto_submitted: Literal["auto-generated", "auto-replied", "no"] | None = Field(
        default=None,
        description="RFC 3834 Auto-Submitted header; default from settings (auto-generated)."
        " 'no' says a person wrote it: only then may it answer mail mailflow received as"
        " automated (auto-replies, bounces, bulk), and the per-recipient loop limit does"
        " not count it.",
    )
    tracking: bool = Field(
        default=False,
        description="Track opens and clicks (SES rewrites links, adds an image): the app"
        " gets email.opened and email.clicked. Needs a tracking configuration set"
        " (MAILFLOW_OUTBOUND__TRACKING_CONFIGURATION_SET); without one it is sent untracked.",
    )

    @field_validator("priority", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class OutboundMessage(WireModel):
    """One email an app asks mailflow to send."""

    version: str = Field(default="1.0", pattern=r"^1(\.\d+)?$")
    correlation_id: str = Field(
        min_length=1,
        max_length=200,
        description="The app's id for this email; (source, correlationId) is sent at most"
        " once within 24 hours.",
    )
    timestamp: Instant | None = None
    source: str = Field(min_length=1, max_length=63, description="The sending app's name.")
    email: OutboundEmail
    options: SendOptions = Field(default_factory=SendOptions)


_EVENT_NAMESPACE = uuid.UUID("3f0d9a52-4a1e-4c8e-9a57-6d2b8f0c1e7a")
_EVENT_ID_DESCRIPTION = (
    "Deterministic id of this outcome: a repeat of the event (the worker cannot always"
    " know that the first one arrived) carries the same eventId, so apps deduplicate on it."
)


def event_id(event_type: str, *parts: str) -> str:
    """The same outcome always gets the same id (a UUID v5 over what identifies it)."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, "\x00".join((event_type, *parts))))


class SkippedRecipient(WireModel):
    """A recipient an email was not sent to, and why."""

    address: str
    reason: Literal["suppressed", "loop_suspected"]
    detail: str = Field(description="Why, e.g. 'permanent bounce (General): smtp; 550 ...'.")


class EmailSentEvent(WireModel):
    """Put on the app's queue once SES accepted the email."""

    version: Literal["1.0"] = "1.0"
    type: Literal["email.sent"] = "email.sent"
    event_id: str = Field(description=_EVENT_ID_DESCRIPTION)
    correlation_id: str
    source: str
    ses_message_id: str = Field(description="The id SES returned (its bounce/complaint key).")
    message_id: str = Field(description="The Message-ID header mailflow set, with brackets.")
    sent_at: Instant
    recipients: int = Field(description="Number of envelope recipients SES sent it to.")
    skipped: list[SkippedRecipient] | None = Field(
        default=None,
        description="Recipients it was not sent to (the others got it): suppressed"
        " addresses and addresses over the loop limit. Absent when there are none.",
    )


class EmailFailedEvent(WireModel):
    """Put on the app's queue when its email will not be sent (the DLQ has the details)."""

    version: Literal["1.0"] = "1.0"
    type: Literal["email.failed"] = "email.failed"
    event_id: str = Field(description=_EVENT_ID_DESCRIPTION)
    correlation_id: str | None = Field(
        default=None, description="Null when the message had none (or was not JSON)."
    )
    source: str
    error_code: str = Field(description="Stable code, e.g. sender_not_allowed.")
    reason: str
    failed_at: Instant
    retryable: bool = Field(
        default=False, description="True when retries of a transient error ran out."
    )


StatusEvent = (
    EmailSentEvent
    | EmailFailedEvent
    | feedback.EmailDeliveredEvent
    | feedback.EmailBouncedEvent
    | feedback.EmailComplainedEvent
    | feedback.EmailDelayedEvent
    | feedback.EmailRejectedEvent
    | feedback.EmailOpenedEvent
    | feedback.EmailClickedEvent
)


class OutboundStatusEvent(RootModel[Annotated[StatusEvent, Field(discriminator="type")]]):
    """Any status event; dispatch on `type`."""
