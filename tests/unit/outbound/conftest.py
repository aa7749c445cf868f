"""Settings and message builders for the pure outbound core (no network)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from mailflow.settings import Settings, load_settings

# The two examples of the original README, verbatim apart from the domain.
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


@pytest.fixture
def unit_settings() -> Settings:
    return load_settings(
        domains=["example.com", "bücher.de"],
        apps={
            "app1": {
                "aliases": ["support", "help@example.com"],
                "allowedSenders": ["ops@partner.net"],
                "attachmentSources": ["shared-bucket/app1-files", "whole-bucket"],
            },
            "app2": {},
        },
        aws_endpoint_url="http://127.0.0.1:1",
    )


@pytest.fixture
def make_body() -> Callable[..., str]:
    """`make_body(**{"email.subject": "x"})` -> README example with dotted-path overrides."""

    def make(base: dict[str, Any] | None = None, **changes: Any) -> str:
        data = copy.deepcopy(base or README_CAMEL)
        for path, value in changes.items():
            target = data
            *parents, leaf = path.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            if value is _DELETE:
                target.pop(leaf, None)
            else:
                target[leaf] = value
        return json.dumps(data)

    return make


class _Delete:
    pass


_DELETE = _Delete()


@pytest.fixture
def delete() -> _Delete:
    return _DELETE
