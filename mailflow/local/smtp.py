"""SMTP in for `mailflow local`: any mail client or `swaks` can send to the worker.

Each accepted mail is handed to `inject`, exactly as SES's receipt rule would: the raw
message into the raw bucket, an SNS-wrapped "Received" notification onto the inbound
queue, with the SMTP envelope (MAIL FROM / RCPT TO) as the SES envelope. Like SES,
recipients on domains we do not receive for are refused at RCPT time (550), and mail
over the inbound size limit is refused at DATA (552).

Listens on 127.0.0.1 (port 2525 by default: `mailflow local --smtp-port N`), no TLS, no
auth: a development tool, never exposed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailflow.aws.clients import AwsClients
from mailflow.ops.inject import inject
from mailflow.settings import Settings

log = structlog.get_logger("mailflow.local.smtp")


class InjectingHandler:
    """aiosmtpd handler: validate recipients like SES, then inject the mail."""

    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain not in self.settings.domains:
            return "550 5.7.1 Relaying denied: not a domain this server receives for"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw: Any = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        try:
            ses_id = await inject(
                self.settings,
                self.clients,
                data,
                list(envelope.rcpt_tos),
                sender=envelope.mail_from or "",
            )
        except Exception:
            log.exception("smtp.inject_failed")
            return "451 4.3.0 Temporary failure storing the message"
        log.info("smtp.received", ses_message_id=ses_id, recipients=len(envelope.rcpt_tos))
        return f"250 2.0.0 Ok: queued as {ses_id}"


async def serve_smtp(settings: Settings, clients: AwsClients, host: str, port: int) -> None:
    """Serve SMTP on host:port in the running event loop until cancelled."""
    handler = InjectingHandler(settings, clients)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            data_size_limit=settings.inbound.max_email_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="mailflow.localhost",
        ),
        host=host,
        port=port,
    )
    log.info("smtp.listening", host=host, port=port)
    try:
        await server.serve_forever()
    finally:
        server.close()
        await server.wait_closed()
