"""Inbound settings (env `MAILFLOW_INBOUND__<FIELD>`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InboundSettings(BaseModel):
    """Policy and limits for received mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_email_bytes: int = 40 * 1024 * 1024
    max_attachment_bytes: int = 35 * 1024 * 1024
