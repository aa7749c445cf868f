"""Throttling, daily quota and GetAccount, through the fault-injecting proxy in front of moto."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import pytest
from prometheus_client import REGISTRY

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.engine.message import Deferral, Outcome
from mailflow.ops.provision import provision
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings
from tests.fault_proxy import FaultProxy
from tests.integration.outbound.support import (
    message,
    sent_mail,
)
from tests.integration.outbound.test_pipeline import sqs_message
from tests.readme_examples import README_CAMEL, README_QUICKSTART


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, fault_rate=0.0, seed=7) as running:
        yield running


@pytest.fixture
def proxied_settings(make_settings: Callable[..., Settings], proxy: FaultProxy) -> Settings:
    return make_settings(
        aws_endpoint_url=proxy.url,
        outbound={"default_send_rate": 500.0, "task_count": 2, "send_rate_fraction": 0.5},
    )


@pytest.fixture
async def clients(proxied_settings: Settings) -> AsyncIterator[AwsClients]:
    async with open_clients(proxied_settings) as opened:
        await provision(proxied_settings, opened)
        yield opened


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def deferral(outcome: Outcome) -> Deferral:
    assert outcome.deferral is not None, f"expected a deferral, got {outcome}"
    return outcome.deferral


async def test_throttled_send_is_deferred_then_sent_exactly_once(
    proxied_settings: Settings, clients: AwsClients, proxy: FaultProxy, moto_endpoint: str
) -> None:
    handler = OutboundPipeline(proxied_settings, clients)
    throttled_before = metric("mailflow_ses_throttled_total")
    proxy.set_fault_rate(1.0)
    held = deferral(await handler.handle(sqs_message(README_CAMEL)))
    assert 1 <= held.seconds <= proxied_settings.outbound.throttle_backoff_max_seconds
    assert proxy.stats.sends_faulted >= 1
    assert proxy.stats.sends_forwarded == 0
    assert sent_mail(moto_endpoint) == []
    assert metric("mailflow_ses_throttled_total") == throttled_before + 1
    proxy.set_fault_rate(0.0)
    await handler.handle(sqs_message(README_CAMEL))  # the claim was released
    await handler.handle(sqs_message(README_CAMEL))  # now completed: not sent again
    assert len(sent_mail(moto_endpoint)) == 1


async def test_daily_quota_stops_sending_until_get_account_shows_room(
    proxied_settings: Settings, clients: AwsClients, proxy: FaultProxy, moto_endpoint: str
) -> None:
    handler = OutboundPipeline(proxied_settings, clients)
    proxy.error_code, proxy.error_status = "Throttling", 400
    proxy.error_message = "Daily message quota exceeded."
    proxy.set_fault_rate(1.0)
    first = deferral(await handler.handle(sqs_message(README_CAMEL)))
    assert first.seconds == proxied_settings.outbound.quota_pause_seconds
    assert metric("mailflow_ses_quota_exhausted") == 1
    calls = proxy.stats.sends_seen
    # While paused, nothing reaches SES: the message goes back to the queue at once.
    second = deferral(await handler.handle(sqs_message(README_QUICKSTART)))
    assert "paused" in second.reason
    assert proxy.stats.sends_seen == calls
    # GetAccount still says the quota is used up: stay paused.
    proxy.account = {
        "SendQuota": {"Max24HourSend": 200, "MaxSendRate": 1, "SentLast24Hours": 200},
        "SendingEnabled": True,
    }
    await handler.governor.refresh()
    assert handler.governor.bucket.paused(handler.clock())
    # A new day: room again, sending resumes.
    proxy.account["SendQuota"]["SentLast24Hours"] = 3
    proxy.set_fault_rate(0.0)
    await handler.governor.refresh()
    assert metric("mailflow_ses_quota_exhausted") == 0
    await handler.handle(sqs_message(README_CAMEL))
    assert len(sent_mail(moto_endpoint)) == 1


async def test_get_account_sets_this_tasks_share_of_the_rate(
    proxied_settings: Settings, clients: AwsClients, proxy: FaultProxy
) -> None:
    handler = OutboundPipeline(proxied_settings, clients)
    assert handler.governor.bucket.rate == pytest.approx(500 * 0.5 / 2)  # default until SES answers
    proxy.account = {
        "SendQuota": {"Max24HourSend": 50000, "MaxSendRate": 40, "SentLast24Hours": 7},
        "SendingEnabled": True,
    }
    await handler.governor.refresh()
    assert handler.governor.bucket.rate == pytest.approx(40 * 0.5 / 2)
    assert metric("mailflow_ses_send_rate_limit") == pytest.approx(10)
    assert metric("mailflow_ses_account_max_send_rate") == 40
    assert metric("mailflow_ses_quota_remaining") == 49993
    proxy.account = {
        "SendQuota": {"Max24HourSend": 50000, "MaxSendRate": 40},
        "SendingEnabled": False,
    }
    await handler.governor.refresh()
    assert handler.governor.bucket.paused(handler.clock())


async def test_get_account_unavailable_keeps_the_default_rate(
    handler: OutboundPipeline,
) -> None:
    """moto has no GetAccount: the worker logs, counts and keeps going."""
    errors = metric("mailflow_ses_get_account_errors_total")
    rate = handler.governor.bucket.rate
    await handler.governor.refresh()
    assert handler.governor.bucket.rate == rate
    assert metric("mailflow_ses_get_account_errors_total") == errors + 1


async def test_background_reads_the_account_at_start(
    proxied_settings: Settings, clients: AwsClients, proxy: FaultProxy
) -> None:
    proxy.account = {
        "SendQuota": {"Max24HourSend": 1000, "MaxSendRate": 14, "SentLast24Hours": 0},
        "SendingEnabled": True,
    }
    handler = OutboundPipeline(proxied_settings, clients)
    (job,) = handler.background_jobs()
    with anyio.move_on_after(1.0):
        await job.run()
    assert proxy.stats.account_calls == 1
    assert handler.governor.bucket.rate == pytest.approx(14 * 0.5 / 2)


async def test_long_wait_for_the_rate_limiter_hands_the_message_back(
    make_settings: Callable[..., Settings], aws: AwsClients, moto_endpoint: str
) -> None:
    slow = make_settings(outbound={"default_send_rate": 1.0, "max_rate_wait_seconds": 0})
    handler = OutboundPipeline(slow, aws)
    await handler.handle(sqs_message(README_CAMEL))  # the bucket's one token
    held = deferral(await handler.handle(sqs_message(README_QUICKSTART)))
    assert "rate limit" in held.reason
    assert 1 <= held.seconds <= 7
    assert len(sent_mail(moto_endpoint)) == 1
    # Nothing was claimed for the deferred message: it is sent when it comes back.
    handler.governor.bucket.tokens = 1.0
    await handler.handle(sqs_message(README_QUICKSTART))
    assert len(sent_mail(moto_endpoint)) == 2


async def test_envelope_has_bcc_and_configuration_set(
    make_settings: Callable[..., Settings], proxy: FaultProxy, moto_endpoint: str
) -> None:
    settings = make_settings(
        aws_endpoint_url=proxy.url,
        outbound={"default_send_rate": 500.0, "configuration_set": "tracking"},
    )
    async with open_clients(settings) as opened:
        await provision(settings, opened)  # creates the configuration set too
        await opened.ses.get_configuration_set(ConfigurationSetName="tracking")
        body = message(
            to=[{"address": "to@example.net"}],
            cc=["cc@example.net"],
            bcc=["hidden@example.net"],
            **{"from": {"address": "support@example.com", "name": "Support"}},
        )
        await OutboundPipeline(settings, opened).handle(sqs_message(body))
    (request,) = proxy.send_requests
    assert request["FromEmailAddress"] == "support@example.com"
    assert request["ConfigurationSetName"] == "tracking"
    assert request["Destination"] == {
        "ToAddresses": ["to@example.net"],
        "CcAddresses": ["cc@example.net"],
        "BccAddresses": ["hidden@example.net"],
    }
    (mail,) = sent_mail(moto_endpoint)
    assert "hidden@example.net" not in mail.raw
