"""Every contract model that gets a JSON Schema file (`mailflow schema`)."""

from __future__ import annotations

import importlib

from pydantic import BaseModel

from mailflow.contracts.failure import FailureRecord

_MODULES = ("mailflow.contracts.inbound", "mailflow.contracts.outbound")


def all_schemas() -> dict[str, type[BaseModel]]:
    schemas: dict[str, type[BaseModel]] = {"failure-record": FailureRecord}
    for name in _MODULES:
        module = importlib.import_module(name)
        schemas.update(getattr(module, "SCHEMAS", {}))
    return schemas
