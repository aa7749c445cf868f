"""Per-sender rate limit in the idempotency table (off unless configured).

One item per sender and clock hour (`ratelimit#<sender>#<YYYYMMDDHH>`) holds the set of
SES message ids counted in that hour. A single conditional UpdateItem adds the id when
the set is below the limit *or already contains it*, so a redelivered notification is
never counted twice and concurrent workers cannot overshoot. Fixed windows are coarse
(a burst may straddle two hours); that is the price of one write per email.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mailflow.aws import error_code
from mailflow.errors import PolicyRejected
from mailflow.idempotency import KEY_ATTRIBUTE, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_WINDOW_TTL_SECONDS = 2 * 3600


def window_key(sender: str, now: datetime) -> str:
    return f"ratelimit#{sender.lower()}#{now:%Y%m%d%H}"


async def count_email(
    dynamodb: DynamoDBClient,
    table: str,
    *,
    sender: str,
    ses_message_id: str,
    limit: int,
    now: datetime,
) -> None:
    """Count this email for its sender; raise PolicyRejected when over `limit` per hour."""
    try:
        await dynamodb.update_item(
            TableName=table,
            Key={KEY_ATTRIBUTE: {"S": window_key(sender, now)}},
            UpdateExpression="ADD #ids :id_set SET #exp = :exp",
            ConditionExpression="attribute_not_exists(#ids) OR size(#ids) < :limit"
            " OR contains(#ids, :id)",
            ExpressionAttributeNames={"#ids": "ids", "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":id_set": {"SS": [ses_message_id]},
                ":id": {"S": ses_message_id},
                ":limit": {"N": str(limit)},
                ":exp": {"N": str(int(now.timestamp()) + _WINDOW_TTL_SECONDS)},
            },
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        raise PolicyRejected(
            f"sender exceeded {limit} emails per hour", code="rate_limited"
        ) from None
