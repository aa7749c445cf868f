"""The two outbound examples of the original README (domains adapted to the test settings),
shared by the unit, integration and end-to-end tests."""

from __future__ import annotations

from typing import Any

README_CAMEL: dict[str, Any] = {
    "version": "1.0",
    "correlationId": "unique-id-123",
    "timestamp": "2025-10-31T12:34:56Z",
    "source": "app1",
    "email": {
        "from": {"address": "_app1@example.com", "name": "App1"},
        "to": [{"address": "recipient@example.net"}],
        "subject": "Response Email",
        "body": {"text": "Plain text response", "html": "<p>HTML response</p>"},
    },
}
README_QUICKSTART: dict[str, Any] = {
    "version": "1.0",
    "correlation_id": "test-1700000000",
    "timestamp": "2025-10-31T12:34:56Z",
    "source": "app1",
    "email": {
        "from": {"address": "_app1@example.com", "name": "App1"},
        "to": [{"address": "recipient@example.net"}],
        "subject": "Test Response",
        "body": {"text": "This is a test response from Mailflow"},
    },
}
