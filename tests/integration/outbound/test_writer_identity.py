"""An app is who AWS says it is: SQS's SenderId, not the message's `source`, decides.

moto stamps every message with the same SenderId whoever writes it (real SQS gives each
principal its own, as documented), so these tests read the id moto uses and configure
producers around it: app1's producers include it, app2's do not. That exercises the
worker's check on real SQS attributes; that AWS gives distinct writers distinct ids is
AWS's documented behaviour, not something an emulator can show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import REGISTRY

from mailflow.aws.clients import AwsClients
from mailflow.engine.consumer import Consumer, EngineConfig
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings
from tests.helpers import queue_count, receive_all
from tests.integration.outbound.support import message, sent_mail


async def moto_sender_id(aws: AwsClients, settings: Settings) -> str:
    url = await aws.queues.url(settings.default_queue)
    await aws.sqs.send_message(QueueUrl=url, MessageBody="who am I")
    response = await aws.sqs.receive_message(QueueUrl=url, AttributeNames=["All"])
    (raw,) = response["Messages"]
    await aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=raw["ReceiptHandle"])
    return str(raw["Attributes"]["SenderId"])


async def run_outbound(settings: Settings, aws: AwsClients, *bodies: dict[str, Any]) -> None:
    """Put `bodies` on the outbound queue and run the real consumer until all settled."""
    url = await aws.queues.url(settings.outbound_queue)
    for body in bodies:
        await aws.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    consumer = Consumer(
        queue=settings.outbound_queue,
        handler=OutboundPipeline(settings, aws),
        clients=aws,
        dlq=settings.dlq,
        config=EngineConfig(wait_time_seconds=1, visibility_timeout_seconds=30),
    )
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, 10.0)
        with anyio.fail_after(30):
            while await queue_count(aws.sqs, url):
                await anyio.sleep(0.1)
        stop.set()


def as_app2() -> dict[str, Any]:
    """An outbound message claiming app2 (written, in these tests, by app1's principal)."""
    body = message(**{"from": {"address": "_app2@example.com"}})
    body["source"] = "app2"
    return body


def refused(app: str) -> float:
    value = REGISTRY.get_sample_value("mailflow_outbound_writer_refused_total", {"app": app})
    return value or 0.0


async def test_a_writer_cannot_send_as_another_app(
    make_settings: Callable[..., Settings],
    aws: AwsClients,
    provisioned: Settings,
    moto_endpoint: str,
) -> None:
    writer = await moto_sender_id(aws, provisioned)
    settings = make_settings(
        apps={
            "app1": {"producers": [writer.split(":")[0]]},
            "app2": {"producers": ["AROAAPP2ONLY"]},
        },
        outbound={"default_send_rate": 500.0, "writer_identity": "enforce"},
    )
    before = refused("app2")
    await run_outbound(settings, aws, as_app2(), message())

    mails = sent_mail(moto_endpoint)
    assert [m.source for m in mails] == ["_app1@example.com"]  # app1's own mail only
    assert refused("app2") == before + 1
    app2 = await aws.queues.url(settings.app_queue("app2"))
    assert await queue_count(aws.sqs, app2) == 0  # no event on the victim's queue
    dlq = await aws.queues.url(settings.dlq)
    (record,) = [json.loads(b) for b in await receive_all(aws.sqs, dlq, expect=1)]
    assert record["errorCode"] == "writer_not_allowed"
    assert record["retryable"] is False
    assert record["details"] == {"claimedApp": "app2", "senderId": writer}
    assert record.get("app") is None


async def test_a_trusted_writer_may_replay_for_any_app(
    make_settings: Callable[..., Settings],
    aws: AwsClients,
    provisioned: Settings,
    moto_endpoint: str,
) -> None:
    """The worker's own role (deferrals) and an operator's (redrive) write for every app."""
    writer = await moto_sender_id(aws, provisioned)
    settings = make_settings(
        apps={"app1": {}, "app2": {"producers": ["AROAAPP2ONLY"]}},
        outbound={
            "default_send_rate": 500.0,
            "writer_identity": "enforce",
            "trusted_writers": writer,
        },
    )
    await run_outbound(settings, aws, as_app2())
    assert [m.source for m in sent_mail(moto_endpoint)] == ["_app2@example.com"]


async def test_with_the_check_off_source_is_believed(
    make_settings: Callable[..., Settings],
    aws: AwsClients,
    provisioned: Settings,
    moto_endpoint: str,
) -> None:
    settings = make_settings(
        apps={"app1": {}, "app2": {"producers": ["AROAAPP2ONLY"]}},
        outbound={"default_send_rate": 500.0, "writer_identity": "off"},
    )
    await run_outbound(settings, aws, as_app2())
    assert [m.source for m in sent_mail(moto_endpoint)] == ["_app2@example.com"]
