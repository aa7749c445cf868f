"""A small fault-injecting HTTP proxy in front of an AWS endpoint (moto has no throttling).

Every request is forwarded unchanged to the upstream endpoint, except:
- SESv2 SendEmail (`POST /v2/email/outbound-emails`): a seeded random fraction gets an
  SES error response instead (default `TooManyRequestsException`, HTTP 429), never
  reaching upstream, so a faulted call certainly sent nothing;
- with `hold_send_seconds`, a forwarded SendEmail is answered only after that delay
  (the email *was* sent): a window in which to kill the worker mid-call;
- SESv2 GetAccount (`GET /v2/email/account`): answered with `account` when set (moto
  does not implement it);
- SQS actions named in `sqs_fault_actions` (JSON protocol, `X-Amz-Target:
  AmazonSQS.<Action>`): a seeded random fraction `sqs_fault_rate` either gets an HTTP 500
  `InternalError` or has its connection reset without an answer, never reaching
  upstream.

- DynamoDB BatchWriteItem / BatchGetItem, the next `dynamodb_unprocessed` calls of more
  than one entry: only each table's first entry is forwarded, and the answer names the
  rest as UnprocessedItems / UnprocessedKeys, as DynamoDB does when it throttles a batch
  (moto never does).

- services in `outage` (`sqs`, `dynamodb`, `sesv2`, `s3`): every call has its connection
  reset without an answer, as in a network partition.
- `set_ses_faults(throttle, error, after)`: fractions of SendEmail calls answered 429
  (not forwarded), 500 (not forwarded: nothing sent) or forwarded *and then* answered
  500 (the email was sent; the caller cannot tell), drawn from the seeded generator.
- `set_mode(...)` for every call of every service: "refused" (the proxy stops listening),
  "blackhole" (requests are held unanswered; when the mode ends their connections are
  dropped), "error500" (each answered 500 InternalError, nothing forwarded), "slow"
  (forwarded after `latency_seconds`); None: normal.

It runs its own event loop in a thread, so it serves sync tests, async tests and worker
subprocesses alike. Counters tell a test that faults really happened.

    with FaultProxy(upstream, fault_rate=0.3, seed=7) as proxy:
        settings = make_settings(aws_endpoint_url=proxy.url)
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

SEND_PATH = "/v2/email/outbound-emails"
ACCOUNT_PATH = "/v2/email/account"
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class FaultStats:
    sends_seen: int = 0
    sends_faulted: int = 0
    sends_forwarded: int = 0
    account_calls: int = 0
    ses_faults: Counter[str] = field(default_factory=Counter)  # "throttle" | "error" | "after"
    mode_calls: Counter[str] = field(default_factory=Counter)  # calls seen per mode
    sqs_faults: Counter[str] = field(default_factory=Counter)  # "SendMessage/reset": n
    unprocessed: Counter[str] = field(default_factory=Counter)  # "BatchWriteItem": n


@dataclass
class FaultProxy:
    upstream: str
    fault_rate: float = 0.3
    seed: int = 1234
    error_code: str = "TooManyRequestsException"
    error_status: int = 429
    error_message: str = "Maximum sending rate exceeded."
    account: dict[str, Any] | None = None
    hold_send_seconds: float = 0.0  # forward SendEmail, then delay the answer (kill window)
    sqs_fault_rate: float = 0.0
    sqs_fault_actions: frozenset[str] = frozenset()
    outage: frozenset[str] = frozenset()
    dynamodb_unprocessed: int = 0
    latency_seconds: float = 2.0
    stats: FaultStats = field(default_factory=FaultStats)
    # SendEmail request bodies seen (JSON, with the raw MIME data removed), for assertions
    # on the envelope: Destination, FromEmailAddress, ConfigurationSetName.
    send_requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        self._session: aiohttp.ClientSession | None = None
        self._ses_rates = (0.0, 0.0, 0.0)
        self._mode: str | None = None
        self._mode_over: asyncio.Event | None = None

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, reuse_address=True)
        await site.start()
        self._site = site
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self._port}"
        self._mode_over = asyncio.Event()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120), auto_decompress=False
        )

    async def _shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- behaviour --------------------------------------------------------------------

    def set_fault_rate(self, rate: float) -> None:
        with self._lock:
            self.fault_rate = rate

    def set_sqs_faults(self, rate: float, actions: frozenset[str] = frozenset()) -> None:
        with self._lock:
            self.sqs_fault_rate = rate
            self.sqs_fault_actions = actions

    def set_ses_faults(self, throttle: float = 0.0, error: float = 0.0, after: float = 0.0) -> None:
        with self._lock:
            self._ses_rates = (throttle, error, after)

    def set_mode(self, mode: str | None) -> None:
        """Switch every call's fate (see the module docstring); waits until it holds."""
        asyncio.run_coroutine_threadsafe(self._switch(mode), self._loop).result(10)

    async def _switch(self, mode: str | None) -> None:
        assert self._runner is not None
        assert self._mode_over is not None
        if self._mode == "refused" and mode != "refused":
            self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
            await self._site.start()
        if self._mode == "blackhole":
            self._mode_over.set()  # held requests drop their connections
            self._mode_over = asyncio.Event()
        if mode == "refused" and self._site is not None:
            await self._site.stop()
        with self._lock:
            self._mode = mode

    def _ses_fault(self) -> str | None:
        with self._lock:
            throttle, error, after = self._ses_rates
            draw = self._random.random()
        kind = None
        if draw < throttle:
            kind = "throttle"
        elif draw < throttle + error:
            kind = "error"
        elif draw < throttle + error + after:
            kind = "after"
        if kind:
            with self._lock:
                self.stats.ses_faults[kind] += 1
        return kind

    def set_outage(self, services: frozenset[str]) -> None:
        with self._lock:
            self.outage = services

    def _in_outage(self, request: web.Request) -> bool:
        target = request.headers.get("X-Amz-Target", "")
        if target.startswith("AmazonSQS."):
            service = "sqs"
        elif target.startswith("DynamoDB_"):
            service = "dynamodb"
        elif request.path.startswith("/v2/email"):
            service = "sesv2"
        else:
            service = "s3"
        with self._lock:
            return service in self.outage

    def _sqs_fault(self, request: web.Request) -> str | None:
        """'reset' or '500' when this SQS call is to fail, else None."""
        action = request.headers.get("X-Amz-Target", "").removeprefix("AmazonSQS.")
        with self._lock:
            if action not in self.sqs_fault_actions or self._random.random() >= self.sqs_fault_rate:
                return None
            kind = self._random.choice(("reset", "500"))
            self.stats.sqs_faults[f"{action}/{kind}"] += 1
            return kind

    def _should_fault(self) -> bool:
        with self._lock:
            self.stats.sends_seen += 1
            faulted = self._random.random() < self.fault_rate
            if faulted:
                self.stats.sends_faulted += 1
            else:
                self.stats.sends_forwarded += 1
            return faulted

    def _record_send(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        data.get("Content", {}).get("Raw", {}).pop("Data", None)
        with self._lock:
            self.send_requests.append(data)

    def _error_response(self) -> web.Response:
        body = {"__type": self.error_code, "message": self.error_message}
        return web.Response(
            status=self.error_status,
            text=json.dumps(body),
            headers={"x-amzn-ErrorType": self.error_code, "Content-Type": "application/json"},
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            mode = self._mode
            if mode:
                self.stats.mode_calls[mode] += 1
        if mode == "refused":  # a keep-alive connection opened before: dropped
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if mode == "blackhole":
            assert self._mode_over is not None
            await self._mode_over.wait()
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if mode == "error500":
            return _internal_error(request)
        if mode == "slow":
            await asyncio.sleep(self.latency_seconds)
        sqs_fault = "reset" if self._in_outage(request) else self._sqs_fault(request)
        if sqs_fault == "reset":
            assert request.transport is not None
            request.transport.abort()  # the client sees the connection drop, no answer
            return web.Response(status=500)
        if sqs_fault == "500":
            error = {"__type": "com.amazonaws.sqs#InternalError", "message": "injected"}
            return web.Response(
                status=500,
                text=json.dumps(error),
                headers={"Content-Type": "application/x-amz-json-1.0"},
            )
        if request.method == "POST" and request.path == SEND_PATH:
            self._record_send(body)
        if request.method == "POST" and request.path == SEND_PATH and self._should_fault():
            return self._error_response()
        ses_fault = (
            self._ses_fault() if request.method == "POST" and request.path == SEND_PATH else None
        )
        if ses_fault == "throttle":
            return _ses_error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        if ses_fault == "error":
            return _ses_error(500, "InternalFailure", "injected before the send")
        if request.method == "GET" and request.path == ACCOUNT_PATH and self.account is not None:
            self.stats.account_calls += 1
            return web.json_response(self.account)
        body, leftover = self._process_partly(request, body)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
            }
        if request.path == SEND_PATH and self.hold_send_seconds:
            await asyncio.sleep(self.hold_send_seconds)
        if ses_fault == "after":  # SES sent it; the answer says otherwise
            return _ses_error(500, "InternalFailure", "injected after the send")
        if leftover is not None and upstream.status == 200:
            answer = json.loads(payload)
            answer.update(leftover)
            payload = json.dumps(answer).encode()
            # botocore checks the CRC32 header against the body it now differs from.
            out_headers = {k: v for k, v in out_headers.items() if k.lower() != "x-amz-crc32"}
        return web.Response(status=upstream.status, body=payload, headers=out_headers)

    def _process_partly(
        self, request: web.Request, body: bytes
    ) -> tuple[bytes, dict[str, Any] | None]:
        """The batch to forward (each table's first entry) and what to call unprocessed."""
        action = request.headers.get("X-Amz-Target", "").partition(".")[2]
        if action not in ("BatchWriteItem", "BatchGetItem"):
            return body, None
        writes = action == "BatchWriteItem"
        asked = json.loads(body)
        tables: dict[str, Any] = asked["RequestItems"]
        entries = {t: (v if writes else v["Keys"]) for t, v in tables.items()}
        with self._lock:
            if self.dynamodb_unprocessed <= 0 or sum(map(len, entries.values())) < 2:
                return body, None
            self.dynamodb_unprocessed -= 1
            self.stats.unprocessed[action] += 1
        forwarded: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for table, listed in entries.items():
            first, others = listed[:1], listed[1:]
            forwarded[table] = first if writes else {**tables[table], "Keys": first}
            if others:
                rest[table] = others if writes else {**tables[table], "Keys": others}
        key = "UnprocessedItems" if writes else "UnprocessedKeys"
        return json.dumps({**asked, "RequestItems": forwarded}).encode(), {key: rest}


def _ses_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"__type": code, "message": message}),
        headers={"x-amzn-ErrorType": code, "Content-Type": "application/json"},
    )


def _internal_error(request: web.Request) -> web.Response:
    """A 500 in the protocol of the service asked (JSON for SQS/DynamoDB/SES, XML for S3)."""
    target = request.headers.get("X-Amz-Target", "")
    if target.startswith(("AmazonSQS.", "DynamoDB_")) or request.path.startswith("/v2/email"):
        return web.Response(
            status=500,
            text=json.dumps({"__type": "InternalFailure", "message": "injected"}),
            headers={"Content-Type": "application/x-amz-json-1.0"},
        )
    xml = "<Error><Code>InternalError</Code><Message>injected</Message></Error>"
    return web.Response(status=500, text=xml, headers={"Content-Type": "application/xml"})
