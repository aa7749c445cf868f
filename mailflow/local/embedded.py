"""The embedded development environment: moto's server in-process, on loopback only.

No Docker, no AWS account, no network: `mailflow local` starts this, provisions every
resource the settings name, and runs the real worker against it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

DEFAULTS = {
    "MAILFLOW_DOMAINS": "example.com",
    "MAILFLOW_APPS": "app1,app2",
    # One developer writes for every app here, and moto reports one SenderId for all.
    "MAILFLOW_OUTBOUND__WRITER_IDENTITY": "off",
    "AWS_ACCESS_KEY_ID": "mailflow-local",
    "AWS_SECRET_ACCESS_KEY": "mailflow-local",
    "AWS_REGION": "us-east-1",
    # A terminal, not a log pipeline: one readable line per event.
    "MAILFLOW_LOG_FORMAT": "console",
}


@contextmanager
def embedded_aws(port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Run moto's server on host:port (0 = any free port) and yield its endpoint URL.

    Its web server logs one access line per AWS call at INFO (it raises an unset level
    to INFO itself), which buried the worker's own lines: only its warnings are kept.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
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
