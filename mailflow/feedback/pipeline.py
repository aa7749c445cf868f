"""The third consumer: SES's sending events, read from the events queue.

For now it keeps what exactly-once needs (`mailflow.outbound.once`): for each event, the
evidence that the attempt whose token it carries reached SES, and the events watermark
(how far SES's events have come), which lets an attempt that left no event be proven
unsent. An event that is not one (bad JSON, no `mail`) is a failure record in the DLQ;
no app is told, since no app wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.message import BackgroundJob, Direction, Outcome, SqsMessage
from mailflow.errors import MailflowError, aws_errors
from mailflow.feedback.event import parse_event
from mailflow.outbound.once import SendEvidence
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.feedback")


class SesEventsPipeline:
    """Records what each SES event proves about mailflow's send attempts."""

    direction: Direction = "events"

    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.evidence = SendEvidence(Table(clients.dynamodb, settings.idempotency_table))

    def background_jobs(self) -> Sequence[BackgroundJob]:
        return ()

    async def handle(self, message: SqsMessage) -> Outcome:
        event = parse_event(message.body)
        with aws_errors("recording an SES event"):
            await self.evidence.record(event)
        log.debug(
            "feedback.event",
            event_type=event.event_type,
            ses_message_id=event.ses_message_id,
            ours=event.token is not None,
        )
        return Outcome()

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        """Nothing to tell: SES wrote the event, and the failure record stands."""
