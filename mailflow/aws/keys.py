"""The key scheme of the one DynamoDB table: every item kind, named in one place.

Every key starts with its kind, so kinds never collide and a scan by prefix shows one
kind. App names cannot contain `#`; SES message ids and correlation ids come last, so
whatever they contain cannot make one kind's key look like another's.
"""

from __future__ import annotations

from datetime import datetime

KEY_ATTRIBUTE = "pk"  # the table's hash key (S)
TTL_ATTRIBUTE = "expiresAt"  # the table's TTL attribute (N, epoch seconds)


def inbound_delivery(ses_message_id: str, route: str) -> str:
    """Claim: one email delivered once to one app (or the default queue)."""
    return f"inbound#{ses_message_id}#{route}"


def outbound_email(app: str, correlation_id: str) -> str:
    """Claim: one app's email, sent at most once per correlation id."""
    return f"outbound#{app}#{correlation_id}"


def send_marker(app: str, correlation_id: str) -> str:
    """Marker: a SendEmail call for this email started (its outcome may be unknown)."""
    return f"outbound-send#{app}#{correlation_id}"


def send_evidence(token: str) -> str:
    """Evidence: SES published an event for the send attempt whose token this is."""
    return f"ses-evidence#{token}"


def events_watermark() -> str:
    """The latest send time of any SES event the worker has processed (events flow)."""
    return "ses-events#watermark"


def status_notice(event_id: str) -> str:
    """Notice: this status event is on its app's queue (not emitted again on a repeat)."""
    return f"notice#{event_id}"


def senders_roster() -> str:
    """Roster: the worker tasks sending outbound mail now (they share the SES rate)."""
    return "roster#outbound-senders"


def reachability_probe() -> str:
    """Never written: the worker reads it to learn whether DynamoDB answers."""
    return "probe#reachability"


def sender_window(sender: str, now: datetime) -> str:
    """Counter: one sender's emails in one clock hour (the inbound rate limit)."""
    return f"ratelimit#{sender.lower()}#{now:%Y%m%d%H}"
