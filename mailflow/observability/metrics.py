"""Prometheus metrics of the consumer engine (pipeline-specific ones live beside them).

Label values are bounded: `direction` is inbound|outbound|events, `outcome` is a fixed set,
`reason` is an error code (a small fixed vocabulary), `app` is a configured app name,
`default` or `-`, and `queue` is a configured queue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_RECEIVED = Counter(
    "mailflow_messages_received_total",
    "SQS messages received by a consumer.",
    ["direction"],
)
MESSAGES_HANDLED = Counter(
    "mailflow_messages_handled_total",
    "Messages whose handling finished, by outcome (success, retry, deferred, failed).",
    ["direction", "app", "outcome"],
)
MESSAGES_FAILED = Counter(
    "mailflow_messages_failed_total",
    "Handling attempts that raised, by error code (retried or not).",
    ["direction", "reason"],
)
HANDLING_SECONDS = Histogram(
    "mailflow_handling_seconds",
    "Time from receipt to the message's fate being settled.",
    ["direction", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RETRIES = Counter(
    "mailflow_retries_total",
    "Messages returned to their queue with a backoff for another attempt.",
    ["direction"],
)
DLQ_RECORDS = Counter(
    "mailflow_dlq_records_total",
    "Structured failure records written to MAILFLOW_DLQ.",
    ["direction", "reason"],
)
IN_FLIGHT = Gauge(
    "mailflow_in_flight",
    "Messages currently being handled.",
    ["direction"],
)
RECEIVE_ERRORS = Counter(
    "mailflow_receive_errors_total",
    "Failed ReceiveMessage calls (the consumer backs off and keeps polling).",
    ["direction"],
)
QUEUE_DEPTH = Gauge(
    "mailflow_queue_depth",
    "Approximate messages in each queue the worker uses, polled from SQS.",
    ["queue", "state"],
)
IN_FLIGHT_BYTES = Gauge(
    "mailflow_in_flight_bytes",
    "Email bytes this process holds now, counted against MAILFLOW_MAX_IN_FLIGHT_BYTES.",
)
BUDGET_WAITS = Counter(
    "mailflow_budget_waits_total",
    "Times a message waited for room in MAILFLOW_MAX_IN_FLIGHT_BYTES.",
)
DEPENDENCY_FAILURES = Gauge(
    "mailflow_dependency_consecutive_failures",
    "Calls to an AWS service that failed (no answer or 5xx) since its last answer.",
    ["service"],
)
DEPENDENCY_UP = Gauge(
    "mailflow_dependency_up",
    "0 while a service has failed for longer than MAILFLOW_UNREADY_AFTER_SECONDS, else 1.",
    ["service"],
)
OLDEST_IN_FLIGHT = Gauge(
    "mailflow_oldest_in_flight_seconds",
    "Age of the oldest message being handled now (0 when none): a stuck handler shows.",
    ["direction"],
)
