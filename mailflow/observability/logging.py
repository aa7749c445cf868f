"""Structured JSON logs with per-message context, personal data and credentials removed.

Context (direction, sqs_message_id, app, ...) is bound with structlog's contextvars so
it follows a message across awaits. Two things never reach a log line:

- personal data, unless `MAILFLOW_LOG_UNREDACTED=true`: an email address keeps only its
  domain, *wherever* it appears (a field, an error message, a traceback), and a subject
  keeps only its length. Error messages are free to name an address for the app's
  `email.failed` event and the failure record; the log line sees the domain only;
- credentials, whatever the level: the SDK's wire logs (botocore at DEBUG prints the
  `Authorization` header and the session token) are capped at INFO, and anything that
  looks like a signature, token or key is scrubbed from every line as a second line of
  defence.

Library logs (botocore, aiohttp, moto) go through the same processors, so every line
on stderr is one JSON object. Redaction works on characters, never bytes (the original
system crashed slicing a UTF-8 subject by bytes).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

TEXT_KEYS = frozenset({"subject"})
_EMAIL = re.compile(r"(?:\"[^\"\n]*\"|[^\s<>\"',;:@()\[\]]+)@([A-Za-z0-9.\-\u00a0-\uffff]+)")
_SECRET = re.compile(
    r"(?i)(authorization|x-amz-security-token|x-amz-signature|x-amz-credential|signature"
    r"|awsaccesskeyid|aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken"
    r"|credential)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",&;]+)"
)
# The SDK and HTTP libraries log whole requests at DEBUG: never below INFO.
_WIRE_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3transfer", "urllib3", "aiohttp")


def redact_address(text: str) -> str:
    """`alice@example.com` -> `***@example.com`: the domain is operational, the user is not."""
    return _EMAIL.sub(lambda m: f"***@{m.group(1)}", text)


def scrub_secrets(text: str) -> str:
    """`Authorization: AWS4-HMAC-SHA256 ...` -> `Authorization: <redacted>` (and kin)."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)


def _clean(value: Any, redact: bool) -> Any:
    if isinstance(value, str):
        value = scrub_secrets(value)
        return redact_address(value) if redact else value
    if isinstance(value, list | tuple):
        return [_clean(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v, redact) for k, v in value.items()}
    return value


def redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Personal data out of every value (subjects by key, addresses anywhere)."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in TEXT_KEYS and isinstance(value, str):
            event_dict[key] = f"<redacted {len(value)} chars>"
        else:
            event_dict[key] = _clean(value, redact=True)
    return event_dict


def scrub_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Credentials out of every value, even with redaction off."""
    for key in list(event_dict):
        event_dict[key] = _clean(event_dict[key], redact=False)
    return event_dict


def _processors(unredacted: bool) -> list[Any]:
    """The chain after an event is made: exceptions rendered first, so they are cleaned."""
    chain: list[Any] = [structlog.processors.format_exc_info]
    chain.append(scrub_processor if unredacted else redact_processor)
    return chain


def configure_logging(level: str = "INFO", fmt: str = "json", unredacted: bool = False) -> None:
    """Configure structlog and the stdlib root logger once per process (the CLI calls this)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    stamp: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *stamp,
            *_processors(unredacted),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamp],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_processors(unredacted),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    # Library chatter only when debugging, and then never their wire dumps.
    root.setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if level == "DEBUG" else logging.WARNING)
