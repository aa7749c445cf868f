"""Outbound-specific Prometheus metrics (the consumer engine's generic ones are elsewhere).

Labels are bounded: `app` is a configured app, `reason` a fixed vocabulary.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SEND_RATE_LIMIT = Gauge(
    "mailflow_ses_send_rate_limit",
    "Messages/s this task allows itself (share of SES MaxSendRate, capped).",
)
ACCOUNT_MAX_SEND_RATE = Gauge(
    "mailflow_ses_account_max_send_rate",
    "SES MaxSendRate of the account, from GetAccount (0 until known).",
)
QUOTA_REMAINING = Gauge(
    "mailflow_ses_quota_remaining",
    "SES Max24HourSend minus SentLast24Hours at the last GetAccount (-1 until known).",
)
QUOTA_EXHAUSTED = Gauge(
    "mailflow_ses_quota_exhausted",
    "1 while sending is paused because the daily quota is used up or sending is disabled.",
)
THROTTLED = Counter(
    "mailflow_ses_throttled_total",
    "SendEmail calls SES refused with a per-second throttle (retried later, not lost).",
)
SENDING_TASKS = Gauge(
    "mailflow_ses_sending_tasks",
    "Worker tasks sharing the SES send rate now (from the roster, or the pinned count).",
)
SENT = Counter("mailflow_outbound_sent_total", "Emails SES accepted.", ["app"])
DEFERRED = Counter(
    "mailflow_outbound_deferred_total",
    "Messages handed back to the queue for later, by reason.",
    ["reason"],  # scheduled | rate_limited | throttled | quota
)
DUPLICATES = Counter(
    "mailflow_outbound_duplicates_total",
    "Claims that found the (source, correlationId) already taken, by state.",
    ["state"],  # completed | in_progress | mismatch | send_started
)
WRITER_REFUSED = Counter(
    "mailflow_outbound_writer_refused_total",
    "Messages refused because their SQS writer is not a producer of the app they claim.",
    ["app"],
)
OUTCOME_UNKNOWN = Counter(
    "mailflow_outbound_send_outcome_unknown_total",
    "Sends whose outcome no SES event settled within the window; reported, never re-sent.",
)
AMBIGUOUS = Counter(
    "mailflow_outbound_send_ambiguous_total",
    "SendEmail calls whose answer did not prove the email unsent (5xx, no answer).",
)
CANARIES = Counter(
    "mailflow_outbound_canaries_total",
    "Emails sent to SES's mailbox simulator to move a quiet account's events forward.",
)
RESOLUTIONS = Counter(
    "mailflow_outbound_earlier_attempts_total",
    "Earlier attempts found cut off mid-send, by what SES's events settled them as.",
    ["verdict"],  # sent | not_sent | pending | unknown
)
GET_ACCOUNT_ERRORS = Counter(
    "mailflow_ses_get_account_errors_total",
    "Failed SES GetAccount refreshes (the last known or default rate stays in force).",
)
MESSAGE_BYTES = Histogram(
    "mailflow_outbound_message_bytes",
    "Size of composed MIME messages.",
    buckets=(10_000, 100_000, 1_000_000, 5_000_000, 10_000_000, 20_000_000, 40_000_000),
)
SEND_SECONDS = Histogram(
    "mailflow_outbound_ses_send_seconds",
    "Duration of SES SendEmail calls.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SKIPPED = Counter(
    "mailflow_outbound_recipients_skipped_total",
    "Recipients an email was not sent to, by app and reason (suppressed, loop_suspected).",
    ["app", "reason"],
)
