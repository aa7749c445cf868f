"""Provisioning, peek, redrive and schema generation against the moto server."""

from __future__ import annotations

import json
from pathlib import Path

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.aws.keys import TTL_ATTRIBUTE
from mailflow.cli import main
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.preflight import check_resources
from mailflow.ops.provision import provision, redrive_max_receives
from mailflow.ops.queues import peek, redrive
from mailflow.settings import Settings
from tests.helpers import queue_count, receive_all


async def test_provision_is_idempotent_and_complete(provisioned: Settings, aws: AwsClients) -> None:
    await provision(provisioned, aws)  # second run: no error, same state
    await check_resources(provisioned, aws)
    url = await aws.queues.url(provisioned.app_queue("app1"))
    attrs = (await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    redrive_policy = json.loads(attrs["RedrivePolicy"])
    assert redrive_policy["deadLetterTargetArn"].endswith(":mailflow-app1-dlq")
    assert int(redrive_policy["maxReceiveCount"]) == redrive_max_receives(provisioned)
    assert int(attrs["VisibilityTimeout"]) == provisioned.visibility_timeout_seconds
    ttl = await aws.dynamodb.describe_time_to_live(TableName=provisioned.idempotency_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == TTL_ATTRIBUTE
    identities = await aws.ses.list_email_identities()
    names = {i["IdentityName"] for i in identities["EmailIdentities"]}
    assert {"example.com", "example.org"} <= names


async def test_peek_does_not_consume(provisioned: Settings, aws: AwsClients) -> None:
    url = await aws.queues.url(provisioned.app_queue("app1"))
    await aws.sqs.send_message(QueueUrl=url, MessageBody='{"hello": "world"}')
    seen = await peek(provisioned, "app1", 10)
    assert [m["body"] for m in seen] == [{"hello": "world"}]
    assert await queue_count(aws.sqs, url) == 1


async def test_redrive_puts_bodies_back_where_they_came_from(
    provisioned: Settings, aws: AwsClients
) -> None:
    dlq = await aws.queues.url(provisioned.dlq)
    record = FailureRecord(
        direction="outbound",
        source_queue=provisioned.outbound_queue,
        sqs_message_id="abc",
        error_code="aws_Throttling",
        reason="throttled",
        retryable=True,
        attempts=8,
        last_attempt_at="2026-11-27T00:00:00Z",  # type: ignore[arg-type]
        body='{"original": 1}',
    )
    await aws.sqs.send_message(QueueUrl=dlq, MessageBody=record.to_wire())
    await aws.sqs.send_message(QueueUrl=dlq, MessageBody="not a record")
    assert await redrive(provisioned, 10, dry_run=True) == 1
    assert await redrive(provisioned, 10, dry_run=False) == 1
    outbound = await aws.queues.url(provisioned.outbound_queue)
    assert await receive_all(aws.sqs, outbound, expect=1, timeout=5) == ['{"original": 1}']
    # the unparseable record is kept as evidence (hidden for this run only), not dropped
    assert await queue_count(aws.sqs, dlq) == 1


def test_schema_command_writes_every_contract(tmp_path: Path, settings: Settings) -> None:
    assert main(["schema", str(tmp_path)]) == 0
    written = {p.name for p in tmp_path.iterdir()}
    assert "failure-record.schema.json" in written
    schema = json.loads((tmp_path / "failure-record.schema.json").read_text())
    assert "errorCode" in schema["properties"]
    assert "body" in schema["required"]


async def test_missing_resources_are_reported_together(settings: Settings) -> None:
    async with open_clients(settings) as clients:
        try:
            await check_resources(settings, clients)
        except Exception as exc:
            text = str(exc)
        else:
            raise AssertionError("nothing is provisioned: the check must fail")
    assert "queue 'mailflow-dlq'" in text
    assert "bucket 'mailflow-raw'" in text
