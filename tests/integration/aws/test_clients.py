"""The worker's clients: a User-Agent built once, requests still signed and answered."""

from __future__ import annotations

from typing import Any

from mailflow.aws.clients import open_clients
from mailflow.settings import Settings


async def test_every_request_carries_the_same_user_agent_and_is_answered(
    provisioned: Settings,
) -> None:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["User-Agent"].decode())

    async with open_clients(provisioned) as aws:
        aws.sqs.meta.events.register("before-send.sqs", capture)
        url = await aws.queues.url(provisioned.inbound_queue)
        for _ in range(3):
            await aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert len(seen) == 4
    assert len(set(seen)) == 1
    assert seen[0].startswith(("aioboto3/", "Boto3/", "Botocore/", "aiobotocore/"))


async def test_an_invalid_request_is_refused_by_the_endpoint_as_a_bad_request(
    provisioned: Settings,
) -> None:
    """Client-side validation is off: AWS's answer decides, and it is a bad request."""
    import pytest
    from botocore.exceptions import ClientError

    from mailflow.errors import fate

    async with open_clients(provisioned) as aws:
        url = await aws.queues.url(provisioned.inbound_queue)
        with pytest.raises(ClientError) as info:
            await aws.sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=5000)
    assert fate(info.value).code == "aws_bad_request"
