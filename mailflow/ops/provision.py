"""Create every resource the settings name, idempotently, against any endpoint.

For the embedded environment, LocalStack and tests; production resources come from
Terraform (deploy/terraform), which mirrors these attributes.

Before creating anything it asks every service one read-only question, so an emulator
that lacks a service (LocalStack Community has no SES v2: HTTP 501) stops it with one
line naming the service and its endpoint, and nothing is half-created.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import ClientError, EndpointConnectionError

from mailflow.aws.clients import AwsClients
from mailflow.aws.keys import KEY_ATTRIBUTE, TTL_ATTRIBUTE
from mailflow.errors import ConfigurationError, aws_error_code
from mailflow.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_sqs.literals import QueueAttributeNameType

log = structlog.get_logger("mailflow.provision")

RETENTION_SECONDS = 14 * 24 * 3600
MAX_MESSAGE_BYTES = 262_144


# Error codes emulators give an operation or a service they do not implement.
_NOT_IMPLEMENTED_CODES = {"NotImplemented", "NotImplementedError", "NotImplementedException"}


class ServiceUnavailable(ConfigurationError):
    """An endpoint does not serve a service provisioning needs (e.g. an emulator's 501)."""

    code = "service_unavailable"


def _not_implemented(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 501 or aws_error_code(exc) in _NOT_IMPLEMENTED_CODES


def _first_sentence(text: str, limit: int = 160) -> str:
    sentence = text.strip().split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."


@asynccontextmanager
async def service_call(settings: Settings, service: str) -> AsyncIterator[None]:
    """Turn "this endpoint does not serve `service`" into one ServiceUnavailable line."""
    endpoint = settings.endpoint_for(service) or "the AWS default endpoint"
    variable = f"AWS_ENDPOINT_URL_{service.upper()}"
    try:
        yield
    except ClientError as exc:
        if not _not_implemented(exc):
            raise
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        said = _first_sentence(str(exc.response.get("Error", {}).get("Message", "")))
        raise ServiceUnavailable(
            f"{service} is not available at {endpoint} (HTTP {status}"
            f" {aws_error_code(exc) or 'error'}: {said}); point {variable} at an endpoint"
            " that serves it"
        ) from None
    except EndpointConnectionError:
        raise ServiceUnavailable(
            f"cannot connect to {service} at {endpoint} (set AWS_ENDPOINT_URL or {variable})"
        ) from None


async def check_services(settings: Settings, clients: AwsClients) -> None:
    """One read-only call per service: raises ServiceUnavailable before anything exists."""
    async with service_call(settings, "sqs"):
        await clients.sqs.list_queues(MaxResults=1)
    async with service_call(settings, "s3"):
        await clients.s3.list_buckets()
    async with service_call(settings, "dynamodb"):
        await clients.dynamodb.list_tables(Limit=1)
    async with service_call(settings, "sesv2"):
        # No PageSize: moto 5.2.5 fails on it (str + int in its paginator).
        await clients.ses.list_email_identities()


def queue_name(name_or_url: str) -> str:
    return name_or_url.rstrip("/").rsplit("/", 1)[-1]


# Receives before SQS moves a message on an app's queue (default and app:*) to its DLQ,
# where `provision` creates them (emulators, development). Looking at a queue is a
# receive (`mailflow peek`), and a newcomer looks often: at the worker's limit of ten,
# three peeks moved an app's only email to its DLQ without a word. An app's own retries
# of a poison message still end there, after a hundred.
APP_QUEUE_MAX_RECEIVES = 100


def redrive_max_receives(settings: Settings, role: str = "inbound") -> int:
    """SQS's redrive on the worker's queues sits above its attempts: it catches crash loops."""
    if role == "default" or role.startswith("app:"):
        return APP_QUEUE_MAX_RECEIVES
    return settings.max_attempts + 2


async def _create_queue(
    clients: AwsClients, name: str, attributes: dict[QueueAttributeNameType, str]
) -> str:
    response = await clients.sqs.create_queue(QueueName=name, Attributes=attributes)
    return response["QueueUrl"]


async def provision_queue(
    clients: AwsClients,
    settings: Settings,
    name: str,
    *,
    with_redrive: bool = True,
    max_receives: int | None = None,
) -> str:
    base: dict[QueueAttributeNameType, str] = {
        "MessageRetentionPeriod": str(RETENTION_SECONDS),
        "VisibilityTimeout": str(settings.visibility_timeout_seconds),
        "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
    }
    if not with_redrive:
        return await _create_queue(clients, name, base)
    dlq_url = await _create_queue(clients, f"{name}-dlq", base)
    attrs = await clients.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": attrs["Attributes"]["QueueArn"],
        "maxReceiveCount": str(max_receives or redrive_max_receives(settings)),
    }
    url = await _create_queue(clients, name, {**base, "RedrivePolicy": json.dumps(redrive)})
    # create_queue does not update an existing queue's attributes; make them converge.
    await clients.sqs.set_queue_attributes(
        QueueUrl=url, Attributes={**base, "RedrivePolicy": json.dumps(redrive)}
    )
    return url


async def provision_bucket(clients: AwsClients, settings: Settings, bucket: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if settings.aws_region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
    try:
        await clients.s3.create_bucket(**kwargs)
    except ClientError as exc:
        # BucketAlreadyExists means another account owns that name: not ours to use.
        if aws_error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


async def provision_table(clients: AwsClients, table: str) -> None:
    try:
        await clients.dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        waiter = clients.dynamodb.get_waiter("table_exists")
        await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    except ClientError as exc:
        if aws_error_code(exc) != "ResourceInUseException":
            raise
    try:
        await clients.dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except ClientError as exc:  # already enabled
        if aws_error_code(exc) != "ValidationException":
            raise


async def provision_identity(clients: AwsClients, domain: str) -> None:
    try:
        await clients.ses.create_email_identity(EmailIdentity=domain)
    except ClientError as exc:
        if aws_error_code(exc) != "AlreadyExistsException":
            raise


async def provision_configuration_set(clients: AwsClients, name: str) -> None:
    """The set every email is sent through; in AWS (Terraform) it publishes SES's events.

    An emulator keeps the name and publishes nothing (mailflow.local.ses_events does).
    """
    try:
        await clients.ses.create_configuration_set(ConfigurationSetName=name)
    except ClientError as exc:
        # SESv2 says AlreadyExistsException; moto, SES v1's ConfigurationSetAlreadyExists...
        if aws_error_code(exc) not in {
            "AlreadyExistsException",
            "ConfigurationSetAlreadyExistsException",
        }:
            raise


async def provision(settings: Settings, clients: AwsClients) -> list[str]:
    """Create everything; returns a human-readable list of what now exists.

    Raises ServiceUnavailable (a ConfigurationError: one line, exit 2 from the CLI) when
    an endpoint does not serve a service, before creating anything.
    """
    await check_services(settings, clients)
    done: list[str] = []
    for role, queue in settings.all_queues().items():
        name = queue_name(queue)
        async with service_call(settings, "sqs"):
            await provision_queue(
                clients,
                settings,
                name,
                with_redrive=role != "dlq",
                max_receives=redrive_max_receives(settings, role),
            )
        done.append(f"queue {name}" + ("" if role == "dlq" else f" (+ {name}-dlq)"))
    for bucket in (settings.raw_bucket, settings.attachments_bucket):
        async with service_call(settings, "s3"):
            await provision_bucket(clients, settings, bucket)
        done.append(f"bucket {bucket}")
    async with service_call(settings, "dynamodb"):
        await provision_table(clients, settings.idempotency_table)
    done.append(f"table {settings.idempotency_table} (TTL on {TTL_ATTRIBUTE})")
    for domain in settings.domains:
        async with service_call(settings, "sesv2"):
            await provision_identity(clients, domain)
        done.append(f"SES identity {domain}")
    configuration_set = settings.outbound.configuration_set
    if configuration_set:
        async with service_call(settings, "sesv2"):
            await provision_configuration_set(clients, configuration_set)
        done.append(f"SES configuration set {configuration_set}")
    log.info("provision.done", resources=len(done))
    return done
