"""Batched DynamoDB reads and writes finish what DynamoDB leaves unprocessed.

DynamoDB answers a throttled BatchWriteItem / BatchGetItem with part of the batch done
and the rest named as UnprocessedItems / UnprocessedKeys; moto never does, so a fault
proxy in front of it does (`FaultProxy.dynamodb_unprocessed`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from mailflow.aws.clients import open_clients
from mailflow.aws.table import Table
from mailflow.ops.provision import provision
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy

KEYS = [f"marker#{i}" for i in range(30)]  # two BatchWriteItem calls: 25 and 5


@pytest.fixture
def proxy(moto_endpoint: str) -> FaultProxy:
    return FaultProxy(moto_endpoint, fault_rate=0.0, seed=5)


@pytest.fixture
async def table(make_settings: Callable[..., Settings], proxy: FaultProxy) -> AsyncIterator[Table]:
    """The idempotency table, reached through the proxy."""
    with proxy:
        settings = make_settings(aws_endpoint_url=proxy.url)
        async with open_clients(settings) as aws:
            await provision(settings, aws)
            yield Table(aws.dynamodb, settings.idempotency_table)


async def test_unprocessed_items_and_keys_are_retried_until_done(
    table: Table, proxy: FaultProxy
) -> None:
    proxy.dynamodb_unprocessed = 4
    await table.put_markers(KEYS, ttl_seconds=600)
    assert proxy.stats.unprocessed["BatchWriteItem"] == 4
    proxy.dynamodb_unprocessed = 3
    found = await table.read_many([*KEYS[:10], "never-written"])
    assert proxy.stats.unprocessed["BatchGetItem"] == 3
    assert sorted(found) == sorted(KEYS[:10])
    proxy.dynamodb_unprocessed = 0
    assert sorted(await table.read_many(KEYS)) == sorted(KEYS)


async def test_a_batch_dynamodb_keeps_cutting_short_fails_loudly(
    table: Table, proxy: FaultProxy
) -> None:
    proxy.dynamodb_unprocessed = 100  # each call does one entry: 7 need 7 calls
    with pytest.raises(RuntimeError, match="left items unwritten after 5 tries"):
        await table.put_markers(KEYS[:7], ttl_seconds=600)
    with pytest.raises(RuntimeError, match="left keys unread after 5 tries"):
        await table.read_many(KEYS[:7])
