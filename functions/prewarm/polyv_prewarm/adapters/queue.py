"""The prewarm queue (SQS), as the callback endpoint writes to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.ports import QueueUnavailable
from .dynamo import describe_aws_error

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
