"""Provisioning, peek, redrive and schema generation against the moto server."""

from __future__ import annotations

import json
from pathlib import Path

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.aws.keys import TTL_ATTRIBUTE
from mailflow.cli import _peek_summary, main
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.preflight import check_resources
from mailflow.ops.provision import APP_QUEUE_MAX_RECEIVES, provision, provision_queue
from mailflow.ops.queues import peek
from mailflow.ops.redrive import Selection, redrive
from mailflow.settings import Settings
from tests.helpers import queue_count, receive_all


async def test_provision_is_idempotent_and_complete(provisioned: Settings, aws: AwsClients) -> None:
    await provision(provisioned, aws)  # second run: no error, same state
    await check_resources(provisioned, aws)
    url = await aws.queues.url(provisioned.app_queue("app1"))
    attrs = (await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    redrive_policy = json.loads(attrs["RedrivePolicy"])
    assert redrive_policy["deadLetterTargetArn"].endswith(":mailflow-app1-dlq")
    assert int(redrive_policy["maxReceiveCount"]) == APP_QUEUE_MAX_RECEIVES
    inbound = await aws.queues.url(provisioned.inbound_queue)
    attrs = (await aws.sqs.get_queue_attributes(QueueUrl=inbound, AttributeNames=["All"]))[
        "Attributes"
    ]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] in (
        provisioned.max_attempts + 2,
        str(provisioned.max_attempts + 2),
    )
    assert int(attrs["VisibilityTimeout"]) == provisioned.visibility_timeout_seconds
    ttl = await aws.dynamodb.describe_time_to_live(TableName=provisioned.idempotency_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == TTL_ATTRIBUTE
    identities = await aws.ses.list_email_identities()
    names = {i["IdentityName"] for i in identities["EmailIdentities"]}
    assert {"example.com", "example.org"} <= names


async def test_twenty_peeks_leave_the_email_for_the_app(
    provisioned: Settings, aws: AwsClients
) -> None:
    """Each look is one receive, and an app's queue allows a hundred: the app still gets it."""
    url = await aws.queues.url(provisioned.app_queue("app1"))
    await aws.sqs.send_message(QueueUrl=url, MessageBody='{"hello": "world"}')
    for look in range(1, 21):
        found = await peek(provisioned, "app1", 10)
        assert [(m["body"], m["receiveCount"]) for m in found.messages] == [
            ({"hello": "world"}, look)
        ]
        assert found.still_hidden == 0
    received = await aws.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert [m["Body"] for m in received.get("Messages", [])] == ['{"hello": "world"}']
    dlq = await aws.queues.url(provisioned.app_queue("app1") + "-dlq")
    assert await queue_count(aws.sqs, dlq) == 0


async def test_peek_shows_many_messages_once_each_and_gives_them_back(
    provisioned: Settings, aws: AwsClients
) -> None:
    url = await aws.queues.url(provisioned.app_queue("app1"))
    for n in range(25):
        await aws.sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"n": n}),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )
    found = await peek(provisioned, "app1", 30)
    assert sorted(m["body"]["n"] for m in found.messages) == list(range(25))
    assert {m["receiveCount"] for m in found.messages} == {1}
    assert {m["messageAttributes"]["kind"] for m in found.messages} == {"test"}
    assert all(m["sentAt"].endswith("Z") for m in found.messages)
    # given back at once, not after the 30 s hold: a consumer sees all of them now
    seen: set[str] = set()
    for _ in range(10):
        response = await aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60
        )
        seen.update(m["MessageId"] for m in response.get("Messages", []))
    assert seen == {m["messageId"] for m in found.messages}


async def test_peek_names_the_dead_letters_and_the_messages_at_their_limit(
    provisioned: Settings, aws: AwsClients
) -> None:
    await provision_queue(aws, provisioned, "mailflow-peek-limit", max_receives=2)
    url = await aws.queues.url("mailflow-peek-limit")
    await aws.sqs.send_message(QueueUrl=url, MessageBody="x")
    dlq = await aws.queues.url("mailflow-peek-limit-dlq")
    await aws.sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    first = await peek(provisioned, "mailflow-peek-limit", 10)
    assert (first.max_receives, first.dead_letters) == (2, "mailflow-peek-limit-dlq")
    assert first.dead_letter_count == 1
    assert first.at_limit() == []
    second = await peek(provisioned, "mailflow-peek-limit", 10)
    assert second.at_limit() == [second.messages[0]["messageId"]]
    summary = "\n".join(_peek_summary(second))
    assert "its next receive, by anyone, moves it to mailflow-peek-limit-dlq" in summary
    assert (
        "mailflow-peek-limit-dlq holds 1 message(s): mailflow peek mailflow-peek-limit-dlq"
        in summary
    )


async def test_peek_resolves_an_apps_dead_letter_queue(
    provisioned: Settings, aws: AwsClients
) -> None:
    dlq = await aws.queues.url(provisioned.app_queue("app1") + "-dlq")
    await aws.sqs.send_message(QueueUrl=dlq, MessageBody='{"dead": true}')
    found = await peek(provisioned, "app1-dlq", 10)
    assert found.queue == "mailflow-app1-dlq"
    assert [m["body"] for m in found.messages] == [{"dead": True}]
    assert found.max_receives is None


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
    assert len((await redrive(provisioned, Selection(), limit=10, dry_run=True)).moved) == 1
    assert len((await redrive(provisioned, Selection(), limit=10)).moved) == 1
    outbound = await aws.queues.url(provisioned.outbound_queue)
    assert await receive_all(aws.sqs, outbound, expect=1, timeout=5) == ['{"original": 1}']
    # the unparseable record is kept as evidence, not dropped
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
