"""The benchmark's AWS endpoint: moto's server in a process of its own, counting calls.

    .venv/bin/python bench/endpoint.py [--port 0]

Prints its URL on stdout, then serves until stdin closes (or SIGTERM). A process of its
own so that the worker's CPU figures are the worker's only, and so that both source
trees of a `--compare` run meet the same endpoint. It is what `mailflow local` runs
(`mailflow.local.embedded`: moto's `ThreadedMotoServer` app on werkzeug, with mailflow's
cheap clock for moto's SQS), wrapped in a WSGI middleware that counts every AWS call by
the caller's access key id and operation:

- SQS and DynamoDB speak JSON: the operation is the `X-Amz-Target` header's suffix;
- S3 and SES v2 are REST: the operation is named from the method and the path's shape
  (`GET /bucket/key` is GetObject, `POST /v2/email/outbound-emails` is SendEmail, ...).

`GET /_bench/calls` returns `{access_key: {"service:Operation": [calls, request bytes,
5xx answers]}}`; `POST /_bench/reset` zeroes it. The worker, the harness and the floor
loop use different access key ids, so their calls are told apart (moto accepts any key,
one account). moto answers some calls 500 under concurrency (its TransactWriteItems
deep-copies a table another thread is writing); the SDK retries them, each attempt a call.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
_TARGET_SERVICES = {"AmazonSQS": "sqs", "DynamoDB_20120810": "dynamodb"}
_SES_ROUTES = (
    ("POST", re.compile(r"^/v2/email/outbound-emails$"), "SendEmail"),
    ("GET", re.compile(r"^/v2/email/account$"), "GetAccount"),
    ("GET", re.compile(r"^/v2/email/identities/?$"), "ListEmailIdentities"),
    ("POST", re.compile(r"^/v2/email/identities/?$"), "CreateEmailIdentity"),
    ("GET", re.compile(r"^/v2/email/identities/[^/]+$"), "GetEmailIdentity"),
    ("POST", re.compile(r"^/v2/email/configuration-sets/?$"), "CreateConfigurationSet"),
)


def _s3_operation(method: str, path: str, query: dict[str, list[str]], copy: bool) -> str:
    """Name an S3 REST call from its shape (path-style URLs, as botocore sends to an IP)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets"
    if len(parts) == 1:
        return _s3_bucket_operation(method, query)
    if method == "GET":
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return f"{method} /bucket/key"


def _s3_bucket_operation(method: str, query: dict[str, list[str]]) -> str:
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "GET" and query.get("list-type") == ["2"]:
        return "ListObjectsV2"
    named = {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}
    return named.get(method, f"{method} /bucket")


def _ses_operation(method: str, path: str) -> str:
    for want, pattern, name in _SES_ROUTES:
        if method == want and pattern.match(path):
            return name
    shape = re.sub(r"/v2/email/([^/]+)(/.*)?", r"/v2/email/\1", path)
    return f"{method} {shape}"


def classify(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(access key id, "service:Operation") of an AWS call; None for anything else."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    found = _CREDENTIAL.search(auth)
    if found:
        key, service = found.group(1), found.group(2)
    elif "X-Amz-Credential" in query:  # a presigned URL (SigV4)
        key, _, rest = query["X-Amz-Credential"][0].partition("/")
        service = rest.split("/")[2] if rest.count("/") >= 2 else "?"
    elif "AWSAccessKeyId" in query:  # a presigned URL (SigV2: S3 only)
        key, service = query["AWSAccessKeyId"][0], "s3"
    else:
        return None
    target = environ.get("HTTP_X_AMZ_TARGET")
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    if target:
        prefix, _, operation = target.rpartition(".")
        return key, f"{_TARGET_SERVICES.get(prefix, prefix)}:{operation}"
    if service == "s3":
        copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
        return key, f"s3:{_s3_operation(method, path, query, copy)}"
    if service in {"ses", "sesv2"}:
        return key, f"sesv2:{_ses_operation(method, path)}"
    return key, f"{service}:{method} {path}"


class CallCounter:
    """WSGI middleware: count each AWS call, serve the counts at `/_bench/...`."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: dict[str, dict[str, list[int]]] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_bench/"):
            return self._control(environ, start_response)
        found = classify(environ)
        if found is None:
            return self.app(environ, start_response)
        size = int(environ.get("CONTENT_LENGTH") or 0)
        with self.lock:
            entry = self.counts.setdefault(found[0], {}).setdefault(found[1], [0, 0, 0])
            entry[0] += 1
            entry[1] += size

        def counting_start(status: str, *args: Any) -> Any:
            if status.startswith("5"):
                with self.lock:
                    entry[2] += 1
            return start_response(status, *args)

        return self.app(environ, counting_start)

    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        with self.lock:
            if environ.get("PATH_INFO") == "/_bench/reset":
                self.counts = {}
            body = json.dumps(self.counts).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


def fast_moto_clock() -> None:
    """mailflow's cheap clock for moto's SQS (`mailflow.local.embedded`), when it has one.

    Imported from the tree this process runs in (the current one); without it moto's
    SQS spends a second per ReceiveMessage on a 600-message queue reading its clock.
    """
    try:
        from mailflow.local.embedded import _fast_moto_clock
    except ImportError:
        print("endpoint: no mailflow.local.embedded._fast_moto_clock", file=sys.stderr)
        return
    _fast_moto_clock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fast_moto_clock()
    app = CallCounter(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print(f"http://{host!s}:{port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
