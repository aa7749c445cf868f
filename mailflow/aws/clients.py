"""The thin AWS shell: one aioboto3 session, one client per service, queue URL lookup.

Clients live for the worker's lifetime inside an `AsyncExitStack` (aiobotocore owns the
connection pool and must be closed). The endpoint comes from `AWS_ENDPOINT_URL` when set,
so the same code talks to AWS, LocalStack or the embedded moto server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mailflow.errors import MissingResource, aws_error_code
from mailflow.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sesv2 import SESV2Client
    from types_aiobotocore_sqs import SQSClient

# Retries inside botocore are for connection blips only; message-level retries are the
# consumer engine's job (visibility backoff), so a throttled SES call surfaces quickly.
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=50,
    connect_timeout=5,
    read_timeout=30,
)


# No SDK-level retries for SES: a timed-out SendEmail that SES had accepted would be sent
# again by botocore, behind the idempotency claim's back. The outbound handler retries
# throttling itself (by deferring the message), so nothing is lost.
_SES_CONFIG = _CLIENT_CONFIG.merge(Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments shared by every client (also used by the sync tools and tests)."""
    kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": _CLIENT_CONFIG}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    return kwargs


@dataclass
class Queues:
    """Resolves queue names to URLs once; a configured URL is used as it is."""

    sqs: SQSClient
    _cache: dict[str, str] = field(default_factory=dict)

    async def url(self, name_or_url: str) -> str:
        if name_or_url.startswith(("http://", "https://")):
            return name_or_url
        if name_or_url not in self._cache:
            try:
                response = await self.sqs.get_queue_url(QueueName=name_or_url)
            except ClientError as exc:
                if _is_missing_queue(exc):
                    raise MissingResource(f"queue {name_or_url!r} does not exist") from exc
                raise
            self._cache[name_or_url] = response["QueueUrl"]
        return self._cache[name_or_url]


def _is_missing_queue(exc: ClientError) -> bool:
    return aws_error_code(exc) in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


@dataclass
class AwsClients:
    """Every AWS client the worker uses, opened together and closed together."""

    sqs: SQSClient
    s3: S3Client
    ses: SESV2Client
    dynamodb: DynamoDBClient
    queues: Queues


@asynccontextmanager
async def open_clients(settings: Settings) -> AsyncIterator[AwsClients]:
    session = aioboto3.Session()
    kwargs = client_kwargs(settings)
    async with AsyncExitStack() as stack:
        sqs = await stack.enter_async_context(session.client("sqs", **kwargs))
        s3 = await stack.enter_async_context(session.client("s3", **kwargs))
        ses = await stack.enter_async_context(
            session.client("sesv2", **{**kwargs, "config": _SES_CONFIG})
        )
        ddb = await stack.enter_async_context(session.client("dynamodb", **kwargs))
        yield AwsClients(sqs=sqs, s3=s3, ses=ses, dynamodb=ddb, queues=Queues(sqs))
