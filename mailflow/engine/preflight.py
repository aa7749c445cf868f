"""Start-up checks: every queue, bucket and table the worker will use must exist.

Failing here, with the resource named, beats failing on the first message an hour later.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from mailflow.aws.clients import AwsClients
from mailflow.errors import ConfigurationError, MissingResource, aws_error_code
from mailflow.settings import Settings


async def check_resources(settings: Settings, clients: AwsClients) -> None:
    """Raise ConfigurationError naming every missing resource (all at once, not one by one)."""
    missing: list[str] = []
    for role, queue in settings.all_queues().items():
        try:
            await clients.queues.url(queue)
        except MissingResource:
            missing.append(f"queue {queue!r} ({role})")
    for bucket in (settings.raw_bucket, settings.attachments_bucket):
        try:
            await clients.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if aws_error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
            missing.append(f"bucket {bucket!r}")
    try:
        await clients.dynamodb.describe_table(TableName=settings.idempotency_table)
    except ClientError as exc:
        if aws_error_code(exc) != "ResourceNotFoundException":
            raise
        missing.append(f"table {settings.idempotency_table!r}")
    if missing:
        raise ConfigurationError(
            "missing AWS resources: " + ", ".join(missing) + " (run `mailflow provision`?)"
        )
