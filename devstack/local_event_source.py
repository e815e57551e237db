"""The prewarm queue's event source mapping on loopback: what Lambda's SQS poller does for the
template's ``PrewarmQueueEvent``. It receives up to a batch of messages from moto's queue, calls
the prewarm handler with the SQS event Lambda would build, and deletes the messages the answer
does not list in ``batchItemFailures`` (the rest become visible again after the visibility
timeout, and SQS moves them to the dead-letter queue after ``maxReceiveCount`` receives).

Written here because moto has no event source mappings that call a handler in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from polyv_prewarm.lambda_context import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Delivery(NamedTuple):
    messages: int  # delivered to the handler in one batch
    failed: list[str]  # message ids the handler handed back
    answer: dict[str, Any] | None


class LocalEventSource:
    def __init__(self, sqs: Any, queue_url: str, handler: Handler, *, batch_size: int = 10) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def poll(self) -> Delivery | None:
        """One batch, if the queue holds a visible message: delivered, then deleted but for the
        failures (an exception deletes nothing, as Lambda's poller does)."""
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return None
        event = {"Records": [self._record(message) for message in received]}
        try:
            answer = self.handler(event, LocalLambdaContext())
        except Exception:
            return Delivery(len(received), [m["MessageId"] for m in received], None)
        failed = [f["itemIdentifier"] for f in answer.get("batchItemFailures", [])]
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return Delivery(len(received), failed, answer)

    def drain(self, rounds: int = 20) -> list[Delivery]:
        """Deliver batches until no message is visible (or ``rounds`` batches were delivered)."""
        deliveries = []
        for _ in range(rounds):
            delivery = self.poll()
            if delivery is None:
                break
            deliveries.append(delivery)
        return deliveries

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.arn.split(":")[3],
        }
