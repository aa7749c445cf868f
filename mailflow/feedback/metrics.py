"""Feedback metrics: what SES says about sent mail, per app (who endangers the account)."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter(
    "mailflow_feedback_events_total",
    "SES events about mailflow's sent email, by the app that sent it ('_none': not ours).",
    ["app", "type"],
)
BOUNCES = Counter(
    "mailflow_feedback_bounces_total",
    "SES bounce events by app and bounce type (Permanent, Transient, Undetermined).",
    ["app", "bounce_type"],
)
SUPPRESSED = Counter(
    "mailflow_suppressions_total",
    "Addresses put on the suppression list, by reason (bounce, complaint, soft_bounces).",
    ["reason"],
)
