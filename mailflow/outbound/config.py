"""Outbound settings (env `MAILFLOW_OUTBOUND__<FIELD>`).

Every knob has a production default; the few that exist for tests (short scheduling
steps, a fixed fallback rate against an emulator without `GetAccount`) are ordinary
operational settings too, documented in docs/outbound.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from mailflow.envlist import split_list

SES_MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # SESv2 SendEmail raw content limit
SES_MAX_RECIPIENTS = 50  # SES limit on To + Cc + Bcc of one message


class OutboundSettings(BaseModel):
    """Limits, rate control and SES options for sent mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    configuration_set: str | None = Field(
        default=None, description="SES configuration set name passed on every send."
    )

    # --- who may write ---------------------------------------------------------------
    writer_identity: Literal["enforce", "off"] = Field(
        default="enforce",
        description="enforce: an outbound message is sent only when SQS's SenderId (the"
        " principal that wrote it) is one of the claimed app's `producers` or a trusted"
        " writer. off: `source` is believed as written (embedded and compose set-ups).",
    )
    trusted_writers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Principals that may write for any app: the worker's own task role"
        " (it re-sends deferred messages) and the operators' role that runs `redrive`.",
    )
    max_recipients: int = Field(default=SES_MAX_RECIPIENTS, ge=1, le=SES_MAX_RECIPIENTS)
    max_message_bytes: int = Field(
        default=SES_MAX_MESSAGE_BYTES,
        ge=1024,
        le=SES_MAX_MESSAGE_BYTES,
        description="Limit on the composed MIME message (attachments base64-encoded).",
    )

    # --- rate limiting -------------------------------------------------------------
    max_send_rate: float | None = Field(
        default=None,
        gt=0,
        description="Cap in messages/s for THIS task, whatever SES allows (None: no cap).",
    )
    send_rate_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Share of the account's SES MaxSendRate used by all tasks together.",
    )
    task_count: int | None = Field(
        default=None,
        ge=1,
        description="Pin the number of tasks sharing the account's send rate (each uses"
        " MaxSendRate * send_rate_fraction / task_count). Unset: the tasks sending now,"
        " counted through a roster in the DynamoDB table.",
    )
    roster_refresh_seconds: float = Field(
        default=15.0,
        ge=1,
        description="How often a task beats in the roster of sending tasks; a task silent"
        " for three periods no longer counts.",
    )
    default_send_rate: float = Field(
        default=1.0,
        gt=0,
        description="Account-wide rate assumed until (or when) SES GetAccount answers.",
    )
    rate_refresh_seconds: float = Field(default=300.0, ge=1)
    max_rate_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Longest a send waits for a rate-limiter token before deferring.",
    )
    quota_pause_seconds: int = Field(
        default=900,
        ge=1,
        le=900,
        description="How long sending pauses after SES reports the daily quota exhausted.",
    )
    throttle_backoff_base_seconds: float = Field(default=2.0, gt=0)
    throttle_backoff_max_seconds: int = Field(default=300, ge=1, le=900)

    # --- scheduled send ------------------------------------------------------------
    max_schedule_ahead_seconds: int = Field(default=14 * 24 * 3600, ge=0)
    max_defer_step_seconds: int = Field(
        default=900,
        ge=1,
        le=900,
        description="Longest single hold of a scheduled message in SQS (DelaySeconds).",
    )

    # --- idempotency ---------------------------------------------------------------
    claim_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    unknown_outcome_after_seconds: int = Field(
        default=900,
        ge=1,
        description="How long an email whose send attempt was cut off (5xx, no answer, a"
        " worker killed mid-call) waits for SES's events to settle it; after that, with"
        " nothing learnt, the app gets send_outcome_unknown and it is never re-sent.",
    )
    outcome_settle_seconds: float | None = Field(
        default=None,
        ge=1,
        description="An attempt is proven unsent once SES's events for mail sent this long"
        " after it have arrived and none is about it; must exceed the visibility timeout"
        " (a held event comes back after it) and the longest SendEmail call (30 s)."
        " Unset: 120 s or twice MAILFLOW_VISIBILITY_TIMEOUT_SECONDS, whichever is longer.",
    )

    canary_recipient: str = Field(
        default="success@simulator.amazonses.com",
        description="Where a canary goes when an account is too quiet for SES's events to"
        " settle a cut-off attempt (SES's mailbox simulator: no delivery, no reputation"
        " effect; it counts toward the quota). Empty: no canaries, such attempts wait for"
        " other mail or end as send_outcome_unknown.",
    )

    # --- mail loops ----------------------------------------------------------------
    loop_limit_per_hour: int = Field(
        default=50,
        ge=0,
        description="At most this many automatic emails (Auto-Submitted other than `no`)"
        " from one app per clock hour to an address that itself sent mailflow automated"
        " mail lately; more are refused as loop_suspected (two auto-responders answering"
        " each other). Addresses that send no automated mail (people) are not counted."
        " 0: no limit.",
    )

    # --- tracking ------------------------------------------------------------------
    tracking_configuration_set: str | None = Field(
        default=None,
        description="Configuration set with open and click tracking, used instead of"
        " configuration_set for emails that ask for it (`options.tracking`); unset:"
        " no email is tracked, and opens and clicks never reach apps.",
    )

    # --- composition ---------------------------------------------------------------
    auto_submitted: Literal["auto-generated", "no"] = Field(
        default="auto-generated",
        description="Default Auto-Submitted header (RFC 3834) when a message gives none.",
    )

    @field_validator("trusted_writers", mode="before")
    @classmethod
    def _parse_writers(cls, value: Any) -> Any:
        return split_list(value)
