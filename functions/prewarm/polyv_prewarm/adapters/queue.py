"""The prewarm queue (SQS): as the callback endpoint writes to it, and as the prewarm function
dead-letters a poison message and backs off a handed-back one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.ports import QueueUnavailable
from .aws_errors import describe_aws_error

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class SqsPrewarmQueue:
    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._url = queue_url
        self._client = client

    def send(self, body: str) -> str:
        """Send one message; its id once SQS has it (botocore's retries included)."""
        try:
            answer = self._client.send_message(QueueUrl=self._url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"prewarm queue: {describe_aws_error(exc)}") from None
        return str(answer["MessageId"])


class SqsMessages:
    """What the prewarm function does to its own queue's messages, beyond its batch answer."""

    def __init__(self, client: SQSClient, *, queue_url: str, dead_letter_url: str) -> None:
        self._client = client
        self._queue_url = queue_url
        self._dead_letter_url = dead_letter_url

    @property
    def queue_name(self) -> str:
        return self._queue_url.rstrip("/").rsplit("/", 1)[-1]

    def dead_letter(self, body: str, *, reason: str, message_id: str, receive_count: int) -> None:
        """Put a message no parser can read on the dead-letter queue at once, with why."""
        attributes: Any = {  # SQS message attributes: the reason, and where the message came from
            "reason": {"DataType": "String", "StringValue": reason[:256] or "unreadable"},
            "sourceMessageId": {"DataType": "String", "StringValue": message_id[:128]},
            "receiveCount": {"DataType": "Number", "StringValue": str(receive_count)},
        }
        try:
            self._client.send_message(
                QueueUrl=self._dead_letter_url, MessageBody=body, MessageAttributes=attributes
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"dead-letter queue: {describe_aws_error(exc)}") from None

    def in_flight(self) -> bool:
        """Whether the queue holds messages: visible, in flight or waiting out a back-off, or
        delayed (SQS's approximate counts, enough to say "none")."""
        names: Any = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        try:
            counts = self._client.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=names)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"prewarm queue: {describe_aws_error(exc)}") from None
        return any(int(value) > 0 for value in counts.get("Attributes", {}).values())

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Make a handed-back message visible again in ``seconds``, not the queue's visibility timeout."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"prewarm queue: {describe_aws_error(exc)}") from None
