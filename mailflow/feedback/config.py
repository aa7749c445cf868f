"""Feedback settings (env `MAILFLOW_FEEDBACK__<FIELD>`): SES's events, told to apps and
kept in the suppression list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FeedbackSettings(BaseModel):
    """How long feedback is routable, and when an address is suppressed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="How long mailflow remembers which app and correlationId each sent"
        " email belongs to: SES's bounces and complaints for it reach the app within this"
        " time (complaints can take days); later ones only update the suppression list.",
    )
    suppression: bool = Field(
        default=True,
        description="Keep the suppression list from hard bounces and complaints, and refuse"
        " outbound mail to suppressed addresses (reason `suppressed`).",
    )
    soft_bounce_limit: int = Field(
        default=3,
        ge=0,
        description="An address that bounces softly (Transient, Undetermined) this many"
        " times within the window is suppressed too; 0: soft bounces never suppress.",
    )
    soft_bounce_window_hours: int = Field(default=72, ge=1, le=24 * 30)

    @property
    def window_seconds(self) -> int:
        """The window as the TTL of each send attempt's item (both sides use it)."""
        return self.window_days * 24 * 3600
