"""A large email spools to a temporary file; without a usable one, the record says where.

Fargate gives `/tmp` only as a declared volume (docs/deployment.md): a task without one
cannot spool, and the failure record must name the email and the cause. The Docker test
(tests/deploy/test_image.py) shows it in the image; this one shows the message on any
machine, with the temporary directory pointed at a path that does not exist.
"""

from __future__ import annotations

import tempfile
from email.message import EmailMessage

import pytest

from mailflow.aws.clients import AwsClients
from mailflow.errors import MailflowError, fate
from mailflow.inbound.io import SPOOL_IN_MEMORY
from mailflow.inbound.pipeline import InboundPipeline
from mailflow.ops.inject import inject
from mailflow.settings import Settings
from tests.integration.inbound.support import next_inbound


def large_email(size: int) -> bytes:
    message = EmailMessage()
    message["From"] = "sender@example.net"
    message["To"] = "_app1@example.com"
    message["Subject"] = "large"
    message.set_content("see attachment\n")
    message.add_attachment(b"x" * size, maintype="application", subtype="octet-stream")
    return message.as_bytes()


async def test_without_a_temporary_directory_the_failure_names_the_email_and_cause(
    provisioned: Settings, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    await inject(provisioned, aws, large_email(SPOOL_IN_MEMORY), ["_app1@example.com"])
    message = await next_inbound(provisioned, aws)
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/mailflow-spool")
    with pytest.raises(MailflowError) as info:
        await InboundPipeline(provisioned, aws).handle(message)
    assert str(info.value).startswith(f"reading s3://{provisioned.raw_bucket}/")
    assert fate(info.value).code == "io_error"
    assert isinstance(info.value.__cause__, FileNotFoundError)
