"""`mailflow send FILE.json`: put an outbound message on the queue, for development and smoke tests.

Not used by the worker (the task role's policy is derived from the other modules). The
message is validated locally first with the worker's own rules, so a typo is reported
here, with the field name, instead of as an `email.failed` event later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mailflow.aws.clients import open_clients
from mailflow.errors import MailflowError
from mailflow.outbound.validation import parse_message, validate
from mailflow.settings import Settings


@dataclass(frozen=True)
class SendResult:
    """What `send` did: the SQS message id, or the problems that stopped it."""

    sqs_message_id: str | None
    problems: list[str]


def check_message(body: str, settings: Settings) -> list[str]:
    """The validation problems of `body` as the worker would find them ([] when valid).

    Only the checks that need no AWS access: attachments are not fetched, SES not asked.
    """
    try:
        validate(parse_message(body, settings), settings)
    except MailflowError as exc:
        return [f"{exc.code}: {exc}"]
    return []


async def send(settings: Settings, body: str, *, check: bool = True) -> SendResult:
    """Validate (unless `check` is False) and put `body` on the outbound queue."""
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        return SendResult(None, [f"invalid JSON: {exc}"])
    if check:
        problems = check_message(body, settings)
        if problems:
            return SendResult(None, problems)
    async with open_clients(settings) as clients:
        url = await clients.queues.url(settings.outbound_queue)
        response = await clients.sqs.send_message(QueueUrl=url, MessageBody=body)
    return SendResult(response["MessageId"], [])
