"""The embedded development environment: moto's server in-process, on loopback only.

No Docker, no AWS account, no network: `mailflow local` starts this, provisions every
resource the settings name, and runs the real worker against it.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.server import ThreadedMotoServer

DEFAULTS = {
    "MAILFLOW_DOMAINS": "example.com",
    "MAILFLOW_APPS": "app1,app2",
    # One developer writes for every app here, and moto reports one SenderId for all.
    "MAILFLOW_OUTBOUND__WRITER_IDENTITY": "off",
    "AWS_ACCESS_KEY_ID": "mailflow-local",
    "AWS_SECRET_ACCESS_KEY": "mailflow-local",
    "AWS_REGION": "us-east-1",
    # SES's sending events, as in AWS: the configuration set publishes them to this queue
    # (mailflow.local.ses_events stands in for SES, which moto does not emulate there).
    "MAILFLOW_OUTBOUND__CONFIGURATION_SET": "mailflow",
    "MAILFLOW_SES_EVENTS_QUEUE": "mailflow-ses-events",
    # A terminal, not a log pipeline: one readable line per event.
    "MAILFLOW_LOG_FORMAT": "console",
}


def _fast_moto_clock() -> None:
    """Give moto's SQS a cheap clock: same values, a thousandth of the cost.

    moto's SQS reads its clock (`unix_time_millis`, datetime arithmetic at ~13 µs a call)
    about a hundred times per queued message on every ReceiveMessage, so one receive on a
    queue of 600 messages took a second and a chaos run spent most of its time there.
    `time.time()` is the same number (seconds since the epoch, UTC); with an explicit
    datetime the original still answers. Only the embedded endpoint is touched.
    """
    import moto.sqs.models as sqs_models
    from moto.core import utils

    original = utils.unix_time
    if getattr(original, "mailflow_fast", False):
        return

    def unix_time(dt: datetime.datetime | None = None) -> float:
        return time.time() if dt is None else original(dt)

    def unix_time_millis(dt: datetime.datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    unix_time.mailflow_fast = True  # type: ignore[attr-defined]
    for module in (utils, sqs_models):
        setattr(module, "unix_time", unix_time)  # noqa: B010
        setattr(module, "unix_time_millis", unix_time_millis)  # noqa: B010


def _atomic_moto_writes() -> None:
    """Make moto's DynamoDB item writes atomic, as DynamoDB's are.

    moto's threaded server runs requests concurrently and its backend has no lock: two
    conditional writes to one absent item can both pass their condition and both write
    (two racing claims both "acquired", an email sent twice). DynamoDB evaluates the
    condition and writes as one step; one lock around the backend's item operations
    restores that. Only the embedded endpoint is touched.
    """
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.update_item, "mailflow_atomic", False):
        return
    lock = threading.RLock()
    for name in ("get_item", "put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: object, __original: Any = original, **kwargs: object) -> Any:
            with lock:
                return __original(*args, **kwargs)

        locked.mailflow_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


@contextmanager
def embedded_aws(port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Run moto's server on host:port (0 = any free port) and yield its endpoint URL.

    Its web server logs one access line per AWS call at INFO (it raises an unset level
    to INFO itself), which buried the worker's own lines: only its warnings are kept.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _fast_moto_clock()
    _atomic_moto_writes()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        bound_host, bound_port = server.get_host_and_port()
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.stop()


def apply_local_defaults(endpoint: str, http_port: int = 8080) -> None:
    """Point this process at the embedded endpoint; keep whatever the user already set.

    The health endpoint listens on loopback only: this is a developer's machine.
    """
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("MAILFLOW_HTTP_HOST", "127.0.0.1")
    os.environ["MAILFLOW_HTTP_PORT"] = str(http_port)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
