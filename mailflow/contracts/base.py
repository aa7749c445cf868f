"""Shared model configuration: camelCase on the wire, snake_case accepted on input."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of every contract model.

    Serialize with `model_dump(by_alias=True, mode="json", exclude_none=True)` (or
    `to_wire()`); parsing accepts both `correlationId` and `correlation_id`.
    Unknown fields are ignored so that additive changes never break older workers.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        ser_json_timedelta="float",
    )

    def to_wire(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)
