"""The third consumer: SES's sending events, read from the events queue.

For each event, in this order (a crash anywhere redelivers the event, and every step is
safe to repeat):

1. the evidence exactly-once needs (`mailflow.outbound.once`): the first event's SES
   message id on the attempt's item, which also says whose email it was; and the events
   watermark;
2. the suppression list: hard bounces and complaints suppress, soft bounces count;
3. the app that sent the email gets `email.delivered`, `email.bounced`, ... (same
   `eventId` on a repeat).

An event that is not one (bad JSON, no `mail`) is a failure record in the DLQ; no app is
told, since no app wrote it. An event about mail mailflow did not send (no token, or an
attempt older than the feedback window) still updates the suppression list.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from mailflow.aws.clients import AwsClients
from mailflow.aws.table import Table
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.message import BackgroundJob, Direction, Outcome, SqsMessage
from mailflow.errors import MailflowError, aws_errors
from mailflow.feedback import metrics
from mailflow.feedback.event import SesEvent, parse_event
from mailflow.feedback.report import SentBy, app_event, bounce_type, soft_bounced, suppressions
from mailflow.feedback.suppression import SuppressionList
from mailflow.outbound.io import StatusEvents
from mailflow.outbound.once import SendEvidence
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.feedback")

_NOT_OURS = "_none"


class SesEventsPipeline:
    """Records what each SES event proves, keeps the suppression list, tells the app."""

    direction: Direction = "events"

    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        table = Table(clients.dynamodb, settings.idempotency_table)
        self.evidence = SendEvidence(table, settings.feedback.window_seconds)
        self.suppression = SuppressionList(table, settings.feedback)
        self.status = StatusEvents(clients, settings, table)

    def background_jobs(self) -> Sequence[BackgroundJob]:
        return ()

    async def handle(self, message: SqsMessage) -> Outcome:
        event = parse_event(message.body)
        with aws_errors("recording an SES event"):
            sent_by = await self.evidence.record(event)
            suppressed = await self._suppress(event, sent_by)
        self._count(event, sent_by)
        if sent_by is None:
            log.debug("feedback.not_ours", event_type=event.event_type)
            return Outcome()
        await self._tell(event, sent_by, suppressed)
        return Outcome(app=sent_by.app)

    async def _suppress(self, event: SesEvent, sent_by: SentBy | None) -> list[str]:
        if not self.settings.feedback.suppression:
            return []
        app = sent_by.app if sent_by else None
        hard = suppressions(event)
        suppressed = await self.suppression.apply(hard, app)
        for s in hard:
            metrics.SUPPRESSED.labels(s.reason).inc()
        bounce_id = str(event.detail.get("feedbackId") or event.ses_message_id)
        for address in soft_bounced(event):
            if await self.suppression.soft_bounce(address, bounce_id, app):
                metrics.SUPPRESSED.labels("soft_bounces").inc()
                suppressed.append(address.strip().lower())
        if suppressed:
            log.warning("feedback.suppressed", addresses=suppressed, by_app=app)
        return suppressed

    async def _tell(self, event: SesEvent, sent_by: SentBy, suppressed: list[str]) -> None:
        feedback = app_event(event, sent_by, suppressed)
        if feedback is None:
            return
        if sent_by.app not in self.settings.apps:
            log.warning("feedback.app_unknown", app=sent_by.app, event_type=event.event_type)
            return
        await self.status.feedback(sent_by.app, feedback.type, feedback.to_wire())
        log.info(
            _LOG_NAMES.get(feedback.type, "feedback.told"),
            app=sent_by.app,
            correlation_id=sent_by.correlation_id,
            ses_message_id=event.ses_message_id,
            recipients=len(getattr(feedback, "recipients", [])),
            **({"bounce_type": bounce_type(event)} if event.event_type == "Bounce" else {}),
        )

    def _count(self, event: SesEvent, sent_by: SentBy | None) -> None:
        app = sent_by.app if sent_by else _NOT_OURS
        metrics.EVENTS.labels(app, _METRIC_TYPES.get(event.event_type, "other")).inc()
        if event.event_type == "Bounce":
            metrics.BOUNCES.labels(app, bounce_type(event)).inc()

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        """Nothing to tell: SES wrote the event, and the failure record stands."""


# Log lines operators' metric filters and alarms match (deploy/terraform/alarms.tf).
_LOG_NAMES = {"email.bounced": "feedback.bounced", "email.complained": "feedback.complained"}
_METRIC_TYPES = {
    "Send": "sent",
    "Delivery": "delivered",
    "Bounce": "bounced",
    "Complaint": "complained",
    "DeliveryDelay": "delayed",
    "Reject": "rejected",
    "Open": "opened",
    "Click": "clicked",
}
