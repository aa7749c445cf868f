"""Settings: the operator contract's parsing and its error messages."""

from __future__ import annotations

import pytest

from mailflow.errors import ConfigurationError
from mailflow.settings import load_settings


def test_comma_and_json_lists_are_equivalent() -> None:
    a = load_settings(domains="Example.com, example.org.", apps="App1, app2")
    b = load_settings(domains='["example.com","example.org"]', apps='["app1","app2"]')
    assert a.domains == b.domains == ("example.com", "example.org")
    assert list(a.apps) == list(b.apps) == ["app1", "app2"]


def test_apps_as_json_object_with_aliases() -> None:
    s = load_settings(
        domains="example.com",
        apps='{"app1": {"aliases": ["Support"], "allowedSenders": ["noreply@example.com"]}}',
    )
    assert s.apps["app1"].aliases == ("support",)
    assert s.apps["app1"].allowed_senders == ("noreply@example.com",)
    assert s.app_queue("app1") == "mailflow-app1"


def test_app_queue_prefix_and_override() -> None:
    s = load_settings(
        domains="example.com",
        apps={"a": {}, "b": {"queue": "https://sqs.eu-west-1.amazonaws.com/1/custom"}},
        app_queue_prefix="mf-prod-",
    )
    assert s.app_queue("a") == "mf-prod-a"
    assert s.app_queue("b").endswith("/custom")
    assert set(s.all_queues()) == {"inbound", "outbound", "default", "dlq", "app:a", "app:b"}


def test_queue_urls_of_an_emulator_are_accepted() -> None:
    s = load_settings(domains="example.com", inbound_queue="http://localhost:4566/000/in")
    assert s.inbound_queue == "http://localhost:4566/000/in"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"domains": ""}, "MAILFLOW_DOMAINS"),
        ({"domains": "not a domain"}, "MAILFLOW_DOMAINS"),
        ({"domains": "a.com", "apps": "Bad_Name"}, "MAILFLOW_APPS"),
        ({"domains": "a.com", "concurrency": 0}, "MAILFLOW_CONCURRENCY"),
        ({"domains": "a.com", "consumers": "inbound,sideways"}, "MAILFLOW_CONSUMERS"),
        (
            {"domains": "a.com", "inbound": {"max_email_bytes": "x"}},
            "MAILFLOW_INBOUND__MAX_EMAIL_BYTES",
        ),
    ],
)
def test_errors_name_the_environment_variable(overrides: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(**overrides)


def test_an_alias_claimed_by_two_apps_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="support"):
        load_settings(
            domains="a.com", apps={"a": {"aliases": ["support"]}, "b": {"aliases": ["support"]}}
        )


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILFLOW_DOMAINS", "env.example")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("MAILFLOW_INBOUND__MAX_EMAIL_BYTES", "1000")
    s = load_settings()
    assert s.domains == ("env.example",)
    assert s.aws_region == "eu-west-1"
    assert s.aws_endpoint_url == "http://127.0.0.1:4566"
    assert s.inbound.max_email_bytes == 1000


def test_a_misspelt_variable_is_an_error_naming_the_closest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAILFLOW_CONCURENCY", "3")
    with pytest.raises(ConfigurationError) as info:
        load_settings(domains="a.com")
    assert (
        "MAILFLOW_CONCURENCY: not a mailflow setting (did you mean MAILFLOW_CONCURRENCY?)"
        in str(info.value)
    )


def test_a_misspelt_nested_variable_names_the_closest_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAILFLOW_INBOUND__MAX_EMAIL_BYTE", "5")
    with pytest.raises(ConfigurationError) as info:
        load_settings(domains="a.com")
    message = str(info.value)
    assert "MAILFLOW_INBOUND__MAX_EMAIL_BYTE: unknown field" in message
    assert "did you mean 'max_email_bytes'?" in message
    assert message.count("MAX_EMAIL_BYTE") == 1  # said once, not twice


def test_an_unknown_app_field_names_the_app_and_the_closest_field() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(domains="a.com", apps='{"app1": {"alias": ["support"]}}')
    assert "MAILFLOW_APPS: app 'app1': unknown field 'alias' (did you mean 'aliases'?)" in str(
        info.value
    )


def test_every_real_variable_is_known() -> None:
    from mailflow.settings import known_variables, unknown_variables

    names = known_variables()
    assert {"MAILFLOW_CONCURRENCY", "MAILFLOW_INBOUND__MAX_EMAIL_BYTES"} <= names
    assert "MAILFLOW_OUTBOUND__WRITER_IDENTITY" in names
    assert "MAILFLOW_AWS_ENDPOINT_URL" in names
    assert unknown_variables(dict.fromkeys(names, "1")) == []


def test_settle_time_outlasts_the_visibility_timeout_by_default() -> None:
    s = load_settings(domains="example.com", ses_events_queue="ev")
    assert s.outcome_settle_seconds == 120
    long = load_settings(
        domains="example.com", ses_events_queue="ev", visibility_timeout_seconds=300
    )
    assert long.outcome_settle_seconds == 600
    assert "ses_events" in long.all_queues()


def test_a_settle_time_within_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(
            domains="example.com",
            ses_events_queue="ev",
            visibility_timeout_seconds=60,
            outbound={"outcome_settle_seconds": 30},
        )
    assert "MAILFLOW_OUTBOUND__OUTCOME_SETTLE_SECONDS (30) must exceed" in str(info.value)
