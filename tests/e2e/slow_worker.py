"""A real worker process whose inbound handler is slow, for the SIGTERM drain test.

Runs `mailflow.worker.run_worker` exactly as `mailflow run` does (signals, HTTP, the
engine), swapping only the handler: each message sleeps SLOW_SECONDS, then is written
to the default queue so the test can see that it finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import anyio

from mailflow.aws.clients import AwsClients, open_clients
from mailflow.contracts.failure import FailureRecord
from mailflow.engine.message import BackgroundJob, Outcome, SqsMessage
from mailflow.engine.worker import run_worker
from mailflow.errors import MailflowError
from mailflow.observability.logging import configure_logging
from mailflow.settings import load_settings


@dataclass
class SlowHandler:
    clients: AwsClients
    done_queue: str
    seconds: float
    direction: Any = "inbound"

    def background_jobs(self) -> list[BackgroundJob]:
        return []

    async def handle(self, message: SqsMessage) -> Outcome:
        await anyio.sleep(self.seconds)
        url = await self.clients.queues.url(self.done_queue)
        await self.clients.sqs.send_message(QueueUrl=url, MessageBody=f"done:{message.body}")
        return Outcome()

    async def on_permanent_failure(
        self, message: SqsMessage, error: MailflowError, record: FailureRecord
    ) -> None:
        return None


async def main() -> None:
    settings = load_settings(consumers=["inbound"])
    configure_logging(fmt="json")
    async with open_clients(settings) as clients:
        handler = SlowHandler(clients, settings.default_queue, float(os.environ["SLOW_SECONDS"]))
        await run_worker(settings, handlers={"inbound": handler})


if __name__ == "__main__":
    anyio.run(main)
