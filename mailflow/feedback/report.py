"""Pure: what one SES event means for the suppression list and for the app that sent it.

Suppression follows what SES itself and the services apps compare us with do:

- a Permanent bounce suppresses each bounced address (it does not exist, or will never
  take our mail; SES's own `OnAccountSuppressionList` bounce is one of these);
- a complaint suppresses each complaining address, unless the report says `not-spam`;
- a Transient or Undetermined bounce does not, but counts toward a threshold
  (`MAILFLOW_FEEDBACK__SOFT_BOUNCE_LIMIT` within the window): an address that keeps
  bouncing softly is treated as gone.

Open and click events reach the app only for emails that asked for tracking; SES's
Send and Rendering Failure events tell the app nothing new (it already has `email.sent`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mailflow.contracts.feedback import (
    AppFeedback,
    BouncedRecipient,
    DelayedRecipient,
    EmailBouncedEvent,
    EmailClickedEvent,
    EmailComplainedEvent,
    EmailDelayedEvent,
    EmailDeliveredEvent,
    EmailOpenedEvent,
    EmailRejectedEvent,
)
from mailflow.contracts.outbound import event_id
from mailflow.feedback.event import SesEvent

SuppressionReason = Literal["bounce", "complaint", "soft_bounces", "operator"]


@dataclass(frozen=True)
class SentBy:
    """Whose email an event is about (what mailflow remembered at send time)."""

    app: str
    correlation_id: str
    tracking: bool = False


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: SuppressionReason
    detail: str


def bounce_type(event: SesEvent) -> str:
    value = event.detail.get("bounceType")
    return value if value in ("Permanent", "Transient") else "Undetermined"


def suppressions(event: SesEvent) -> list[Suppression]:
    """Addresses this event puts on the suppression list straight away."""
    if event.event_type == "Bounce" and bounce_type(event) == "Permanent":
        subtype = str(event.detail.get("bounceSubType", "General"))
        found = {
            r.address.lower(): Suppression(r.address, "bounce", _bounce_detail(subtype, r))
            for r in _bounced(event.detail)
        }
        return list(found.values())
    if event.event_type == "Complaint":
        feedback = event.detail.get("complaintFeedbackType")
        if feedback == "not-spam":
            return []
        detail = f"complaint ({feedback})" if isinstance(feedback, str) else "complaint"
        found = {a.lower(): Suppression(a, "complaint", detail) for a in _complained(event.detail)}
        return list(found.values())
    return []


def soft_bounced(event: SesEvent) -> list[str]:
    """Addresses that bounced softly (they count toward the soft-bounce threshold)."""
    if event.event_type == "Bounce" and bounce_type(event) != "Permanent":
        return list(dict.fromkeys(r.address for r in _bounced(event.detail)))
    return []


def app_event(event: SesEvent, sent_by: SentBy, suppressed: list[str]) -> AppFeedback | None:
    """The event the app gets for this SES event, or None when it gets none."""
    build = _BUILDERS.get(event.event_type)
    if build is None:
        return None
    if event.event_type in ("Open", "Click") and not sent_by.tracking:
        return None
    detail = event.detail
    common: dict[str, Any] = {
        "correlation_id": sent_by.correlation_id,
        "source": sent_by.app,
        "ses_message_id": event.ses_message_id,
        "message_id": event.message_id,
        "timestamp": _instant(detail.get("timestamp"), event.sent_at),
    }
    built = build(detail, common, suppressed)
    identity = (
        built.type,
        sent_by.app,
        sent_by.correlation_id,
        event.ses_message_id,
        str(detail.get("feedbackId") or detail.get("timestamp") or ""),
        ",".join(sorted(_recipients_of(built))),
    )
    return built.model_copy(update={"event_id": event_id(*identity)})


def _bounced_event(
    detail: dict[str, Any], common: dict[str, Any], suppressed: list[str]
) -> EmailBouncedEvent:
    kind = detail.get("bounceType")
    return EmailBouncedEvent(
        event_id="",
        bounce_type=kind if kind in ("Permanent", "Transient") else "Undetermined",
        bounce_sub_type=str(detail.get("bounceSubType", "")),
        recipients=_bounced(detail),
        suppressed=suppressed,
        feedback_id=_text(detail.get("feedbackId")),
        **common,
    )


def _complained_event(
    detail: dict[str, Any], common: dict[str, Any], suppressed: list[str]
) -> EmailComplainedEvent:
    return EmailComplainedEvent(
        event_id="",
        recipients=_complained(detail),
        complaint_feedback_type=_text(detail.get("complaintFeedbackType")),
        complaint_sub_type=_text(detail.get("complaintSubType")),
        suppressed=suppressed,
        feedback_id=_text(detail.get("feedbackId")),
        **common,
    )


def _delivered_event(
    detail: dict[str, Any], common: dict[str, Any], _: list[str]
) -> EmailDeliveredEvent:
    millis = detail.get("processingTimeMillis")
    return EmailDeliveredEvent(
        event_id="",
        recipients=[str(r) for r in detail.get("recipients") or [] if isinstance(r, str)],
        smtp_response=_text(detail.get("smtpResponse")),
        processing_time_millis=millis if isinstance(millis, int) else None,
        **common,
    )


def _delayed_event(
    detail: dict[str, Any], common: dict[str, Any], _: list[str]
) -> EmailDelayedEvent:
    recipients = [
        DelayedRecipient(
            address=str(r["emailAddress"]),
            status=_text(r.get("status")),
            diagnostic_code=_text(r.get("diagnosticCode")),
        )
        for r in detail.get("delayedRecipients") or []
        if isinstance(r, dict) and isinstance(r.get("emailAddress"), str)
    ]
    return EmailDelayedEvent(
        event_id="",
        delay_type=str(detail.get("delayType", "")),
        recipients=recipients,
        expiration_time=_parsed(detail.get("expirationTime")),
        **common,
    )


def _rejected_event(
    detail: dict[str, Any], common: dict[str, Any], _: list[str]
) -> EmailRejectedEvent:
    return EmailRejectedEvent(event_id="", reason=str(detail.get("reason", "")), **common)


def _opened_event(detail: dict[str, Any], common: dict[str, Any], _: list[str]) -> EmailOpenedEvent:
    return EmailOpenedEvent(
        event_id="",
        ip_address=_text(detail.get("ipAddress")),
        user_agent=_text(detail.get("userAgent")),
        **common,
    )


def _clicked_event(
    detail: dict[str, Any], common: dict[str, Any], _: list[str]
) -> EmailClickedEvent:
    tags = detail.get("linkTags")
    return EmailClickedEvent(
        event_id="",
        link=str(detail.get("link", "")),
        link_tags=tags if isinstance(tags, dict) else {},
        ip_address=_text(detail.get("ipAddress")),
        user_agent=_text(detail.get("userAgent")),
        **common,
    )


_Builder = Callable[[dict[str, Any], dict[str, Any], list[str]], AppFeedback]
_BUILDERS: dict[str, _Builder] = {
    "Bounce": _bounced_event,
    "Complaint": _complained_event,
    "Delivery": _delivered_event,
    "DeliveryDelay": _delayed_event,
    "Reject": _rejected_event,
    "Open": _opened_event,
    "Click": _clicked_event,
}


def _bounced(detail: dict[str, Any]) -> list[BouncedRecipient]:
    return [
        BouncedRecipient(
            address=r["emailAddress"],
            action=_text(r.get("action")),
            status=_text(r.get("status")),
            diagnostic_code=_text(r.get("diagnosticCode")),
        )
        for r in detail.get("bouncedRecipients") or []
        if isinstance(r, dict) and isinstance(r.get("emailAddress"), str)
    ]


def _complained(detail: dict[str, Any]) -> list[str]:
    return [
        r["emailAddress"]
        for r in detail.get("complainedRecipients") or []
        if isinstance(r, dict) and isinstance(r.get("emailAddress"), str)
    ]


def _bounce_detail(subtype: str, recipient: BouncedRecipient) -> str:
    """One line, whatever the remote server wrote (its words reach operators' terminals
    and the app's `email.failed` reason)."""
    said = " ".join((recipient.diagnostic_code or recipient.status or "").split())
    return " ".join(f"permanent bounce ({subtype})".split()) + (f": {said[:500]}" if said else "")


def _recipients_of(event: AppFeedback) -> list[str]:
    recipients = getattr(event, "recipients", [])
    return [r if isinstance(r, str) else r.address for r in recipients]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parsed(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _instant(value: Any, fallback: float) -> datetime:
    """The detail's own time, else the mail's send time (SES always gives that)."""
    return _parsed(value) or datetime.fromtimestamp(fallback, tz=UTC)
