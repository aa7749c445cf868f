"""`mailflow suppression list|add|remove|check`: the operator's view of the list.

Runs with the operator's credentials, like `redrive`: listing scans the table (the list
lives beside claims and markers, so a scan reads them too; fine for an operator's
command, never done by the worker).
"""

from __future__ import annotations

from typing import Any

from mailflow.aws import keys
from mailflow.aws.clients import AwsClients, open_clients
from mailflow.aws.table import Table
from mailflow.feedback.suppression import Entry, SuppressionList
from mailflow.settings import Settings


async def entries(settings: Settings, app: str | None = None) -> list[Entry]:
    """Every suppressed address (optionally only those an app's mail put there)."""
    found: list[Entry] = []
    arguments: dict[str, Any] = {
        "TableName": settings.idempotency_table,
        "FilterExpression": "begins_with(#pk, :prefix)",
        "ExpressionAttributeNames": {"#pk": keys.KEY_ATTRIBUTE},
        "ExpressionAttributeValues": {":prefix": {"S": keys.suppressed("")}},
    }
    async with open_clients(settings) as clients:
        while True:
            response = await clients.dynamodb.scan(**arguments)
            for item in response.get("Items", []):
                entry = Entry.from_item({k: v["S"] for k, v in item.items() if "S" in v})
                if app is None or entry.app == app:
                    found.append(entry)
            start = response.get("LastEvaluatedKey")
            if not start:
                return sorted(found, key=lambda e: e.address)
            arguments["ExclusiveStartKey"] = start


async def add(settings: Settings, address: str, detail: str) -> bool:
    """Suppress `address` by hand; False when it already was."""
    async with open_clients(settings) as clients:
        return await _list(settings, clients).add(address, "operator", detail, None)


async def remove(settings: Settings, address: str) -> Entry | None:
    """Let mail to `address` through again; what the entry said, None if there was none."""
    async with open_clients(settings) as clients:
        return await _list(settings, clients).remove(address)


async def check(settings: Settings, address: str) -> Entry | None:
    async with open_clients(settings) as clients:
        found = await _list(settings, clients).check([address])
    return found.get(address.strip().lower())


def _list(settings: Settings, clients: AwsClients) -> SuppressionList:
    return SuppressionList(Table(clients.dynamodb, settings.idempotency_table), settings.feedback)
