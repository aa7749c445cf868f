"""Prometheus metrics of the inbound pipeline (labels bounded: configured apps, fixed sets)."""

from __future__ import annotations

from prometheus_client import Counter

EMAILS = Counter(
    "mailflow_inbound_emails_total",
    "Received emails by outcome (delivered, ignored, rejected, test_event).",
    ["outcome"],
)
REJECTED = Counter(
    "mailflow_inbound_rejected_total",
    "Emails refused by policy, by reason code (virus_detected, rate_limited, ...).",
    ["reason"],
)
DELIVERIES = Counter(
    "mailflow_inbound_deliveries_total",
    "App messages by app (or _default) and outcome (sent, offloaded, duplicate).",
    ["app", "outcome"],
)
ATTACHMENTS = Counter(
    "mailflow_inbound_attachments_total",
    "Attachments by status (stored, blocked, failed).",
    ["status"],
)
CHARSET_FALLBACKS = Counter(
    "mailflow_inbound_charset_fallbacks_total",
    "Text parts whose declared charset did not decode their bytes.",
)
