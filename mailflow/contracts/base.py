"""Shared model configuration: camelCase on the wire, snake_case accepted on input.

The JSON Schemas follow the same split (`mailflow schema`): what mailflow writes is
described in serialization mode (camelCase, exactly what appears); what an app sends is
described in validation mode, which here means every spelling and shape the worker
accepts, so that an app validating its messages against our schema never refuses a
documented form the worker takes (tests/unit/test_docs_examples.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


def wire_time(value: datetime) -> str:
    """One form for every time mailflow writes: ISO 8601, milliseconds when there are
    any, UTC as `Z` (`2026-03-03T09:15:01.204Z`); another zone keeps its offset (an
    email's own `Date`)."""
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


Instant = Annotated[
    datetime,
    PlainSerializer(wire_time, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


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

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        if handler.mode == "validation":
            accept_every_spelling(schema, cls.model_fields)
            relax_datetimes(schema)
        return schema


def spellings(name: str, field: FieldInfo) -> list[str]:
    """Every key under which the worker reads this field, the preferred one first."""
    choices = field.validation_alias
    if isinstance(choices, AliasChoices):
        names = [c for c in choices.choices if isinstance(c, str)]
    elif isinstance(choices, str):
        names = [choices]
    else:
        names = [field.alias or name]
    return list(dict.fromkeys([*names, name]))  # populate_by_name: the Python name too


def accept_every_spelling(schema: dict[str, Any], fields: dict[str, FieldInfo]) -> None:
    """Add each alternative key as a property; a required field is met by any spelling."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    groups: list[list[str]] = []
    for name, field in fields.items():
        names = spellings(name, field)
        shown = next((n for n in names if n in properties), None)
        if shown is None:
            continue
        for other in names:
            if other not in properties:
                properties[other] = {
                    "allOf": [properties[shown]],
                    "description": f"Another spelling of `{shown}`.",
                }
        if shown in required and len(names) > 1:
            required.discard(shown)
            groups.append(names)
    if "required" in schema:
        schema["required"] = [n for n in schema["required"] if n in required]
        if not schema["required"]:
            del schema["required"]
    if groups:
        schema["allOf"] = [{"anyOf": [{"required": [n]} for n in names]} for names in groups]


def relax_datetimes(schema: Any) -> None:
    """Input times are ISO 8601 with or without a zone (none means UTC), as the worker
    parses them; JSON Schema's `date-time` format would demand a zone."""
    if isinstance(schema, dict):
        if schema.get("format") == "date-time":
            del schema["format"]
            schema.setdefault("description", "ISO 8601 date and time; without a zone it is UTC.")
        for key, value in schema.items():
            if key != "$defs":
                relax_datetimes(value)
    elif isinstance(schema, list):
        for item in schema:
            relax_datetimes(item)


class OneOrMany:
    """Annotated marker: in an input schema, a single item may stand for the list.

    Pair it with a BeforeValidator that does the same when parsing.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if handler.mode != "validation":
            return schema
        return {"anyOf": [schema["items"], schema]}
