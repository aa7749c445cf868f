"""The one DynamoDB table: claims, send markers and rate windows, behind verbs.

Pipelines never call `put_item`; they `claim`, `complete`, `release`, `mark_send`,
`clear_send_mark` and `count_in_window`. Every write is a single conditional write, never
check-then-act (AWS Powertools' idempotency utility is the model).

Claims move `(absent) -> in_progress -> completed`; a failure before the side effect
releases the claim so that a retry can take it again:

    worker A: claim ──────────── side effect ── complete
    worker B:        claim -> in_progress (retry later) ...  claim -> completed (skip)

The in-progress lease is short (the SQS visibility timeout) so that a worker killed
mid-flight does not block the message for ever; the item's own expiry is long (24 h by
default) and is checked in the condition itself, because DynamoDB's TTL deletes expired
items only eventually (up to days later).

A send marker is written just before SES `SendEmail`, carrying the attempt's token (the
email carries it too, to SES and back in SES's events), and removed only when SES's answer
proves nothing was sent: a later attempt that finds one knows an earlier send's outcome is
unknown until SES's events settle it (`send_evidence`, the events `watermark`).
A rate window counts distinct ids per key; a repeated id is not counted twice. A roster
is one item whose attributes are its members' last heartbeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from mailflow.aws.keys import KEY_ATTRIBUTE, TTL_ATTRIBUTE
from mailflow.errors import aws_error_code

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
_CONDITION_FAILED = "ConditionalCheckFailedException"

ClaimStatus = Literal["acquired", "completed", "in_progress", "mismatch"]

_CLAIM_CONDITION = (
    "attribute_not_exists(#pk) OR #exp < :now OR (#status = :in_progress AND #lease < :now)"
)


@dataclass(frozen=True)
class Claim:
    """The outcome of `Table.claim`; `emitted`: the status event is on the app's queue."""

    status: ClaimStatus
    result: dict[str, str] = field(default_factory=dict)
    emitted: bool = False


@dataclass(frozen=True)
class SendMark:
    """An earlier attempt's send marker: whose it is, when it began, what cut it off."""

    token: str
    started_at: float
    cause: str = ""


def decide_claim(existing: dict[str, Any], payload_hash: str) -> Claim:
    """Pure: what an existing, live claim means for a new claimant."""
    stored_hash = existing.get("payloadHash", {}).get("S", "")
    if payload_hash and stored_hash and stored_hash != payload_hash:
        return Claim("mismatch")
    if existing.get("status", {}).get("S") == COMPLETED:
        result = {k: v["S"] for k, v in existing.get("result", {}).get("M", {}).items()}
        return Claim("completed", result, emitted=existing.get("emitted", {}).get("BOOL", False))
    return Claim("in_progress")


def _send_mark(key: str, token: str, now: float, ttl_seconds: int) -> dict[str, Any]:
    return {
        KEY_ATTRIBUTE: {"S": key},
        "token": {"S": token},
        "startedAt": {"N": f"{now:.3f}"},
        TTL_ATTRIBUTE: {"N": str(int(now + ttl_seconds))},
    }


def _same_token(token: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Condition arguments: the marker is still attempt `token`'s (a marker written before
    tokens existed has none, and `token` is then '')."""
    condition = (
        "#token = :token" if token else "attribute_exists(#pk) AND attribute_not_exists(#token)"
    )
    names = {"#token": "token"} if token else {"#token": "token", "#pk": KEY_ATTRIBUTE}
    merged = {**({":token": {"S": token}} if token else {}), **(values or {})}
    arguments: dict[str, Any] = {
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if merged:
        arguments["ExpressionAttributeValues"] = merged
    return arguments


def _condition_failed(exc: ClientError) -> bool:
    return aws_error_code(exc) == _CONDITION_FAILED


@dataclass
class Table:
    """Every read and write of the idempotency table (`MAILFLOW_IDEMPOTENCY_TABLE`)."""

    dynamodb: DynamoDBClient
    name: str
    clock: Callable[[], float] = time.time

    # --- claims ----------------------------------------------------------------------

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
                TableName=self.name,
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
            if not _condition_failed(exc):
                raise
            existing = await self._existing(exc, key)
            if not existing:
                # Released between our write and our read: the holder failed before its
                # side effect, so the caller may retry the claim right away.
                return Claim("in_progress")
            return decide_claim(existing, payload_hash)
        return Claim("acquired")

    async def complete(self, key: str, result: dict[str, str]) -> None:
        """Mark the side effect done; later claims see `completed` with this result."""
        await self.dynamodb.update_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="SET #status = :completed, #result = :result REMOVE leaseExpiresAt",
            ExpressionAttributeNames={"#status": "status", "#result": "result"},
            ExpressionAttributeValues={
                ":completed": {"S": COMPLETED},
                ":result": {"M": {k: {"S": v} for k, v in result.items()}},
            },
        )

    async def mark_emitted(self, key: str) -> None:
        """The completed claim's status event is on the app's queue: a repeat stays silent."""
        await self.dynamodb.update_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="SET emitted = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    async def release(self, key: str) -> None:
        """Give up an in-progress claim so that a retry can take it (never a completed one)."""
        try:
            await self.dynamodb.delete_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                ConditionExpression="#status = :in_progress",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":in_progress": {"S": IN_PROGRESS}},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    # --- send markers ----------------------------------------------------------------

    async def mark_send(self, key: str, token: str, ttl_seconds: int) -> SendMark | None:
        """Write attempt `token`'s marker; None on success, else the marker already there."""
        now = self.clock()
        try:
            await self.dynamodb.put_item(
                TableName=self.name,
                Item=_send_mark(key, token, now, ttl_seconds),
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
                ExpressionAttributeNames={"#pk": KEY_ATTRIBUTE, "#exp": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            old = await self._existing(exc, key)
            if not old:  # cleared between our write and our read: it proved nothing sent
                return await self.mark_send(key, token, ttl_seconds)
            return SendMark(
                token=old.get("token", {}).get("S", ""),
                started_at=float(old.get("startedAt", {}).get("N", now)),
                cause=old.get("cause", {}).get("S", ""),
            )
        return None

    async def replace_send_mark(
        self, key: str, old: SendMark, token: str, ttl_seconds: int
    ) -> bool:
        """Take over `old`'s marker for attempt `token` (its send is proven not to have
        happened); False when the marker is no longer `old` (another attempt took it)."""
        try:
            await self.dynamodb.put_item(
                TableName=self.name,
                Item=_send_mark(key, token, self.clock(), ttl_seconds),
                **_same_token(old.token),
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    async def note_send_cause(self, key: str, token: str, cause: str) -> None:
        """Say on attempt `token`'s marker what left its outcome unknown (for the app)."""
        try:
            await self.dynamodb.update_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                UpdateExpression="SET cause = :cause",
                **_same_token(token, {":cause": {"S": cause}}),
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    async def clear_send_mark(self, key: str, token: str) -> None:
        """SES's answer proved attempt `token` sent nothing: a retry may send."""
        try:
            await self.dynamodb.delete_item(
                TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, **_same_token(token)
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    # --- SES's events: evidence per attempt, and how far they have come -------------

    async def remember(self, key: str, fields: dict[str, str], ttl_seconds: int) -> None:
        """Write an item of string fields (a fresh key: nothing to overwrite)."""
        item = {k: {"S": v} for k, v in fields.items()}
        item[KEY_ATTRIBUTE] = {"S": key}
        item[TTL_ATTRIBUTE] = {"N": str(int(self.clock() + ttl_seconds))}
        await self.dynamodb.put_item(TableName=self.name, Item=item)

    async def record_evidence(
        self, key: str, fields: dict[str, str], ttl_seconds: int
    ) -> dict[str, str]:
        """Add the first event's facts to an attempt's item (later events keep them) and
        return the whole item: one call learns whose email the event is about too."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values: dict[str, Any] = {f":f{i}": {"S": v} for i, v in enumerate(fields.values())}
        values[":exp"] = {"N": str(int(self.clock() + ttl_seconds))}
        sets = [f"#f{i} = if_not_exists(#f{i}, :f{i})" for i in range(len(fields))]
        response = await self.dynamodb.update_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="SET " + ", ".join([*sets, "#exp = if_not_exists(#exp, :exp)"]),
            ExpressionAttributeNames={**names, "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return {k: v["S"] for k, v in response.get("Attributes", {}).items() if "S" in v}

    async def read_fields(self, key: str) -> dict[str, str] | None:
        """An item's string attributes (consistent read); None when there is none."""
        response = await self.dynamodb.get_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        return {k: v["S"] for k, v in item.items() if "S" in v}

    async def advance_mark(self, key: str, at: float, ttl_seconds: int) -> None:
        """Raise a time mark to `at` (never lower it: events arrive out of order)."""
        try:
            await self.dynamodb.update_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                UpdateExpression="SET #at = :at, #exp = :exp",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at", "#exp": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":at": {"N": f"{at:.3f}"},
                    ":exp": {"N": str(int(self.clock() + ttl_seconds))},
                },
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    async def read_mark(self, key: str) -> float | None:
        response = await self.dynamodb.get_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        value = response.get("Item", {}).get("at", {}).get("N")
        return float(value) if value else None

    # --- notices ---------------------------------------------------------------------

    async def exists(self, key: str) -> bool:
        response = await self.dynamodb.get_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            ConsistentRead=True,
            ProjectionExpression="#pk",
            ExpressionAttributeNames={"#pk": KEY_ATTRIBUTE},
        )
        return bool(response.get("Item"))

    async def put_marker(self, key: str, ttl_seconds: int) -> None:
        await self.dynamodb.put_item(
            TableName=self.name,
            Item={
                KEY_ATTRIBUTE: {"S": key},
                TTL_ATTRIBUTE: {"N": str(int(self.clock() + ttl_seconds))},
            },
        )

    # --- lists kept for ever (suppression) -----------------------------------------

    async def put_if_absent(self, key: str, fields: dict[str, str]) -> bool:
        """Write an item that never expires unless one is there; False when one was."""
        item = {k: {"S": v} for k, v in fields.items()}
        item[KEY_ATTRIBUTE] = {"S": key}
        try:
            await self.dynamodb.put_item(
                TableName=self.name,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": KEY_ATTRIBUTE},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    async def read_many(self, keys: list[str]) -> dict[str, dict[str, str]]:
        """Items by key (consistent BatchGetItem; absent keys are absent from the result)."""
        found: dict[str, dict[str, str]] = {}
        pending: list[str] = list(dict.fromkeys(keys))
        while pending:
            batch, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {
                self.name: {
                    "Keys": [{KEY_ATTRIBUTE: {"S": k}} for k in batch],
                    "ConsistentRead": True,
                }
            }
            for _ in range(5):
                response = await self.dynamodb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.name, []):
                    fields = {k: v["S"] for k, v in item.items() if "S" in v}
                    found[fields[KEY_ATTRIBUTE]] = fields
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
            else:
                raise RuntimeError(f"DynamoDB left keys unread after 5 tries: {request}")
        return found

    async def delete(self, key: str) -> dict[str, str] | None:
        """Remove an item; what it held, or None when there was none."""
        response = await self.dynamodb.delete_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ReturnValues="ALL_OLD"
        )
        old = response.get("Attributes")
        return {k: v["S"] for k, v in old.items() if "S" in v} if old else None

    async def put_markers(self, keys: list[str], ttl_seconds: int) -> None:
        """Several markers in one BatchWriteItem (retrying what DynamoDB left unwritten)."""
        expires = {"N": str(int(self.clock() + ttl_seconds))}
        items = [
            {"PutRequest": {"Item": {KEY_ATTRIBUTE: {"S": k}, TTL_ATTRIBUTE: expires}}}
            for k in dict.fromkeys(keys)
        ]
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {self.name: items[start : start + 25]}
            for _ in range(5):
                response = await self.dynamodb.batch_write_item(RequestItems=request)
                request = dict(response.get("UnprocessedItems") or {})
                if not request:
                    break
            else:
                raise RuntimeError(f"DynamoDB left markers unwritten after 5 tries: {request}")

    # --- rate windows ----------------------------------------------------------------

    async def count_in_window(self, key: str, member: str, *, limit: int, ttl_seconds: int) -> bool:
        """Add `member` to the window unless it is full; False when over `limit`.

        One conditional UpdateItem: the set grows while below the limit *or* when it
        already holds the member, so a redelivery is never counted twice and concurrent
        workers cannot overshoot.
        """
        try:
            await self.dynamodb.update_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                UpdateExpression="ADD #ids :id_set SET #exp = :exp",
                ConditionExpression="attribute_not_exists(#ids) OR size(#ids) < :limit"
                " OR contains(#ids, :id)",
                ExpressionAttributeNames={"#ids": "ids", "#exp": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":id_set": {"SS": [member]},
                    ":id": {"S": member},
                    ":limit": {"N": str(limit)},
                    ":exp": {"N": str(int(self.clock()) + ttl_seconds)},
                },
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    # --- rosters ---------------------------------------------------------------------

    async def heartbeat(self, key: str, member: str, *, stale_after: float) -> int:
        """Record `member` alive now; return how many members are alive (itself included).

        One UpdateItem that returns the whole item, so the count costs no extra read.
        Members silent for `stale_after` seconds do not count and are removed.
        """
        now = self.clock()
        attribute = f"m_{member}"
        response = await self.dynamodb.update_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="SET #member = :now, #exp = :exp",
            ExpressionAttributeNames={"#member": attribute, "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":now": {"N": f"{now:.3f}"},
                ":exp": {"N": str(int(now + 10 * stale_after))},
            },
            ReturnValues="ALL_NEW",
        )
        seen = {
            name: float(value.get("N", "0"))
            for name, value in response.get("Attributes", {}).items()
            if name.startswith("m_")
        }
        stale = [name for name, at in seen.items() if at < now - stale_after]
        if stale:
            await self._forget_members(key, stale)
        return max(1, len(seen) - len(stale))

    async def _forget_members(self, key: str, names: list[str]) -> None:
        aliases = {f"#s{i}": name for i, name in enumerate(names)}
        await self.dynamodb.update_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="REMOVE " + ", ".join(aliases),
            ExpressionAttributeNames=aliases,
        )

    async def _existing(self, exc: ClientError, key: str) -> dict[str, Any]:
        """The item a condition failed on: from the error (one call) or a consistent read."""
        old: Any = exc.response.get("Item")
        if old:
            return dict(old)
        response = await self.dynamodb.get_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        return dict(response.get("Item", {}))
