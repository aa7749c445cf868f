"""`mailflow redrive` against the moto server: what it moves, what it leaves, and a replay
after a configuration fix that the worker then sends exactly once."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.cli import main
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.consumer import Consumer, EngineConfig, build_failure_record
from mailflow.engine.message import SqsMessage
from mailflow.errors import PolicyRejected
from mailflow.ops.provision import provision
from mailflow.ops.redrive import Selection, redrive
from mailflow.outbound.pipeline import OutboundPipeline
from mailflow.settings import Settings
from tests.helpers import queue_count, receive_all, settings_env
from tests.integration.ops.test_cli_errors import BASE, mailflow
from tests.integration.outbound.support import sent_mail
from tests.readme_examples import README_QUICKSTART

NOW = datetime.now(UTC)


def record(settings: Settings, sqs_message_id: str, **overrides: Any) -> FailureRecord:
    values: dict[str, Any] = {
        "direction": "outbound",
        "source_queue": settings.outbound_queue,
        "sqs_message_id": sqs_message_id,
        "error_code": "sender_not_allowed",
        "reason": "app 'app1' may not send as x@example.net",
        "retryable": False,
        "attempts": 1,
        "last_attempt_at": NOW - timedelta(minutes=5),
        "app": "app1",
        "body": json.dumps({"id": sqs_message_id}),
    }
    values.update(overrides)
    return FailureRecord(**values)


async def put(aws: AwsClients, settings: Settings, *bodies: str) -> str:
    url = await aws.queues.url(settings.dlq)
    for body in bodies:
        await aws.sqs.send_message(QueueUrl=url, MessageBody=body)
    return url


async def visible_now(aws: AwsClients, url: str, expect: int) -> list[str]:
    """The bodies a consumer can receive right away (none still held by a scan).

    Received with visibility 0, so looking leaves them visible; `expect` bounds the wait.
    """
    bodies: dict[str, str] = {}
    with anyio.move_on_after(3):
        while len(bodies) < expect:
            response = await aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            )
            bodies.update((m["MessageId"], m["Body"]) for m in response.get("Messages", []))
    assert await queue_count(aws.sqs, url) == len(bodies)
    return list(bodies.values())


async def test_filters_move_only_the_matching_records_and_leave_the_rest_visible(
    provisioned: Settings, aws: AwsClients
) -> None:
    p = provisioned
    inbound = record(p, "in-app1", direction="inbound", source_queue=p.inbound_queue)
    records = [
        record(p, "match-1"),
        record(p, "match-2", error_code="unknown_app", app=None, body='{"source": "app1"}'),
        record(p, "other-app", app="app2"),
        record(p, "other-code", error_code="invalid_message"),
        inbound,
        record(p, "too-old", last_attempt_at=NOW - timedelta(days=3)),
    ]
    dlq = await put(aws, p, *(r.to_wire() for r in records))
    selection = Selection(
        app="app1",
        codes=frozenset({"sender_not_allowed", "unknown_app"}),
        direction="outbound",
        since=NOW - timedelta(days=1),
    )
    report = await redrive(p, selection, limit=10)
    assert sorted(r.sqs_message_id for r in report.moved) == ["match-1", "match-2"]
    assert (report.left, report.skipped, report.unparseable, report.failed) == (4, 0, 0, [])
    assert report.still_hidden == 0
    outbound = await aws.queues.url(p.outbound_queue)
    moved = await receive_all(aws.sqs, outbound, expect=2, timeout=5)
    assert sorted(moved) == sorted([records[0].body, records[1].body])
    left = await visible_now(aws, dlq, expect=4)
    assert sorted(FailureRecord.model_validate_json(b).sqs_message_id for b in left) == [
        "in-app1",
        "other-app",
        "other-code",
        "too-old",
    ]
    inbound_url = await aws.queues.url(p.inbound_queue)
    assert await queue_count(aws.sqs, inbound_url) == 0


async def test_limit_caps_what_moves_and_the_rest_stays(
    provisioned: Settings, aws: AwsClients
) -> None:
    dlq = await put(aws, provisioned, *(record(provisioned, f"r{n}").to_wire() for n in range(5)))
    report = await redrive(provisioned, Selection(), limit=2)
    assert len(report.moved) == 2
    assert report.limit_reached
    assert "stopped at --limit 2" in "\n".join(report.summary())
    assert len(await visible_now(aws, dlq, expect=3)) == 3


def cli_env(settings: Settings) -> dict[str, str]:
    return {**BASE, **settings_env(settings)}


async def test_dry_run_prints_the_table_and_moves_nothing(
    provisioned: Settings, aws: AwsClients
) -> None:
    p = provisioned
    chosen = record(p, "dry-1", reason="sender domain example.net is not allowed " * 4)
    other = record(p, "dry-2", app="app2")
    dlq = await put(aws, p, chosen.to_wire(), other.to_wire(), "not a record")
    result = await anyio.to_thread.run_sync(
        lambda: mailflow("redrive", "--dry-run", "--app", "app1", env=cli_env(p))
    )
    assert result.returncode == 0, result.stderr
    header, row, summary = result.stdout.splitlines()
    assert header.split() == [
        "sqsMessageId",
        "direction",
        "app",
        "errorCode",
        "lastAttemptAt",
        "sourceQueue",
        "reason",
    ]
    assert row.split()[:6] == [
        "dry-1",
        "outbound",
        "app1",
        "sender_not_allowed",
        chosen.model_dump(mode="json")["last_attempt_at"],
        p.outbound_queue,
    ]
    assert row.endswith("...")
    assert summary == (
        f"{p.dlq}: would move 1, skipped (not replayable) 0, left (not matching) 1, unparseable 1"
    )
    outbound = await aws.queues.url(p.outbound_queue)
    assert await queue_count(aws.sqs, outbound) == 0
    assert sorted(await visible_now(aws, dlq, expect=3)) == sorted(
        [chosen.to_wire(), other.to_wire(), "not a record"]
    )


async def test_a_record_marked_not_replayable_moves_only_when_forced(
    provisioned: Settings, aws: AwsClients
) -> None:
    notification = json.dumps({"Type": "Notification", "Message": "{}"})
    virus = build_failure_record(
        "inbound",
        SqsMessage(
            queue=provisioned.inbound_queue,
            queue_url="http://unused",
            message_id="virus-1",
            receipt_handle="unused",
            body=notification,
            attributes={"ApproximateReceiveCount": "1"},
        ),
        PolicyRejected("email rejected: SES virus scan: FAIL", code="virus_detected"),
    )
    dlq = await put(aws, provisioned, virus.to_wire())
    report = await redrive(provisioned, Selection(direction="inbound"), limit=10)
    assert (len(report.moved), report.skipped) == (0, 1)
    assert "--force" in "\n".join(report.summary())
    assert await visible_now(aws, dlq, expect=1) == [virus.to_wire()]
    inbound = await aws.queues.url(provisioned.inbound_queue)
    assert await queue_count(aws.sqs, inbound) == 0

    forced = await redrive(provisioned, Selection(direction="inbound"), limit=10, force=True)
    assert ([r.sqs_message_id for r in forced.moved], forced.skipped) == (["virus-1"], 0)
    assert await receive_all(aws.sqs, inbound, expect=1, timeout=5) == [notification]
    assert await queue_count(aws.sqs, dlq) == 0


async def test_unparseable_records_stay_and_are_counted(
    provisioned: Settings, aws: AwsClients
) -> None:
    junk = ["not a record", '{"type": "mailflow.failure"}', json.dumps({"hello": "world"})]
    good = record(provisioned, "good")
    dlq = await put(aws, provisioned, *junk, good.to_wire())
    report = await redrive(provisioned, Selection(), limit=10)
    assert ([r.sqs_message_id for r in report.moved], report.unparseable) == (["good"], 3)
    assert sorted(await visible_now(aws, dlq, expect=3)) == sorted(junk)


async def test_a_record_whose_queue_is_gone_stays_and_fails_the_run(
    provisioned: Settings, aws: AwsClients
) -> None:
    lost = record(provisioned, "lost", source_queue="mailflow-deleted-queue")
    dlq = await put(aws, provisioned, lost.to_wire(), record(provisioned, "fine").to_wire())
    result = await anyio.to_thread.run_sync(lambda: mailflow("redrive", env=cli_env(provisioned)))
    assert result.returncode == 1
    assert "failed: lost -> mailflow-deleted-queue:" in result.stderr
    assert "does not exist" in result.stderr
    assert result.stdout.splitlines()[-1].endswith(", failed 1")
    assert await visible_now(aws, dlq, expect=1) == [lost.to_wire()]


def test_a_wrong_filter_is_one_line_and_touches_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused before settings are read or any AWS call is made (exit 2: fix the input)."""
    assert main(["redrive", "--since", "yesterday"]) == 2
    assert capsys.readouterr().err == (
        "mailflow redrive: --since: 'yesterday' is neither an ISO-8601 time"
        " (2026-03-03T09:00:00Z) nor a relative one (30m, 2h, 3d, 1w)\n"
    )
    assert main(["redrive", "--since", "1h", "--until", "2h"]) == 2
    assert "is not before --until" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["redrive", "--limit", "0"])
    assert exited.value.code == 2
    assert "--limit: '0' is not a whole number of at least 1" in capsys.readouterr().err


# --- done when: a configuration fix, then a replay the worker sends exactly once -----

FAST = EngineConfig(
    concurrency=1,
    wait_time_seconds=1,
    visibility_timeout_seconds=10,
    max_attempts=3,
    retry_base_seconds=1,
    retry_max_seconds=2,
)


async def consume_outbound_until(
    settings: Settings,
    aws: AwsClients,
    done: Callable[[], Any],
    config: EngineConfig = FAST,
    timeout: float = 20.0,
) -> None:
    """Run the real outbound consumer (engine + pipeline) until `await done()` is true."""
    consumer = Consumer(
        queue=settings.outbound_queue,
        handler=OutboundPipeline(settings, aws),
        clients=aws,
        dlq=settings.dlq,
        config=config,
    )
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, stop, 5.0)
        with anyio.fail_after(timeout):
            while not await done():
                await anyio.sleep(0.1)
        stop.set()


async def test_mail_of_an_app_configured_late_is_replayed_and_sent_exactly_once(
    make_settings: Callable[..., Settings], moto_endpoint: str
) -> None:
    fast = {"default_send_rate": 500.0}
    before = make_settings(outbound=fast)
    apps = {app: config.model_dump(mode="json") for app, config in before.apps.items()}
    after = make_settings(outbound=fast, apps={**apps, "app3": {}})
    body = copy.deepcopy(README_QUICKSTART)
    body["source"] = "app3"
    body["email"]["from"] = {"address": "_app3@example.com", "name": "App3"}
    async with open_clients(after) as aws:
        # Terraform created app3's queue; the worker's MAILFLOW_APPS does not name it yet.
        await provision(after, aws)
        outbound = await aws.queues.url(before.outbound_queue)
        dlq = await aws.queues.url(before.dlq)
        await aws.sqs.send_message(QueueUrl=outbound, MessageBody=json.dumps(body))

        async def failed() -> bool:
            return await queue_count(aws.sqs, dlq) == 1

        # Short polls: a long poll still pending at moto after this consumer stops would
        # take (and hide) the message the redrive puts back a moment later.
        await consume_outbound_until(before, aws, failed, replace(FAST, wait_time_seconds=0))
        (written,) = await visible_now(aws, dlq, expect=1)
        first = FailureRecord.model_validate_json(written)
        assert (first.error_code, first.app, first.replayable) == ("unknown_app", None, True)
        assert sent_mail(moto_endpoint) == []

        # The record is there twice (a redrive whose delete failed, or an operator's
        # double replay): the worker must still send once.
        await aws.sqs.send_message(QueueUrl=dlq, MessageBody=written)
        report = await redrive(after, Selection(app="app3"), limit=10)
        assert [r.sqs_message_id for r in report.moved] == [first.sqs_message_id] * 2
        again = await redrive(after, Selection(app="app3"), limit=10)
        assert (again.moved, again.left) == ([], 0)
        assert await queue_count(aws.sqs, dlq) == 0

        async def drained() -> bool:
            return await queue_count(aws.sqs, outbound) == 0

        await consume_outbound_until(after, aws, drained)
        (mail,) = sent_mail(moto_endpoint)
        assert mail.source == "_app3@example.com"
        assert mail.parsed["Subject"] == "Test Response"
        app3 = await aws.queues.url(after.app_queue("app3"))
        # Both copies were handled (the outbound queue is empty): one event, not two.
        assert await queue_count(aws.sqs, app3) == 1
        (event,) = [json.loads(b) for b in await visible_now(aws, app3, expect=1)]
        assert (event["type"], event["correlationId"]) == ("email.sent", "test-1700000000")
        assert event["sesMessageId"] == mail.ses_id
        assert await queue_count(aws.sqs, dlq) == 0
