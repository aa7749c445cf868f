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


def events_watermark() -> str:
    """The latest send time of any SES event the worker has processed (events flow)."""
    return "ses-events#watermark"


def status_notice(event_id: str) -> str:
    """Notice: this status event is on its app's queue (not emitted again on a repeat)."""
    return f"notice#{event_id}"


def automated_message(message_id: str) -> str:
    """Marker: mailflow received this Message-ID as automated mail (auto-reply, bounce,
    bulk); an automatic reply to it would start a mail loop. Brackets and blanks are
    stripped, so `<id@host>` and `id@host` are one key."""
    return f"automated#{message_id.strip().strip('<>').strip()}"


def automated_sender(address: str) -> str:
    """Marker: mail from this address reached mailflow as automated mail (an auto-reply, a
    bounce, bulk): automatic mail to it counts toward the per-recipient loop limit."""
    return f"automated-sender#{address.strip().lower()}"


def send_token(token: str) -> str:
    """One send attempt, by its token: which app and correlation id it was for, and
    (once SES published an event for it) SES's message id. Lives as long as SES can send
    feedback (bounces, complaints) for the email."""
    return f"send#{token}"


def suppressed(address: str) -> str:
    """Suppression: mail to this address is refused (hard bounce, complaint, operator)."""
    return f"suppressed#{address.strip().lower()}"


def soft_bounces(address: str) -> str:
    """Counter: transient bounces of this address within the current window."""
    return f"softbounce#{address.strip().lower()}"


def loop_window(app: str, address: str, now: datetime) -> str:
    """Counter: one app's automatic emails to one address in one clock hour."""
    return f"loop#{app}#{now:%Y%m%d%H}#{address.strip().lower()}"


def senders_roster() -> str:
    """Roster: the worker tasks sending outbound mail now (they share the SES rate)."""
    return "roster#outbound-senders"


def reachability_probe() -> str:
    """Never written: the worker reads it to learn whether DynamoDB answers."""
    return "probe#reachability"


def sender_window(sender: str, now: datetime) -> str:
    """Counter: one sender's emails in one clock hour (the inbound rate limit)."""
    return f"ratelimit#{sender.lower()}#{now:%Y%m%d%H}"
