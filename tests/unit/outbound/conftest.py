"""Settings and message builders for the pure outbound core (no network)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from mailflow.settings import Settings, load_settings
from tests.readme_examples import README_CAMEL


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
