"""Shared helpers for the inbound unit tests (pure: no endpoint, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailflow.settings import Settings, load_settings

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "eml"


def corpus_bytes(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


@pytest.fixture
def pure_settings() -> Any:
    """Settings without an endpoint (unit tests never talk to one)."""

    def make(**inbound: Any) -> Settings:
        return load_settings(
            domains=["example.com", "example.org"],
            apps={"app1": {"aliases": ["support", "billing@example.org"]}, "app2": {}},
            inbound=inbound,
        )

    return make
