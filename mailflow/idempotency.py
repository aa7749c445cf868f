"""Exactly-once claims in DynamoDB: one conditional write first, never check-then-act.

Modelled on AWS Powertools' idempotency utility. A record moves
`(absent) -> in_progress -> completed`; a failure before the side effect deletes it
(`release`) so a retry can claim again.

    worker A: claim ──────────── side effect ── complete
    worker B:        claim -> in_progress (retry later) ...  claim -> completed (skip)

The in-progress lease is short (tied to the SQS visibility timeout) so that a worker
killed mid-flight does not block the message forever; the record's own expiry is long
(24 h by default) and is checked in the condition, because DynamoDB's TTL deletes
expired items only eventually (up to days later).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from mailflow.aws import error_code

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

KEY_ATTRIBUTE = "pk"
TTL_ATTRIBUTE = "expiresAt"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"

ClaimStatus = Literal["acquired", "completed", "in_progress", "mismatch"]

_CLAIM_CONDITION = (
    "attribute_not_exists(#pk) OR #exp < :now OR (#status = :in_progress AND #lease < :now)"
)


@dataclass(frozen=True)
class Claim:
    """The outcome of `IdempotencyStore.claim`."""

    status: ClaimStatus
    result: dict[str, str] = field(default_factory=dict)


def _decide(existing: dict[str, Any], payload_hash: str) -> Claim:
    """Pure: what an existing, live record means for a new claimant."""
    stored_hash = existing.get("payloadHash", {}).get("S", "")
    if payload_hash and stored_hash and stored_hash != payload_hash:
        return Claim("mismatch")
    if existing.get("status", {}).get("S") == COMPLETED:
        result = {k: v["S"] for k, v in existing.get("result", {}).get("M", {}).items()}
        return Claim("completed", result)
    return Claim("in_progress")


@dataclass
class IdempotencyStore:
    """Claims keyed by a caller-chosen string (see the key conventions in the README)."""

    dynamodb: DynamoDBClient
    table: str
    clock: Callable[[], float] = time.time

    async def claim(
        self, key: str, *, payload_hash: str, lease_seconds: float, ttl_seconds: int
    ) -> Claim:
        now = self.clock()
        item = {
            KEY_ATTRIBUTE: {"S": key},
            "status": {"S": IN_PROGRESS},
            "payloadHash": {"S": payload_hash},
            "leaseExpiresAt": {"N": f"{now + lease_seconds:.3f}"},
            TTL_ATTRIBUTE: {"N": str(int(now + ttl_seconds))},
            "createdAt": {"N": f"{now:.3f}"},
        }
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=_CLAIM_CONDITION,
                ExpressionAttributeNames={
                    "#pk": KEY_ATTRIBUTE,
                    "#exp": TTL_ATTRIBUTE,
                    "#status": "status",
                    "#lease": "leaseExpiresAt",
                },
                ExpressionAttributeValues={
                    ":now": {"N": f"{now:.3f}"},
                    ":in_progress": {"S": IN_PROGRESS},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old: Any = exc.response.get("Item")
            existing: dict[str, Any] = old or await self._get(key)
            if not existing:
                # Released between our write and our read: the holder failed before its
                # side effect, so the caller may retry the claim right away.
                return Claim("in_progress")
            return _decide(existing, payload_hash)
        return Claim("acquired")

    async def complete(self, key: str, result: dict[str, str]) -> None:
        """Mark the side effect done; later claims see `completed` with this result."""
        await self.dynamodb.update_item(
            TableName=self.table,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="SET #status = :completed, #result = :result REMOVE leaseExpiresAt",
            ExpressionAttributeNames={"#status": "status", "#result": "result"},
            ExpressionAttributeValues={
                ":completed": {"S": COMPLETED},
                ":result": {"M": {k: {"S": v} for k, v in result.items()}},
            },
        )

    async def release(self, key: str) -> None:
        """Give up an in-progress claim so that a retry can take it (never a completed one)."""
        try:
            await self.dynamodb.delete_item(
                TableName=self.table,
                Key={KEY_ATTRIBUTE: {"S": key}},
                ConditionExpression="#status = :in_progress",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":in_progress": {"S": IN_PROGRESS}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    async def _get(self, key: str) -> dict[str, Any]:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        return dict(response.get("Item", {}))
