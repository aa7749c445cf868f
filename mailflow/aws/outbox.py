"""SQS sends and deletes, batched across concurrent handlers (`mailflow.aws.batch`).

`send_message` and `delete_message` take the same arguments as the SQS client's and
answer for one message, as they do: a failed entry of a `SendMessageBatch` is raised to
its own caller as the `ClientError` a single call would have raised (same code, and an
HTTP status from SQS's `SenderFault`), so `mailflow.errors.fate` judges it the same way.

A batch SQS refuses as a whole for a reason one entry can cause (too long, an invalid
attribute) is retried entry by entry: one bad message never fails its neighbours. A batch
of one is a plain single call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mailflow.aws.batch import DEFAULT_LINGER_SECONDS, Batcher
from mailflow.errors import fate

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

MAX_ENTRIES = 10  # SQS's limit per batch call
# A handled message's delete holds no slot (the consumer runs it aside), so it can wait
# longer for company than a send a handler awaits.
DELETE_LINGER_SECONDS = 0.05
# SQS's limit on a batch's total payload. AWS raised it to 1 MiB in 2025; emulators and
# older regions' documentation still say 256 KiB, and the smaller one is always valid.
MAX_BATCH_BYTES = 262_144

Entry = dict[str, Any]
Result = dict[str, Any] | BaseException


def payload_size(entry: Entry) -> int:
    """An entry's size as SQS counts it: body plus attribute names, types and values."""
    size = len(str(entry.get("MessageBody", "")).encode())
    for name, value in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode())
        size += len(value.get("BinaryValue", b"") or b"")
    return size


def entry_error(failed: dict[str, Any], operation: str) -> ClientError:
    """The error a single call would have raised for a batch's failed entry."""
    status = 400 if failed.get("SenderFault") else 500
    response: Any = {
        "Error": {"Code": failed.get("Code", ""), "Message": failed.get("Message", "")},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


def _whole_batch_refused(exc: ClientError) -> bool:
    """A 4xx on the batch that one entry may have caused (not throttling, not access)."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 400 <= status < 500 and fate(exc).code in {"aws_bad_request", "aws_error"}


def _by_id(response: dict[str, Any], count: int, operation: str) -> list[Result]:
    results: list[Result] = [
        RuntimeError(f"SQS did not answer for entry {i} of the batch") for i in range(count)
    ]
    for ok in response.get("Successful", []):
        results[int(ok["Id"])] = dict(ok)
    for bad in response.get("Failed", []):
        results[int(bad["Id"])] = entry_error(bad, operation)
    return results


class Outbox:
    """Batched `send_message` / `delete_message`, one batcher per queue URL."""

    def __init__(
        self,
        sqs: SQSClient,
        linger: float = DEFAULT_LINGER_SECONDS,
        delete_linger: float = DELETE_LINGER_SECONDS,
    ) -> None:
        self.sqs = sqs
        self.linger = linger
        self.delete_linger = delete_linger
        self._sends: dict[str, Batcher[Entry, dict[str, Any]]] = {}
        self._deletes: dict[str, Batcher[Entry, dict[str, Any]]] = {}

    async def send_message(self, *, QueueUrl: str, **entry: Any) -> dict[str, Any]:
        """Like `SQSClient.send_message`; answers with the entry's MessageId."""
        batcher = self._sends.get(QueueUrl)
        if batcher is None:
            batcher = self._sends[QueueUrl] = Batcher(
                lambda entries: self._send_batch(QueueUrl, entries),
                max_items=MAX_ENTRIES,
                max_size=MAX_BATCH_BYTES,
                size_of=payload_size,
                linger=self.linger,
            )
        return await batcher.submit(entry)

    async def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        batcher = self._deletes.get(QueueUrl)
        if batcher is None:
            batcher = self._deletes[QueueUrl] = Batcher(
                lambda entries: self._delete_batch(QueueUrl, entries),
                max_items=MAX_ENTRIES,
                linger=self.delete_linger,
            )
        return await batcher.submit({"ReceiptHandle": ReceiptHandle})

    @property
    def calls(self) -> int:
        """Batch (or single) calls made so far, sends and deletes together."""
        sends = sum(b.calls for b in self._sends.values())
        return sends + sum(b.calls for b in self._deletes.values())

    # The SQS calls are spelled out (not passed as bound methods) so that
    # tools/iam_actions.py, which derives the task's IAM policy from calls, sees them.

    async def _send_batch(self, url: str, entries: Sequence[Entry]) -> list[Result]:
        return await _batch(
            entries,
            lambda request: self.sqs.send_message_batch(QueueUrl=url, Entries=request),
            lambda entry: self.sqs.send_message(QueueUrl=url, **entry),
            "SendMessage",
        )

    async def _delete_batch(self, url: str, entries: Sequence[Entry]) -> list[Result]:
        return await _batch(
            entries,
            lambda request: self.sqs.delete_message_batch(QueueUrl=url, Entries=request),
            lambda entry: self.sqs.delete_message(QueueUrl=url, **entry),
            "DeleteMessage",
        )


async def _batch(
    entries: Sequence[Entry],
    batch_call: Callable[[Any], Awaitable[Any]],
    single_call: Callable[[Entry], Awaitable[Any]],
    operation: str,
) -> list[Result]:
    """One batch call for `entries` (a single call for one), a result per entry."""
    if len(entries) == 1:
        return [await _one(single_call, entries[0])]
    request = [{"Id": str(i), **entry} for i, entry in enumerate(entries)]
    try:
        response = await batch_call(request)
    except ClientError as exc:
        if not _whole_batch_refused(exc):
            raise
        return [await _one(single_call, entry) for entry in entries]
    return _by_id(dict(response), len(entries), operation)


async def _one(call: Callable[[Entry], Awaitable[Any]], entry: Entry) -> Result:
    try:
        return dict(await call(entry))
    except Exception as exc:
        return exc
