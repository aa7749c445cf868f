"""How fast the embedded endpoint's SQS is on a deep queue (prints figures, asserts nothing).

    .venv/bin/python bench/moto_sqs.py

60 SendMessageBatch calls of 10 messages, then 60 ReceiveMessage calls of 10 from that
600-message queue, against `mailflow.local.embedded.embedded_aws` (moto in-process, with
the cheap clock mailflow gives its SQS). Measured with and without that clock: sends
9.0 s -> 1.2 s, receives 43.7 s -> 3.2 s (2 cores).
"""

from __future__ import annotations

import json
import time

import boto3

from mailflow.local.embedded import embedded_aws


def main() -> None:
    with embedded_aws() as endpoint:
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106  (the emulator checks nothing)
        )
        url = sqs.create_queue(QueueName="bench")["QueueUrl"]
        body = json.dumps({"x": "y" * 3000})
        started = time.perf_counter()
        for _ in range(60):
            entries = [{"Id": str(n), "MessageBody": body} for n in range(10)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        print(f"60 batch sends of 10: {time.perf_counter() - started:.1f} s")
        started, received, calls = time.perf_counter(), 0, 0
        while received < 600:
            response = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900, WaitTimeSeconds=1
            )
            received += len(response.get("Messages", []))
            calls += 1
        print(f"{calls} receives of 600 messages: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
