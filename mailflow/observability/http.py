"""A deliberately tiny HTTP server for /metrics, /healthz and /readyz.

Three fixed GET routes do not justify a web framework; asyncio's streams keep it in the
worker's event loop, so liveness reflects the loop actually turning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Response = tuple[int, str, bytes]


def route(path: str, is_ready: Callable[[], bool]) -> Response:
    """Pure routing, so it is testable without a socket."""
    if path == "/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest()
    if path == "/healthz":
        return 200, "text/plain", b"ok\n"
    if path == "/readyz":
        ready = is_ready()
        return (200 if ready else 503), "text/plain", b"ready\n" if ready else b"not ready\n"
    return 404, "text/plain", b"not found\n"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


async def _serve_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, is_ready: Callable[[], bool]
) -> None:
    try:
        request_line = await asyncio.wait_for(reader.readline(), timeout=5)
        while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
            pass
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            status, ctype, body = 405, "text/plain", b"method not allowed\n"
        else:
            status, ctype, body = route(parts[1].split("?", 1)[0], is_ready)
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + (body if parts and parts[0] != "HEAD" else b""))
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def start_http_server(host: str, port: int, is_ready: Callable[[], bool]) -> asyncio.Server:
    """Start serving; the caller closes the returned server at shutdown."""
    return await asyncio.start_server(lambda r, w: _serve_one(r, w, is_ready), host=host, port=port)
