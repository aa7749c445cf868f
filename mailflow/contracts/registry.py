"""Every JSON Schema `mailflow schema` writes, by file stem.

What an app sends (the outbound message) is published as an *input* schema: every
spelling and shape the worker accepts (both casings, one address or a list, an address
as a string or an object). Its `.normalized` twin is the one form mailflow itself writes
and documents. Everything mailflow writes (the inbound message, status events, failure
records) is published as it appears on the wire.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mailflow.contracts import inbound, outbound
from mailflow.contracts.failure import FailureRecord

DIALECT = "https://json-schema.org/draft/2020-12/schema"

INPUTS: dict[str, type[BaseModel]] = {"outbound-message": outbound.OutboundMessage}
OUTPUTS: dict[str, type[BaseModel]] = {
    "outbound-message.normalized": outbound.OutboundMessage,
    "inbound-message": inbound.InboundMessage,
    "outbound-status-event": outbound.OutboundStatusEvent,
    "email-sent-event": outbound.EmailSentEvent,
    "email-failed-event": outbound.EmailFailedEvent,
    "failure-record": FailureRecord,
}


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"$schema": DIALECT, **model.model_json_schema(by_alias=True, mode="validation")}


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"$schema": DIALECT, **model.model_json_schema(by_alias=True, mode="serialization")}


def all_schemas() -> dict[str, dict[str, Any]]:
    """File stem -> JSON Schema document."""
    schemas = {stem: input_schema(model) for stem, model in INPUTS.items()}
    schemas.update({stem: output_schema(model) for stem, model in OUTPUTS.items()})
    return schemas
