"""SES's sending events for the embedded endpoint, which sends mail but publishes none.

In AWS, SES publishes an event for each email sent through a configuration set (to SNS,
and on to the events queue). moto keeps what it "sent" and publishes nothing, so this
feed stands in for SES there: it watches moto's sent-mail store (in this process: the
embedded endpoint of `mailflow local`, or the tests' moto server) and, for each new
email, puts a `Send` and a `Delivery` event on the events queue in the shape AWS
documents (SNS `Notification` envelope around the event publishing JSON), with the email's
headers and its `mailflow-send` tag as SES would echo them. It emits nothing for mail that
did not reach the store, which is the point: no event is the truth for an unsent email.

    with SesEventFeed(endpoint, settings):   # a thread; stopped on exit
        ...
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import Parser
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import getaddresses
from types import TracebackType
from typing import Any

import boto3

from mailflow.aws.clients import client_kwargs
from mailflow.feedback.event import SEND_TOKEN_HEADER, SEND_TOKEN_TAG
from mailflow.settings import Settings

ACCOUNT_ID = "123456789012"
# SES's mailbox simulator: what each address makes SES report (the rest: delivered).
SIMULATOR = {
    "bounce@simulator.amazonses.com": "bounce",
    "complaint@simulator.amazonses.com": "complaint",
    "suppressionlist@simulator.amazonses.com": "suppressed",
}
_POLL_SECONDS = 0.2


def ses_event(
    event_type: str,
    *,
    ses_message_id: str,
    source: str,
    destinations: list[str],
    raw_mime: str,
    sent_at: datetime,
    configuration_set: str,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One SES event publishing record (docs: "Contents of event data that Amazon SES
    publishes to Amazon SNS"); `detail` is the type-specific object (`delivery`, ...)."""
    headers = Parser(policy=default_policy).parsestr(raw_mime, headersonly=True)
    tags: dict[str, list[str]] = {
        "ses:configuration-set": [configuration_set],
        "ses:source-ip": ["192.0.2.10"],
        "ses:from-domain": [source.rpartition("@")[2]],
        "ses:caller-identity": ["mailflow-worker"],
    }
    token = headers.get(SEND_TOKEN_HEADER)
    if token:
        tags[SEND_TOKEN_TAG] = [str(token)]
    key = event_type[0].lower() + event_type[1:].replace(" ", "")
    return {
        "eventType": event_type,
        "mail": {
            "timestamp": _iso(sent_at),
            "source": source,
            "sourceArn": f"arn:aws:ses:us-east-1:{ACCOUNT_ID}:identity/{source.rpartition('@')[2]}",
            "sendingAccountId": ACCOUNT_ID,
            "messageId": ses_message_id,
            "destination": destinations,
            "headersTruncated": False,
            "headers": [{"name": name, "value": str(value)} for name, value in headers.items()],
            "commonHeaders": {
                "from": [str(headers.get("From", source))],
                "to": [str(headers.get("To", ""))] if headers.get("To") else [],
                "messageId": str(headers.get("Message-ID", "")),
                "subject": str(headers.get("Subject", "")),
            },
            "tags": tags,
        },
        key: detail or {},
    }


def delivery_detail(destinations: list[str], at: datetime) -> dict[str, Any]:
    return {
        "timestamp": _iso(at),
        "processingTimeMillis": 546,
        "recipients": destinations,
        "smtpResponse": "250 2.6.0 Message received",
        "reportingMTA": "a8-70.smtp-out.amazonses.com",
    }


def bounce_detail(
    recipients: list[str], at: datetime, bounce_type: str = "Permanent", subtype: str = "General"
) -> dict[str, Any]:
    """A `bounce` object as SES publishes it (the mailbox simulator's bounce@ gives this
    one; `suppressionlist@` gives subtype OnAccountSuppressionList)."""
    permanent = bounce_type == "Permanent"
    return {
        "bounceType": bounce_type,
        "bounceSubType": subtype,
        "bouncedRecipients": [
            {
                "emailAddress": r,
                "action": "failed",
                "status": "5.1.1" if permanent else "4.2.2",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                if permanent
                else "smtp; 452 4.2.2 mailbox full",
            }
            for r in recipients
        ],
        "timestamp": _iso(at),
        "feedbackId": f"0100{uuid.uuid4().hex}-000000",
        "reportingMTA": "dns; email.example.com",
    }


def complaint_detail(recipients: list[str], at: datetime) -> dict[str, Any]:
    """A `complaint` object as SES publishes it for the simulator's complaint@."""
    return {
        "complainedRecipients": [{"emailAddress": r} for r in recipients],
        "timestamp": _iso(at),
        "feedbackId": f"0100{uuid.uuid4().hex}-000000",
        "userAgent": "Amazon SES Mailbox Simulator",
        "complaintFeedbackType": "abuse",
        "arrivalDate": _iso(at),
    }


def sns_envelope(event: dict[str, Any], topic_arn: str) -> dict[str, Any]:
    """SNS's `Notification` wrapper, as an SQS subscription without raw delivery gets it."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": json.dumps(event),
        "Timestamp": _iso(datetime.now(UTC)),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def _addresses(destinations: Any, raw_mime: str) -> list[str]:
    """The envelope SES was given. moto keeps a simple send's destinations as a dict of
    lists; for a raw send, the request's Destination followed by every address in the
    To, Cc and Bcc headers (moto's ses `send_raw_email`), which are cut off here: SES
    delivers to the Destination only."""
    if isinstance(destinations, dict):
        listed = [str(a) for values in destinations.values() for a in values]
    else:
        message = Parser(policy=compat32).parsestr(raw_mime, headersonly=True)
        fields = [message[h] for h in ("TO", "CC", "BCC") if h in message]
        from_headers = [a for _, a in getaddresses([str(f) for f in fields]) if a]
        listed = [str(a) for a in destinations]
        if from_headers and len(listed) >= len(from_headers):
            listed = listed[: len(listed) - len(from_headers)]
    return list(dict.fromkeys(listed))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sent_messages() -> Iterator[Any]:
    """Every email moto's SES (v1 and v2 share it) holds, in every account and region."""
    from moto.ses.models import ses_backends

    for regions in list(ses_backends.values()):
        for backend in list(regions.values()):
            yield from list(backend.sent_messages)


class SesEventFeed:
    """A thread that turns each newly sent email in moto into Send and Delivery events."""

    def __init__(self, endpoint: str, settings: Settings) -> None:
        if not settings.ses_events_queue:
            raise ValueError("SesEventFeed needs MAILFLOW_SES_EVENTS_QUEUE")
        self.settings = settings
        self.queue = settings.ses_events_queue
        self.configuration_set = settings.outbound.configuration_set or "mailflow"
        kwargs = client_kwargs(settings, "sqs")
        kwargs["endpoint_url"] = endpoint
        self._sqs = boto3.client("sqs", **kwargs)
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ses-event-feed", daemon=True)
        self.published = 0

    def __enter__(self) -> SesEventFeed:
        self._seen = {m.id for m in sent_messages()}  # mail sent before: not ours to tell
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        url = self._sqs.get_queue_url(QueueName=self.queue.rstrip("/").rsplit("/", 1)[-1])[
            "QueueUrl"
        ]
        topic = f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:mailflow-ses-events"
        while not self._stop.wait(_POLL_SECONDS):
            for message in sent_messages():
                if message.id in self._seen:
                    continue
                self._seen.add(message.id)
                for event in self._events(message):
                    self._sqs.send_message(
                        QueueUrl=url, MessageBody=json.dumps(sns_envelope(event, topic))
                    )
                    self.published += 1

    def _events(self, message: Any) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        raw = str(getattr(message, "raw_data", ""))
        common: dict[str, Any] = {
            "ses_message_id": message.id,
            "source": str(getattr(message, "source", "")),
            "destinations": _addresses(getattr(message, "destinations", []), raw),
            "raw_mime": raw,
            "sent_at": now,
            "configuration_set": self.configuration_set,
        }
        by_fate: dict[str, list[str]] = {}
        for address in common["destinations"]:
            by_fate.setdefault(SIMULATOR.get(address.lower(), "delivered"), []).append(address)
        events = [ses_event("Send", **common)]
        delivered = by_fate.get("delivered", []) + by_fate.get("complaint", [])
        if delivered:
            events.append(ses_event("Delivery", **common, detail=delivery_detail(delivered, now)))
        if by_fate.get("bounce"):
            events.append(
                ses_event("Bounce", **common, detail=bounce_detail(by_fate["bounce"], now))
            )
        if by_fate.get("suppressed"):
            detail = bounce_detail(by_fate["suppressed"], now, subtype="OnAccountSuppressionList")
            events.append(ses_event("Bounce", **common, detail=detail))
        if by_fate.get("complaint"):
            detail = complaint_detail(by_fate["complaint"], now)
            events.append(ses_event("Complaint", **common, detail=detail))
        return events
