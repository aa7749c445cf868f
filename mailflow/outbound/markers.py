"""Send markers: a record, written just before SendEmail, that a send *may* have happened.

The idempotency claim's lease protects against concurrent duplicates, but a worker killed
between SES accepting an email and `complete()` leaves a claim whose lease simply
expires, and a redelivery would then send a second email. So the handler writes a marker
(`outbound-send#<source>#<correlationId>`, same table, same 24 h expiry) right before
the call and removes it only when SES answered with an error (nothing was sent). A later
attempt that finds a marker knows an earlier send's outcome is unknown: while the marker
is young it waits (the first sender may still be finishing), afterwards it reports
`send_outcome_unknown` to the app instead of risking a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mailflow.aws import error_code
from mailflow.idempotency import KEY_ATTRIBUTE, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


def marker_key(source: str, correlation_id: str) -> str:
    return f"outbound-send#{source}#{correlation_id}"


@dataclass
class SendMarkers:
    """Conditional put / get / delete of send markers."""

    dynamodb: DynamoDBClient
    table: str
    clock: Callable[[], float] = time.time

    async def start(self, key: str, ttl_seconds: int) -> float | None:
        """Write the marker; None on success, else the existing marker's age in seconds."""
        now = self.clock()
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    KEY_ATTRIBUTE: {"S": key},
                    "startedAt": {"N": f"{now:.3f}"},
                    TTL_ATTRIBUTE: {"N": str(int(now + ttl_seconds))},
                },
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
                ExpressionAttributeNames={"#pk": KEY_ATTRIBUTE, "#exp": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old: Any = exc.response.get("Item") or await self._get(key)
            started = float(old.get("startedAt", {}).get("N", now)) if old else now
            return max(0.0, now - started)
        return None

    async def _get(self, key: str) -> dict[str, Any]:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        return dict(response.get("Item", {}))

    async def clear(self, key: str) -> None:
        """SES answered with an error: nothing was sent, a retry may send."""
        await self.dynamodb.delete_item(TableName=self.table, Key={KEY_ATTRIBUTE: {"S": key}})
