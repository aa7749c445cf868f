"""The one DynamoDB table: claims, send markers and rate windows, behind verbs.

Pipelines never call `put_item`; they `claim` (or `claim_send`), `complete`, `release`
(or `lapse`), `take_over`, `clear_send_mark` and `count_in_window`. Every write is a
single conditional write, never check-then-act (AWS Powertools' idempotency utility is
the model).

Claims move `(absent) -> in_progress -> completed`; a failure before the side effect
releases the claim so that a retry can take it again:

    worker A: claim ──────────── side effect ── complete
    worker B:        claim -> in_progress (retry later) ...  claim -> completed (skip)

The in-progress lease is short (the SQS visibility timeout) so that a worker killed
mid-flight does not block the message for ever; the item's own expiry is long (24 h by
default) and is checked in the condition itself, because DynamoDB's TTL deletes expired
items only eventually (up to days later).

An outbound email's send marker lives on its claim item, written by the same conditional
UpdateItem that claims it, just before SES `SendEmail` (one request, not two): the
attempt's token (the email carries it too, to SES and back in SES's events) and when it
began. It is removed only when SES's answer proves nothing was sent; otherwise the claim
is only lapsed (`lapse`), and a later attempt that claims it learns that an earlier
send's outcome is unknown until SES's events settle it (`send_evidence`, the watermark).
A rate window counts distinct ids per key; a repeated id is not counted twice. A roster
is one item whose attributes are its members' last heartbeats.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from botocore.exceptions import ClientError

from mailflow.aws.batch import Batcher
from mailflow.aws.keys import KEY_ATTRIBUTE, TTL_ATTRIBUTE
from mailflow.errors import aws_error_code

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
_CONDITION_FAILED = "ConditionalCheckFailedException"
_UNPROCESSED_BACKOFF_SECONDS = 0.05  # DynamoDB leaves items unprocessed when throttled
# A transaction refused as a whole: a condition failed, or another one holds an item.
_TRANSACTION_REFUSED = frozenset(
    {
        "TransactionCanceledException",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)

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
class SendClaim:
    """What `Table.claim_send` writes: an outbound email's claim and attempt `token`."""

    claim_key: str
    payload_hash: str
    token: str
    lease_seconds: float
    ttl_seconds: int


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


def _claim_put(
    key: str, payload_hash: str, now: float, lease_seconds: float, ttl_seconds: int
) -> dict[str, Any]:
    """A claim's conditional Put: free, expired, or an in-progress lease that lapsed."""
    return {
        "Item": {
            KEY_ATTRIBUTE: {"S": key},
            "status": {"S": IN_PROGRESS},
            "payloadHash": {"S": payload_hash},
            "leaseExpiresAt": {"N": f"{now + lease_seconds:.3f}"},
            TTL_ATTRIBUTE: {"N": str(int(now + ttl_seconds))},
            "createdAt": {"N": f"{now:.3f}"},
        },
        "ConditionExpression": _CLAIM_CONDITION,
        "ExpressionAttributeNames": {
            "#pk": KEY_ATTRIBUTE,
            "#exp": TTL_ATTRIBUTE,
            "#status": "status",
            "#lease": "leaseExpiresAt",
        },
        "ExpressionAttributeValues": {
            ":now": {"N": f"{now:.3f}"},
            ":in_progress": {"S": IN_PROGRESS},
        },
    }


def _mark_of(item: dict[str, Any], now: float) -> SendMark:
    """The send marker an item carries (its token, when it began, what cut it off)."""
    return SendMark(
        token=item.get("token", {}).get("S", ""),
        started_at=float(item.get("startedAt", {}).get("N", now)),
        cause=item.get("cause", {}).get("S", ""),
    )


def _fields_item(key: str, fields: dict[str, str], expires_at: float) -> dict[str, Any]:
    item: dict[str, Any] = {k: {"S": v} for k, v in fields.items()}
    item[KEY_ATTRIBUTE] = {"S": key}
    item[TTL_ATTRIBUTE] = {"N": str(int(expires_at))}
    return item


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


def _strings(item: dict[str, Any]) -> dict[str, str]:
    """An item's string attributes, as plain values."""
    return {k: v["S"] for k, v in item.items() if "S" in v}


def _condition_failed(exc: ClientError) -> bool:
    return aws_error_code(exc) == _CONDITION_FAILED


@dataclass
class Table:
    """Every read and write of the idempotency table (`MAILFLOW_IDEMPOTENCY_TABLE`)."""

    dynamodb: DynamoDBClient
    name: str
    clock: Callable[[], float] = time.time
    _reads: Batcher[list[str], dict[str, dict[str, str]]] | None = field(
        default=None, init=False, repr=False
    )
    _writes: Batcher[dict[str, Any], None] | None = field(default=None, init=False, repr=False)

    # --- claims ----------------------------------------------------------------------

    async def claim(
        self, key: str, *, payload_hash: str, lease_seconds: float, ttl_seconds: int
    ) -> Claim:
        now = self.clock()
        try:
            await self.dynamodb.put_item(
                TableName=self.name,
                **_claim_put(key, payload_hash, now, lease_seconds, ttl_seconds),
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

    async def complete(self, key: str, result: dict[str, str], *, emitted: bool = False) -> None:
        """Mark the side effect done; later claims see `completed` with this result (and,
        with `emitted`, that its status event is already on the app's queue)."""
        await self.dynamodb.update_item(
            TableName=self.name,
            Key={KEY_ATTRIBUTE: {"S": key}},
            UpdateExpression="SET #status = :completed, #result = :result, emitted = :emitted"
            " REMOVE leaseExpiresAt",
            ExpressionAttributeNames={"#status": "status", "#result": "result"},
            ExpressionAttributeValues={
                ":completed": {"S": COMPLETED},
                ":result": {"M": {k: {"S": v} for k, v in result.items()}},
                ":emitted": {"BOOL": emitted},
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

    async def claim_send(self, send: SendClaim) -> tuple[Claim, SendMark | None]:
        """Claim an outbound email and mark attempt `send.token` as about to send: one
        conditional UpdateItem, because the marker lives on the claim item.

        Returns the claim and, when the claim was acquired from a lapsed holder whose
        attempt had begun, that attempt's marker (this attempt's token is then *not*
        written: `take_over` replaces it once the earlier send is proven not to have
        happened). An expired item is replaced whole, as if there were none.
        """
        now = self.clock()
        try:
            response = await self.dynamodb.update_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": send.claim_key}},
                UpdateExpression="SET #status = :in_progress, payloadHash = :hash,"
                " #lease = :lease, #exp = :exp, createdAt = :now,"
                " #token = if_not_exists(#token, :token),"
                " startedAt = if_not_exists(startedAt, :now)",
                ConditionExpression="attribute_not_exists(#pk)"
                " OR (#status = :in_progress AND #lease < :now AND #exp >= :now)",
                ExpressionAttributeNames={
                    "#pk": KEY_ATTRIBUTE,
                    "#exp": TTL_ATTRIBUTE,
                    "#status": "status",
                    "#lease": "leaseExpiresAt",
                    "#token": "token",
                },
                ExpressionAttributeValues={
                    ":now": {"N": f"{now:.3f}"},
                    ":in_progress": {"S": IN_PROGRESS},
                    ":hash": {"S": send.payload_hash},
                    ":lease": {"N": f"{now + send.lease_seconds:.3f}"},
                    ":exp": {"N": str(int(now + send.ttl_seconds))},
                    ":token": {"S": send.token},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            existing = await self._existing(exc, send.claim_key)
            if existing and float(existing.get(TTL_ATTRIBUTE, {}).get("N", "0")) < now:
                return await self._replace_expired(send, existing, now)
            if not existing:
                return Claim("in_progress"), None  # released meanwhile: retry shortly
            return decide_claim(existing, send.payload_hash), None
        old = response.get("Attributes") or {}
        if "token" not in old:
            return Claim("acquired"), None
        return Claim("acquired"), _mark_of(old, now)

    async def _replace_expired(
        self, send: SendClaim, expired: dict[str, Any], now: float
    ) -> tuple[Claim, SendMark | None]:
        """An expired claim (TTL deletes lazily) counts as none: overwrite it whole."""
        item = {
            **_claim_put(
                send.claim_key, send.payload_hash, now, send.lease_seconds, send.ttl_seconds
            )["Item"],
            "token": {"S": send.token},
            "startedAt": {"N": f"{now:.3f}"},
        }
        try:
            await self.dynamodb.put_item(
                TableName=self.name,
                Item=item,
                ConditionExpression="#exp = :seen",
                ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":seen": expired[TTL_ATTRIBUTE]},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return Claim("in_progress"), None  # someone else replaced it first
        return Claim("acquired"), None

    async def read_claim(self, key: str, payload_hash: str) -> Claim | None:
        """What a live claim says to a new claimant, without claiming; None when free."""
        response = await self.dynamodb.get_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        item = response.get("Item")
        if not item or float(item.get(TTL_ATTRIBUTE, {}).get("N", "0")) < self.clock():
            return None
        return decide_claim(dict(item), payload_hash)

    async def lapse(self, key: str) -> None:
        """Give up an in-progress claim but keep its send marker: the next claimant
        acquires it at once and learns of the marker (`claim_send`)."""
        try:
            await self.dynamodb.update_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                UpdateExpression="SET #lease = :zero",
                ConditionExpression="#status = :in_progress",
                ExpressionAttributeNames={"#status": "status", "#lease": "leaseExpiresAt"},
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":in_progress": {"S": IN_PROGRESS},
                },
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    # --- send markers ----------------------------------------------------------------

    async def take_over(self, key: str, old: SendMark, token: str) -> bool:
        """Replace `old`'s marker with attempt `token`'s (the earlier send is proven not
        to have happened); False when the marker is no longer `old` (another took it)."""
        try:
            await self.dynamodb.update_item(
                TableName=self.name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                UpdateExpression="SET #token = :new, startedAt = :now REMOVE cause",
                **_same_token(
                    old.token, {":new": {"S": token}, ":now": {"N": f"{self.clock():.3f}"}}
                ),
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
        """SES's answer proved attempt `token` sent nothing: drop the claim with its
        marker, so that a retry claims afresh and sends."""
        try:
            await self.dynamodb.delete_item(
                TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, **_same_token(token)
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    # --- SES's events: evidence per attempt, and how far they have come -------------

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
        return _strings(response.get("Attributes", {}))

    async def read_fields(self, key: str) -> dict[str, str] | None:
        """An item's string attributes (consistent read); None when there is none."""
        response = await self.dynamodb.get_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        )
        item = response.get("Item")
        return _strings(item) if item else None

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
        """Items by key (consistent BatchGetItem; absent keys are absent from the result).

        Concurrent callers share BatchGetItem calls (`mailflow.aws.batch`): ten handlers
        screening their recipients at once cost one request, not ten.
        """
        if self._reads is None:
            self._reads = Batcher(self._read_for_all, max_items=100, max_size=100, size_of=len)
        return await self._reads.submit(list(keys))

    async def _read_for_all(self, requests: Sequence[list[str]]) -> list[dict[str, dict[str, str]]]:
        found = await self._batch_get([k for keys in requests for k in keys])
        return [{k: found[k] for k in keys if k in found} for keys in requests]

    async def _batch_get(self, keys: list[str]) -> dict[str, dict[str, str]]:
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
            responses = await _until_processed(
                lambda items: self.dynamodb.batch_get_item(RequestItems=items),
                request,
                "UnprocessedKeys",
                "keys unread",
            )
            for response in responses:
                for item in response.get("Responses", {}).get(self.name, []):
                    fields = _strings(item)
                    found[fields[KEY_ATTRIBUTE]] = fields
        return found

    async def put_soon(self, key: str, fields: dict[str, str], ttl_seconds: int) -> None:
        """Write an item of string fields (a fresh key: nothing to overwrite), sharing a
        BatchWriteItem with concurrent callers."""
        if self._writes is None:
            self._writes = Batcher(self._write_for_all, max_items=25)
        await self._writes.submit(_fields_item(key, fields, self.clock() + ttl_seconds))

    async def _write_for_all(self, items: Sequence[dict[str, Any]]) -> list[None]:
        # One key twice in a request is refused: the last write wins, as it would alone.
        unique = {item[KEY_ATTRIBUTE]["S"]: item for item in items}
        await self._batch_put([{"PutRequest": {"Item": item}} for item in unique.values()])
        return [None] * len(items)

    async def _batch_put(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in 25s, retrying (with a short backoff) what DynamoDB left."""
        for start in range(0, len(requests), 25):
            request: dict[str, Any] = {self.name: requests[start : start + 25]}
            await _until_processed(
                lambda items: self.dynamodb.batch_write_item(RequestItems=items),
                request,
                "UnprocessedItems",
                "items unwritten",
            )

    async def delete(self, key: str) -> dict[str, str] | None:
        """Remove an item; what it held, or None when there was none."""
        response = await self.dynamodb.delete_item(
            TableName=self.name, Key={KEY_ATTRIBUTE: {"S": key}}, ReturnValues="ALL_OLD"
        )
        old = response.get("Attributes")
        return _strings(old) if old else None

    async def put_markers(self, keys: list[str], ttl_seconds: int) -> None:
        """Several markers in one BatchWriteItem (retrying what DynamoDB left unwritten)."""
        expires = {"N": str(int(self.clock() + ttl_seconds))}
        await self._batch_put(
            [
                {"PutRequest": {"Item": {KEY_ATTRIBUTE: {"S": k}, TTL_ATTRIBUTE: expires}}}
                for k in dict.fromkeys(keys)
            ]
        )

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


async def _until_processed(
    call: Callable[[Any], Awaitable[Any]], request: dict[str, Any], leftover: str, what: str
) -> list[Any]:
    """Call a batch API again (backing off) for what DynamoDB left unprocessed, as it
    does when throttled: every response, or an error after 5 tries."""
    responses: list[Any] = []
    for attempt in range(5):
        response = await call(request)
        responses.append(response)
        request = dict(response.get(leftover) or {})
        if not request:
            return responses
        await anyio.sleep(_UNPROCESSED_BACKOFF_SECONDS * 2**attempt)
    raise RuntimeError(f"DynamoDB left {what} after 5 tries: {request}")
