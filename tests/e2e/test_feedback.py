"""Bounces, complaints, suppression and mail loops through the real worker process.

The worker runs all three consumers against the moto server; SES's events come from
mailflow.local.ses_events (what SES's mailbox simulator reports), the suppression list
is managed with the real `mailflow suppression` command (and a refused email replayed
with `mailflow redrive` once its address is let through), and for the loop test the test
plays the Internet: mail SES "sent" to our own domain comes back in as inbound mail
(stored and notified as SES would), where two naive auto-responder apps answer it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients
from mailflow.local.ses_events import SesEventFeed, bounce_detail, ses_event, sns_envelope
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.helpers import WorkerProcess, receive_all, within_one_clock_hour
from tests.integration.ops.test_inject import run_cli
from tests.integration.outbound.support import SentMail, message, sent_mail

pytestmark = pytest.mark.slow

BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"
LOOP_LIMIT = 3


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        ses_events_queue="mailflow-ses-events",
        outbound={
            "default_send_rate": 500.0,
            "configuration_set": "mailflow",
            "loop_limit_per_hour": LOOP_LIMIT,
        },
    )


@pytest.fixture
def worker(
    provisioned: Settings, worker_process: Callable[..., Any], moto_endpoint: str
) -> Callable[[], Any]:
    @contextmanager
    def start() -> Iterator[WorkerProcess]:
        with SesEventFeed(moto_endpoint, provisioned), worker_process(provisioned) as proc:
            proc.wait_ready()
            yield proc

    return start


async def put(aws: AwsClients, settings: Settings, body: dict[str, Any]) -> None:
    url = await aws.queues.url(settings.outbound_queue)
    await aws.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def outbound(app: str, to: str, correlation_id: str, **email: Any) -> dict[str, Any]:
    body = message(to=[{"address": to}], **{"from": {"address": f"_{app}@example.com"}}, **email)
    body.update(source=app, correlationId=correlation_id)
    return body


async def told(
    aws: AwsClients, settings: Settings, app: str, expect: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    url = await aws.queues.url(settings.app_queue(app))
    bodies = await receive_all(aws.sqs, url, expect=expect, timeout=timeout)
    return [json.loads(b) for b in bodies]


def of(events: list[dict[str, Any]], kind: str, correlation_id: str) -> dict[str, Any]:
    (found,) = [e for e in events if e["type"] == kind and e["correlationId"] == correlation_id]
    return found


def soft_bounce(mail: SentMail) -> str:
    now_event = ses_event(
        "Bounce",
        ses_message_id=mail.ses_id,
        source=mail.source,
        destinations=["full@example.net"],
        raw_mime=mail.raw,
        sent_at=_now(),
        configuration_set="mailflow",
        detail=bounce_detail(["full@example.net"], _now(), "Transient", "MailboxFull"),
    )
    return json.dumps(sns_envelope(now_event, "arn:aws:sns:us-east-1:123456789012:events"))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_bounces_and_complaints_reach_the_app_and_keep_the_suppression_list(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    with worker():
        await put(aws, provisioned, outbound("app1", BOUNCE, "b-1"))
        await put(aws, provisioned, outbound("app1", COMPLAINT, "c-1"))
        await put(aws, provisioned, outbound("app1", "full@example.net", "s-1"))
        # sent x3; b-1 bounced; c-1 delivered and complained; s-1 delivered
        events = await told(aws, provisioned, "app1", 7)
        assert sorted(e["type"] for e in events) == [
            "email.bounced", "email.complained", "email.delivered", "email.delivered",
            "email.sent", "email.sent", "email.sent",
        ]  # fmt: skip
        bounced = of(events, "email.bounced", "b-1")
        assert (bounced["bounceType"], bounced["suppressed"]) == ("Permanent", [BOUNCE])
        assert bounced["sesMessageId"] == of(events, "email.sent", "b-1")["sesMessageId"]
        assert of(events, "email.complained", "c-1")["suppressed"] == [COMPLAINT]

        (soft,) = [m for m in sent_mail(moto_endpoint) if "full@example.net" in m.destinations]
        events_url = await aws.queues.url(provisioned.ses_events_queue or "")
        await aws.sqs.send_message(QueueUrl=events_url, MessageBody=soft_bounce(soft))
        (transient,) = await told(aws, provisioned, "app1", 1)
        assert (transient["type"], transient["correlationId"]) == ("email.bounced", "s-1")
        assert (transient["bounceType"], transient["suppressed"]) == ("Transient", [])

        check = await anyio.to_thread.run_sync(run_cli, provisioned, "suppression", "check", BOUNCE)
        assert check.returncode == 1, check.stderr
        assert "by app app1: permanent bounce (General)" in check.stdout
        listed = await anyio.to_thread.run_sync(run_cli, provisioned, "suppression", "list")
        assert sorted(line.split("\t")[0] for line in listed.stdout.splitlines()) == [
            BOUNCE,
            COMPLAINT,
        ]  # the soft bounce did not suppress

        await put(aws, provisioned, outbound("app1", BOUNCE, "b-2"))
        (failed,) = await told(aws, provisioned, "app1", 1)
        assert (failed["type"], failed["errorCode"]) == ("email.failed", "suppressed")
        assert BOUNCE in failed["reason"]

        removed = await anyio.to_thread.run_sync(
            run_cli, provisioned, "suppression", "remove", BOUNCE
        )
        assert removed.returncode == 0, removed.stderr
        assert "removed" in removed.stdout
        # The refused email's failure record, replayed once the address is let through.
        replay = await anyio.to_thread.run_sync(
            run_cli, provisioned, "redrive", "--app", "app1", "--code", "suppressed"
        )
        assert replay.returncode == 0, replay.stderr
        assert "moved 1," in replay.stdout
        events = await told(aws, provisioned, "app1", 2)  # sent, and SES bounces it again
        assert of(events, "email.sent", "b-2")["sesMessageId"]
        again = await anyio.to_thread.run_sync(run_cli, provisioned, "redrive", "--app", "app1")
        assert "moved 0," in again.stdout
    assert len(sent_mail(moto_endpoint)) == 4  # b-1, c-1, s-1, then b-2 once: after the fix


async def test_two_auto_responder_apps_stop_at_the_loop_limit(
    worker: Any, provisioned: Settings, aws: AwsClients, moto_endpoint: str
) -> None:
    """app1 and app2 answer every email automatically, threading nothing (the naive kind
    that starts ping-pong): each may send LOOP_LIMIT automatic emails per hour to the
    other, an address mailflow has seen send automated mail."""
    ours = {"_app1@example.com": "app1", "_app2@example.com": "app2"}
    bridged: set[str] = set()
    refused: dict[str, dict[str, Any]] = {}
    await within_one_clock_hour(90)  # the limit is per clock hour; the run takes ~10 s

    async def internet() -> None:  # SES delivers mail for our domain back to SES receiving
        while True:
            for mail in sent_mail(moto_endpoint):
                local = [d for d in dict.fromkeys(mail.destinations) if d in ours]
                if mail.ses_id not in bridged and local:
                    bridged.add(mail.ses_id)
                    await inject(provisioned, aws, mail.raw.encode(), local, sender=mail.source)
            await anyio.sleep(0.2)

    async def responder(app: str) -> None:
        url = await aws.queues.url(provisioned.app_queue(app))
        replies = 0
        while app not in refused:
            for body in await receive_all(aws.sqs, url, expect=1, timeout=2):
                event = json.loads(body)
                if event["type"] == "email.received":
                    replies += 1
                    to = event["email"]["from"]["address"]
                    await put(aws, provisioned, outbound(app, to, f"{app}-auto-{replies}"))
                elif event["type"] == "email.failed":
                    refused[app] = event

    with worker():
        async with anyio.create_task_group() as group:
            group.start_soon(internet)
            group.start_soon(responder, "app1")
            group.start_soon(responder, "app2")
            await put(aws, provisioned, outbound("app1", "_app2@example.com", "app1-start"))
            with anyio.fail_after(60):
                while not refused:
                    await anyio.sleep(0.2)
            await anyio.sleep(2)  # nothing further moves
            group.cancel_scope.cancel()

    between = [m for m in sent_mail(moto_endpoint) if set(m.destinations) & set(ours)]
    by_app = {a: sum(m.source == a for m in between) for a in ours}
    # app1's first email went to an address not yet known to send automated mail; from
    # then on each side's automatic mail counts: LOOP_LIMIT replies each, then refused.
    assert by_app == {"_app1@example.com": 1 + LOOP_LIMIT, "_app2@example.com": LOOP_LIMIT}
    (stopped,) = refused.values()
    assert stopped["errorCode"] == "loop_suspected"
    assert f"already sent {LOOP_LIMIT} automatic emails" in stopped["reason"]
