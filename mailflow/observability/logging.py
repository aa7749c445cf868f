"""Structured JSON logs with per-message context and personal data redacted.

Context (direction, queue, sqs_message_id, app, ...) is bound with structlog's
contextvars so it follows a message across awaits. Email addresses and subjects are
personal data: unless `MAILFLOW_LOG_UNREDACTED=true`, addresses keep only their domain
and subjects only their length. Redaction works on characters, never bytes (the
original system crashed slicing a UTF-8 subject by bytes).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

ADDRESS_KEYS = frozenset(
    {"from", "to", "cc", "bcc", "reply_to", "sender", "recipient", "recipients", "address"}
)
TEXT_KEYS = frozenset({"subject"})
_EMAIL = re.compile(r"[^\s<>\"',;:@]+@([A-Za-z0-9.-]+)")


def redact_address(text: str) -> str:
    """`alice@example.com` -> `***@example.com`: the domain is operational, the user is not."""
    return _EMAIL.sub(lambda m: f"***@{m.group(1)}", text)


def _redact_value(key: str, value: Any) -> Any:
    if key in TEXT_KEYS and isinstance(value, str):
        return f"<redacted {len(value)} chars>"
    if key in ADDRESS_KEYS:
        if isinstance(value, str):
            return redact_address(value)
        if isinstance(value, list | tuple):
            return [redact_address(str(v)) for v in value]
    return value


def redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json", unredacted: bool = False) -> None:
    """Configure structlog once per process (the CLI calls this before anything logs)."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not unredacted:
        processors.append(redact_processor)
    processors.append(structlog.processors.format_exc_info)
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # botocore and moto log through the stdlib; keep them quiet unless debugging.
    logging.basicConfig(level=logging.WARNING if level != "DEBUG" else logging.DEBUG)
