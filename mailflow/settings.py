"""Configuration, read once from the environment at start and passed down (no globals).

Names are part of the operator contract: Terraform, docker compose and the README use
them. `MAILFLOW_DOMAINS` and `MAILFLOW_APPS` accept a comma list or JSON, because the
comma form is what people type and the JSON form is what Terraform's `jsonencode` emits.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mailflow.envlist import split_list
from mailflow.errors import ConfigurationError
from mailflow.feedback.config import FeedbackSettings
from mailflow.inbound.config import InboundSettings
from mailflow.outbound.config import OutboundSettings

APP_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
ConsumerName = Literal["inbound", "outbound", "events"]


class AppConfig(BaseModel):
    """One application served by mailflow; adding one is configuration, never code."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    aliases: tuple[str, ...] = Field(
        default=(),
        description="Extra local parts (or full addresses) on our domains routed to this app.",
    )
    allowed_senders: tuple[str, ...] = Field(
        default=(),
        validation_alias=AliasChoices("allowed_senders", "allowedSenders"),
        description="Extra From addresses the app may send as, beyond _app@ and its aliases.",
    )
    attachment_sources: tuple[str, ...] = Field(
        default=(),
        validation_alias=AliasChoices("attachment_sources", "attachmentSources"),
        description="'bucket' or 'bucket/prefix' entries outbound attachments may be read from,"
        " in addition to the app's own prefixes in the attachments bucket.",
    )
    queue: str | None = Field(default=None, description="Queue name or URL; default prefix+app.")
    producers: tuple[str, ...] = Field(
        default=(),
        description="The AWS principals that write this app's outbound messages, as SQS"
        " reports them in a message's SenderId: IAM role unique ids (AROA...; any session"
        " of the role), IAM user ids (AIDA...) or account ids. A message claiming this app"
        " from anyone else is refused (MAILFLOW_OUTBOUND__WRITER_IDENTITY=enforce).",
    )

    @field_validator("aliases", "allowed_senders")
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in values if v.strip())


class Settings(BaseSettings):
    """Everything the worker needs; see the README's configuration reference."""

    model_config = SettingsConfigDict(
        env_prefix="MAILFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    domains: Annotated[tuple[str, ...], NoDecode]
    apps: Annotated[dict[str, AppConfig], NoDecode] = Field(default_factory=dict)
    app_queue_prefix: str = "mailflow-"
    inbound_queue: str = "mailflow-inbound"
    outbound_queue: str = "mailflow-outbound"
    default_queue: str = "mailflow-default"
    dlq: str = "mailflow-dlq"
    raw_bucket: str = "mailflow-raw"
    attachments_bucket: str = "mailflow-attachments"
    idempotency_table: str = "mailflow-idempotency"

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "MAILFLOW_AWS_REGION"),
    )
    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL", "MAILFLOW_AWS_ENDPOINT_URL")
    )
    # Service-specific endpoints, as the AWS SDKs read them (they win over the one above):
    # e.g. SES v2 from moto beside a LocalStack that has none.
    aws_endpoint_url_sqs: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL_SQS")
    aws_endpoint_url_s3: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL_S3")
    aws_endpoint_url_sesv2: str | None = Field(
        default=None, validation_alias="AWS_ENDPOINT_URL_SESV2"
    )
    aws_endpoint_url_dynamodb: str | None = Field(
        default=None, validation_alias="AWS_ENDPOINT_URL_DYNAMODB"
    )

    # SES's sending events (configuration set -> SNS -> this queue); unset: not read.
    ses_events_queue: str | None = None
    consumers: Annotated[tuple[ConsumerName, ...], NoDecode] = ("inbound", "outbound", "events")
    concurrency: int = Field(default=10, ge=1, le=100)
    wait_time_seconds: int = Field(default=20, ge=0, le=20)
    visibility_timeout_seconds: int = Field(default=60, ge=10, le=43200)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: int = Field(default=900, ge=1, le=43200)
    # An AWS outage (5xx, no answer, throttling) holds a message without spending its
    # attempts for this long; then its attempts count again, toward the DLQ.
    outage_patience_seconds: int = Field(default=6 * 3600, ge=0)
    shutdown_grace_seconds: float = Field(default=45.0, ge=0)
    max_in_flight_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    queue_depth_interval_seconds: float = Field(default=30.0, gt=0)
    # /readyz turns 503 once an AWS service has failed, without one answer, this long.
    unready_after_seconds: float = Field(default=60.0, gt=0)
    check_resources: bool = True

    http_host: str = "0.0.0.0"  # noqa: S104  (a container must listen on all interfaces)
    http_port: int = Field(default=8080, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    log_unredacted: bool = False

    inbound: InboundSettings = Field(default_factory=InboundSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)

    @field_validator("domains", mode="before")
    @classmethod
    def _parse_domains(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(d.strip().lower().rstrip(".") for d in value if d.strip())
        if not domains:
            raise ValueError("at least one domain is required")
        for domain in domains:
            if "@" in domain or "." not in domain or " " in domain:
                raise ValueError(f"{domain!r} is not a domain name")
        return domains

    @field_validator("consumers", mode="before")
    @classmethod
    def _parse_consumers(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("apps", mode="before")
    @classmethod
    def _parse_apps(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("{") else split_list(value)
        if isinstance(value, list):
            return {str(name).strip().lower(): {} for name in value}
        if isinstance(value, dict):
            return {str(name).strip().lower(): cfg or {} for name, cfg in value.items()}
        return value

    @field_validator("apps")
    @classmethod
    def _check_app_names(cls, value: dict[str, AppConfig]) -> dict[str, AppConfig]:
        for name in value:
            if not re.match(APP_NAME_PATTERN, name):
                raise ValueError(
                    f"app name {name!r} must be lowercase letters, digits and '-' (max 63)"
                )
        return value

    @model_validator(mode="after")
    def _check_settle_outlasts_visibility(self) -> Settings:
        """An event held by a worker that died comes back after the visibility timeout;
        an attempt may be judged unsent only once its events would have come back."""
        settle = self.outcome_settle_seconds
        if self.ses_events_queue and settle <= self.visibility_timeout_seconds:
            raise ValueError(
                f"MAILFLOW_OUTBOUND__OUTCOME_SETTLE_SECONDS ({settle:g}) must exceed"
                f" MAILFLOW_VISIBILITY_TIMEOUT_SECONDS ({self.visibility_timeout_seconds})"
            )
        return self

    @model_validator(mode="after")
    def _check_aliases_unique(self) -> Settings:
        seen: dict[str, str] = {}
        for app, cfg in self.apps.items():
            for alias in cfg.aliases:
                if alias in seen and seen[alias] != app:
                    raise ValueError(f"alias {alias!r} is claimed by both {seen[alias]} and {app}")
                seen[alias] = app
        return self

    @property
    def outcome_settle_seconds(self) -> float:
        """`MAILFLOW_OUTBOUND__OUTCOME_SETTLE_SECONDS`, or a default that outlasts the
        visibility timeout whatever it is set to."""
        configured = self.outbound.outcome_settle_seconds
        return configured or max(120.0, 2.0 * self.visibility_timeout_seconds)

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint of one service: its own variable first, then AWS_ENDPOINT_URL."""
        specific: str | None = getattr(self, f"aws_endpoint_url_{service}", None)
        return specific or self.aws_endpoint_url

    def app_queue(self, app: str) -> str:
        """Queue name or URL for an app's inbound mail and status events."""
        configured = self.apps[app].queue if app in self.apps else None
        return configured or f"{self.app_queue_prefix}{app}"

    def all_queues(self) -> dict[str, str]:
        """Every queue the worker touches, keyed by role (for checks, provisioning, metrics)."""
        queues = {
            "inbound": self.inbound_queue,
            "outbound": self.outbound_queue,
            "default": self.default_queue,
            "dlq": self.dlq,
        }
        if self.ses_events_queue:
            queues["ses_events"] = self.ses_events_queue
        for app in self.apps:
            queues[f"app:{app}"] = self.app_queue(app)
        return queues


def _env_name(loc: tuple[int | str, ...]) -> str:
    head = str(loc[0]) if loc else "?"
    if head.isupper():  # an alias such as AWS_REGION is already the variable's name
        return head
    name = "MAILFLOW_" + head.upper()
    if head in {"inbound", "outbound"} and len(loc) > 1:
        name += "__" + str(loc[1]).upper()
    return name


def known_variables() -> set[str]:
    """Every MAILFLOW_ environment variable mailflow reads."""
    names = {f"MAILFLOW_{name.upper()}" for name in Settings.model_fields}
    names -= {"MAILFLOW_INBOUND", "MAILFLOW_OUTBOUND"}
    for section, model in (("INBOUND", InboundSettings), ("OUTBOUND", OutboundSettings)):
        names |= {f"MAILFLOW_{section}__{name.upper()}" for name in model.model_fields}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(a) for a in alias.choices if str(a).startswith("MAILFLOW_")}
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`MAILFLOW_CONCURENCY: unknown (did you mean MAILFLOW_CONCURRENCY?)` for each typo.

    A misspelt variable would otherwise be ignored silently and its default used.
    """
    known = known_variables()
    problems = []
    nested = ("MAILFLOW_INBOUND__", "MAILFLOW_OUTBOUND__")  # pydantic names those itself
    for name in sorted(
        n for n in environ if n.startswith("MAILFLOW_") and not n.startswith(nested)
    ):
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name}: not a mailflow setting{hint}")
    return problems


def _problem(err: Any) -> str:
    """One line per pydantic error, naming the variable; unknown keys get a suggestion."""
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden" and loc:
        field = str(loc[-1])
        where = _env_name(loc)
        if loc[0] == "apps" and len(loc) == 3:
            candidates = AppConfig.model_fields
            where = f"MAILFLOW_APPS: app {loc[1]!r}"
        else:
            section = InboundSettings if loc[0] == "inbound" else OutboundSettings
            candidates = section.model_fields
        close = difflib.get_close_matches(_snake(field), candidates, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: unknown field {field!r}{hint}"
    return f"{_env_name(loc)}: {err['msg']}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, turning pydantic's report into one clear message.

    The message names the environment variable, because that is what an operator edits.
    An unknown MAILFLOW_ variable is an error too (with the closest real name).
    """
    problems = unknown_variables(os.environ)
    settings: Settings | None = None
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems += [_problem(err) for err in exc.errors()]
    except json.JSONDecodeError as exc:
        problems.append(f"a JSON value does not parse: {exc}")
    if problems or settings is None:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    return settings
