"""Every contract model that gets a JSON Schema file (`mailflow schema`)."""

from __future__ import annotations

from pydantic import BaseModel

from mailflow.contracts import inbound, outbound
from mailflow.contracts.failure import FailureRecord


def all_schemas() -> dict[str, type[BaseModel]]:
    return {"failure-record": FailureRecord, **inbound.SCHEMAS, **outbound.SCHEMAS}
