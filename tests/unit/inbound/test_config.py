"""Inbound settings from the environment."""

from __future__ import annotations

import pytest

from mailflow.errors import ConfigurationError
from mailflow.settings import load_settings


def test_defaults_are_the_safe_ones() -> None:
    inbound = load_settings(domains=["example.com"]).inbound
    assert inbound.max_email_bytes == 40 * 1024 * 1024
    assert inbound.max_attachment_bytes == 35 * 1024 * 1024
    assert "exe" in inbound.blocked_extensions
    assert "application/x-msdownload" in inbound.blocked_content_types
    assert inbound.reject_virus
    assert not inbound.reject_spam
    assert inbound.rate_limit_per_hour == 0
    assert inbound.unknown_app == "default"
    assert inbound.allowed_sender_domains == ()


def test_lists_accept_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILFLOW_DOMAINS", "example.com")
    monkeypatch.setenv("MAILFLOW_INBOUND__BLOCKED_EXTENSIONS", "EXE, .scr")
    monkeypatch.setenv("MAILFLOW_INBOUND__ALLOWED_SENDER_DOMAINS", '["Partner.test"]')
    monkeypatch.setenv("MAILFLOW_INBOUND__UNKNOWN_APP", "reject")
    monkeypatch.setenv("MAILFLOW_INBOUND__RATE_LIMIT_PER_HOUR", "30")
    inbound = load_settings().inbound
    assert inbound.blocked_extensions == ("exe", "scr")
    assert inbound.allowed_sender_domains == ("partner.test",)
    assert inbound.unknown_app == "reject"
    assert inbound.rate_limit_per_hour == 30


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILFLOW_DOMAINS", "example.com")
    monkeypatch.setenv("MAILFLOW_INBOUND__PRESIGNED_URL_TTL_SECONDS", "99999999")
    with pytest.raises(ConfigurationError, match="MAILFLOW_INBOUND__PRESIGNED_URL_TTL_SECONDS"):
        load_settings()
