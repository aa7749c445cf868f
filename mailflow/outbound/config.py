"""Outbound settings (env `MAILFLOW_OUTBOUND__<FIELD>`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class OutboundSettings(BaseModel):
    """Limits and SES options for sent mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    configuration_set: str | None = None
