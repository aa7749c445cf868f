"""Getting mail in without SES: `mailflow inject` and the local SMTP listener use this.

`inject` does what SES's receipt rule does: it writes the raw email to the raw bucket
(with the trace and verdict headers SES prepends) and sends the inbound queue the
notification SES would publish through SNS: same shape, same field names, so the worker
path under test is the production path. Works against any endpoint (embedded moto,
LocalStack, or a real account's test stack).

Dev-only AWS calls live in this file on purpose: the task-role policy is derived from
the other modules, and the worker never writes to the raw bucket.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import quote_plus

from mailflow.aws.clients import AwsClients
from mailflow.settings import Settings

Shape = Literal["sns", "raw", "s3"]
ACCOUNT_ID = "123456789012"
RAW_PREFIX = "inbound/"  # the Terraform module's raw_object_prefix default
_SES_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_VERDICT_NAMES = ("spam", "virus", "spf", "dkim", "dmarc")


def new_ses_message_id() -> str:
    """An id shaped like SES's (28 base-32 characters)."""
    return "".join(secrets.choice(_SES_ID_ALPHABET) for _ in range(28))


def ses_stored_email(
    raw: bytes,
    *,
    ses_message_id: str,
    recipients: Sequence[str],
    sender: str,
    verdicts: Mapping[str, str],
    received_at: datetime,
    region: str,
) -> bytes:
    """The raw email with the headers SES prepends before storing it in S3."""
    rcpt = f"\r\n for {recipients[0]}" if len(recipients) == 1 else ""
    auth = (
        f"amazonses.com; spf={verdicts['spf'].lower()} (spfCheck: domain of"
        f" {sender.rpartition('@')[2] or 'unknown'}); dkim={verdicts['dkim'].lower()};"
        f" dmarc={verdicts['dmarc'].lower()}"
    )
    lines = [
        f"Return-Path: <{sender}>",
        f"Received: from mail.localhost (mail.localhost [127.0.0.1])\r\n by inbound-smtp."
        f"{region}.amazonaws.com with SMTP id {ses_message_id}{rcpt};"
        f"\r\n {format_datetime(received_at)}",
        f"X-SES-Spam-Verdict: {verdicts['spam']}",
        f"X-SES-Virus-Verdict: {verdicts['virus']}",
        f"Authentication-Results: {auth}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii") + raw


def _raw_headers(raw: bytes) -> Message:
    """Header fields as raw text: SES copies them, it does not interpret them (and the
    modern header registry can recurse on a hostile value)."""
    return BytesHeaderParser(policy=policy.compat32).parsebytes(raw)


def _headers(raw: bytes) -> tuple[list[dict[str, str]], dict[str, Any]]:
    message = _raw_headers(raw)
    headers = [{"name": k, "value": str(v)} for k, v in message.items()]
    common: dict[str, Any] = {}
    for field, name in (("from", "From"), ("to", "To"), ("cc", "Cc")):
        values = message.get_all(name)
        if values:
            common[field] = [str(v) for v in values]
    for field, name in (
        ("returnPath", "Return-Path"),
        ("date", "Date"),
        ("messageId", "Message-ID"),
        ("subject", "Subject"),
    ):
        value = message.get(name)
        if value is not None:
            common[field] = str(value)
    return headers, common


def ses_notification(
    *,
    bucket: str,
    key: str,
    ses_message_id: str,
    recipients: Sequence[str],
    sender: str,
    stored: bytes,
    verdicts: Mapping[str, str],
    received_at: datetime,
    region: str,
) -> dict[str, Any]:
    """An SES "Received" notification of the S3 action (AWS's documented format)."""
    stamp = received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers, common = _headers(stored)
    receipt: dict[str, Any] = {
        "timestamp": stamp,
        "processingTimeMillis": 412,
        "recipients": list(recipients),
        **{f"{name}Verdict": {"status": verdicts[name]} for name in _VERDICT_NAMES},
        "action": {
            "type": "S3",
            "topicArn": f"arn:aws:sns:{region}:{ACCOUNT_ID}:mailflow-inbound",
            "bucketName": bucket,
            "objectKeyPrefix": RAW_PREFIX,
            "objectKey": key,
        },
    }
    if verdicts["dmarc"] == "FAIL":
        receipt["dmarcPolicy"] = "none"
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": stamp,
            "source": sender,
            "messageId": ses_message_id,
            "destination": list(recipients),
            "headersTruncated": False,
            "headers": headers,
            "commonHeaders": common,
        },
        "receipt": receipt,
    }


def sns_envelope(message: Mapping[str, Any], *, region: str, timestamp: datetime) -> dict[str, Any]:
    """What SNS delivers to an SQS subscription without raw message delivery."""
    topic = f"arn:aws:sns:{region}:{ACCOUNT_ID}:mailflow-inbound"
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": json.dumps(message),
        "Timestamp": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "SignatureVersion": "1",
        "Signature": base64.b64encode(secrets.token_bytes(256)).decode(),
        "SigningCertURL": f"https://sns.{region}.amazonaws.com/"
        "SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
        f"&SubscriptionArn={topic}:{uuid.uuid4()}",
    }


def s3_event(
    *, bucket: str, key: str, size: int, timestamp: datetime, region: str
) -> dict[str, Any]:
    """An S3 ObjectCreated:Put event notification (keys URL-encoded, '+' for space)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AROAEXAMPLE:ses"},
                "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": secrets.token_hex(8).upper(),
                    "x-amz-id-2": base64.b64encode(secrets.token_bytes(48)).decode(),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "mailflow-raw-created",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3EXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": secrets.token_hex(16),
                        "sequencer": secrets.token_hex(9).upper(),
                    },
                },
            }
        ]
    }


def _sender_of(raw: bytes) -> str:
    """The From address, for the envelope sender; any failure falls back to a default."""
    try:
        header: Any = BytesHeaderParser(policy=policy.default).parsebytes(raw).get("From")
        addresses = header.addresses if header is not None else ()
    except Exception:  # hostile From (RecursionError, ...): the test mail still goes in
        addresses = ()
    return str(addresses[0].addr_spec) if addresses else "sender@localhost"


async def inject(
    settings: Settings,
    clients: AwsClients,
    raw: bytes,
    recipients: Sequence[str],
    *,
    sender: str | None = None,
    verdicts: Mapping[str, str] | None = None,
    shape: Shape = "sns",
    ses_message_id: str | None = None,
    key: str | None = None,
) -> str:
    """Store `raw` as SES would and notify the inbound queue; returns the SES message id."""
    ses_id, body = await store(
        settings,
        clients,
        raw,
        recipients,
        sender=sender,
        verdicts=verdicts,
        shape=shape,
        ses_message_id=ses_message_id,
        key=key,
    )
    queue_url = await clients.queues.url(settings.inbound_queue)
    await clients.sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    return ses_id


async def store(
    settings: Settings,
    clients: AwsClients,
    raw: bytes,
    recipients: Sequence[str],
    *,
    sender: str | None = None,
    verdicts: Mapping[str, str] | None = None,
    shape: Shape = "sns",
    ses_message_id: str | None = None,
    key: str | None = None,
) -> tuple[str, str]:
    """The first half of `inject`: store the email; return its SES id and notification body.

    Useful to deliver one notification several times (duplicates) or in another way.
    """
    if not recipients:
        raise ValueError("at least one recipient (--to) is required")
    ses_id = ses_message_id or new_ses_message_id()
    now = datetime.now(UTC)
    envelope_sender = sender or _sender_of(raw)
    all_verdicts = {name: "PASS" for name in _VERDICT_NAMES} | {
        k.lower(): v.upper() for k, v in (verdicts or {}).items()
    }
    stored = ses_stored_email(
        raw,
        ses_message_id=ses_id,
        recipients=recipients,
        sender=envelope_sender,
        verdicts=all_verdicts,
        received_at=now,
        region=settings.aws_region,
    )
    object_key = key or f"{RAW_PREFIX}{ses_id}"
    await clients.s3.put_object(Bucket=settings.raw_bucket, Key=object_key, Body=stored)
    body = notification_body(
        settings,
        shape,
        key=object_key,
        ses_id=ses_id,
        recipients=recipients,
        sender=envelope_sender,
        stored=stored,
        verdicts=all_verdicts,
        now=now,
    )
    return ses_id, body


def notification_body(
    settings: Settings,
    shape: Shape,
    *,
    key: str,
    ses_id: str,
    recipients: Sequence[str],
    sender: str,
    stored: bytes,
    verdicts: Mapping[str, str],
    now: datetime,
) -> str:
    """The SQS body for one stored email, in the requested delivery shape."""
    region = settings.aws_region
    if shape == "s3":
        return json.dumps(
            s3_event(
                bucket=settings.raw_bucket, key=key, size=len(stored), timestamp=now, region=region
            )
        )
    notification = ses_notification(
        bucket=settings.raw_bucket,
        key=key,
        ses_message_id=ses_id,
        recipients=recipients,
        sender=sender,
        stored=stored,
        verdicts=verdicts,
        received_at=now,
        region=region,
    )
    if shape == "raw":
        return json.dumps(notification)
    return json.dumps(sns_envelope(notification, region=region, timestamp=now))
