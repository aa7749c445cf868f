"""Batched SQS sends and deletes against a real SQS endpoint: fewer requests, same answers.

Each handler still learns its own message's fate: a refused entry fails its own caller
with the error a single SendMessage would have raised, and its neighbours go through.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from mailflow.aws.clients import AwsClients
from mailflow.aws.outbox import Outbox, payload_size
from mailflow.settings import Settings
from tests.helpers import queue_count, receive_all


async def concurrently(calls: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def run(i: int) -> None:
        try:
            results[i] = await calls[i]()
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(run, i)
    return results


async def received(aws: AwsClients, queue: str, count: int) -> list[str]:
    """Receipt handles of `count` messages put on the queue and received."""
    for i in range(count):
        await aws.sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
    handles: list[str] = []
    while len(handles) < count:
        response = await aws.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60
        )
        handles += [m["ReceiptHandle"] for m in response.get("Messages", [])]
    return handles


@pytest.fixture
async def queue(aws: AwsClients, provisioned: Settings) -> str:
    return await aws.queues.url(provisioned.app_queue("app1"))


async def test_ten_concurrent_sends_are_one_request_and_all_arrive(
    aws: AwsClients, queue: str
) -> None:
    outbox = Outbox(aws.sqs)
    sends = [
        lambda i=i: outbox.send_message(
            QueueUrl=queue,
            MessageBody=f"event {i}",
            MessageAttributes={"type": {"DataType": "String", "StringValue": "email.sent"}},
        )
        for i in range(10)
    ]
    answers = await concurrently(sends)
    assert all(isinstance(a, dict) and a["MessageId"] for a in answers)
    assert outbox.calls == 1
    received = await receive_all(aws.sqs, queue, expect=10)
    assert sorted(received) == sorted(f"event {i}" for i in range(10))


async def test_a_refused_entry_fails_alone_with_the_single_call_error(
    aws: AwsClients, queue: str
) -> None:
    outbox = Outbox(aws.sqs)
    sends = [
        lambda i=i: outbox.send_message(QueueUrl=queue, MessageBody=f"ok {i}") for i in range(4)
    ]
    # DelaySeconds above SQS's 900 s cap: refused, whether per entry or for the batch.
    sends.append(lambda: outbox.send_message(QueueUrl=queue, MessageBody="bad", DelaySeconds=901))
    answers = await concurrently(sends)
    assert all(isinstance(a, dict) for a in answers[:4])
    assert isinstance(answers[4], ClientError)
    received = await receive_all(aws.sqs, queue, expect=4)
    assert sorted(received) == [f"ok {i}" for i in range(4)]


async def test_concurrent_deletes_are_one_request(aws: AwsClients, queue: str) -> None:
    handles = await received(aws, queue, 8)
    outbox = Outbox(aws.sqs)
    answers = await concurrently(
        [lambda h=h: outbox.delete_message(QueueUrl=queue, ReceiptHandle=h) for h in handles]
    )
    assert all(isinstance(a, dict) for a in answers)
    assert outbox.calls == 1
    assert await queue_count(aws.sqs, queue) == 0


async def test_a_refused_delete_fails_alone_and_its_neighbours_are_deleted(
    aws: AwsClients, queue: str
) -> None:
    handles = await received(aws, queue, 3)
    outbox = Outbox(aws.sqs)
    answers = await concurrently(
        [
            lambda h=h: outbox.delete_message(QueueUrl=queue, ReceiptHandle=h)
            for h in [*handles, "not-a-receipt-handle"]
        ]
    )
    assert all(isinstance(a, dict) for a in answers[:3])
    assert isinstance(answers[3], ClientError)
    assert answers[3].response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    assert await queue_count(aws.sqs, queue) == 0


async def test_a_batch_never_exceeds_the_sqs_payload_limit(aws: AwsClients, queue: str) -> None:
    outbox = Outbox(aws.sqs)
    body = "x" * 100_000  # three of these exceed 256 KiB together
    answers = await concurrently(
        [lambda: outbox.send_message(QueueUrl=queue, MessageBody=body) for _ in range(5)]
    )
    assert all(isinstance(a, dict) for a in answers), answers
    assert outbox.calls == 3  # 2 + 2 + 1
    assert payload_size({"MessageBody": body}) == 100_000
    assert len(await receive_all(aws.sqs, queue, expect=5)) == 5
