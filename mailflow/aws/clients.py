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

from mailflow.aws.outbox import Outbox
from mailflow.aws.reachability import Reachability
from mailflow.errors import MissingResource, aws_error_code
from mailflow.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sesv2 import SESV2Client
    from types_aiobotocore_sqs import SQSClient

# Retries inside botocore are for connection blips only; message-level retries are the
# consumer engine's job (visibility backoff), so a throttled SES call surfaces quickly.
# Parameter validation off: it re-walks every request against the service model on the
# event loop (a twentieth of a call's CPU), and AWS validates the same request anyway;
# its ValidationException is judged a bad request (botocore's own error, a BotoCoreError,
# was judged a transport fault and retried).
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=50,
    connect_timeout=5,
    read_timeout=30,
    parameter_validation=False,
)


# No SDK-level retries for SES: a timed-out SendEmail that SES had accepted would be sent
# again by botocore, behind the idempotency claim's back. The outbound handler retries
# throttling itself (by deferring the message), so nothing is lost.
_SES_CONFIG = _CLIENT_CONFIG.merge(Config(retries={"total_max_attempts": 1, "mode": "standard"}))


# Presigned URLs must be SigV4: S3 refuses SigV2 for SSE-KMS objects, and botocore still
# presigns SigV2 in us-east-1 unless told otherwise (an emulator accepts either).
# Payload signing off: over HTTPS with a checksum botocore already sends UNSIGNED-PAYLOAD,
# and the explicit setting keeps it from SHA-256-hashing a 35 MB attachment on the event
# loop against an HTTP endpoint (every byte still carries a CRC32 checksum).
_S3_CONFIG = _CLIENT_CONFIG.merge(
    Config(signature_version="s3v4", s3={"payload_signing_enabled": False})
)
_CONFIGS = {"s3": _S3_CONFIG, "sesv2": _SES_CONFIG}


def client_kwargs(settings: Settings, service: str) -> dict[str, Any]:
    """Arguments of one service's client (also used by the sync tools and tests)."""
    kwargs: dict[str, Any] = {
        "region_name": settings.aws_region,
        "config": _CONFIGS.get(service, _CLIENT_CONFIG),
    }
    endpoint = settings.endpoint_for(service)
    if endpoint:
        kwargs["endpoint_url"] = endpoint
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
    reachability: Reachability = field(default_factory=Reachability)
    # SQS sends and deletes of concurrent handlers, batched (DeleteMessageBatch, ...).
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.sqs)


class _FixedUserAgent:
    """A client's User-Agent, built once instead of twice per request.

    botocore rebuilds the header on every call (before and again after the request is
    created, to list the SDK features the call used, for AWS's own telemetry): about a
    tenth of a call's CPU in the benchmarks. The worker's calls use the same features
    every time, so the string of the first build is the one every request carries.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def to_string(self) -> str:
        return self.text


def fix_user_agent(client: Any) -> None:
    """Give `client` a fixed User-Agent (see `_FixedUserAgent`); a no-op when botocore's
    internals are not the ones this was written against (the per-call build stays)."""
    creator = getattr(client, "_user_agent_creator", None)
    rebuild = getattr(creator, "rebuild_and_replace_user_agent_handler", None)
    if creator is None or rebuild is None:
        return
    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.unregister(f"request-created.{service_id}", rebuild)
    client._user_agent_creator = _FixedUserAgent(creator.to_string())


@asynccontextmanager
async def open_clients(settings: Settings) -> AsyncIterator[AwsClients]:
    session = aioboto3.Session()
    reachability = Reachability()
    async with AsyncExitStack() as stack:

        async def open_client(service: str) -> Any:
            client = session.client(service, **client_kwargs(settings, service))
            opened = await stack.enter_async_context(client)
            reachability.watch(opened, service)
            fix_user_agent(opened)
            return opened

        sqs = await open_client("sqs")
        s3 = await open_client("s3")
        ses = await open_client("sesv2")
        ddb = await open_client("dynamodb")
        yield AwsClients(
            sqs=sqs, s3=s3, ses=ses, dynamodb=ddb, queues=Queues(sqs), reachability=reachability
        )
