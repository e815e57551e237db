"""The record of Polyv's verified callbacks, in the product's table (docs/ledger.md, "Received
callbacks"): one item per signed content that was queued, so that a replay, on any later day,
queues nothing.

``pk = "CALLBACK#<vid>"``, ``sk = "encode#<df>"`` or ``"TranscodeComplete"``; ``s`` is
``pending`` (a request is queueing it: ``w`` its owner, ``l`` its lease, epoch ms) or ``queued``
(``m`` the message id, ``at`` when). No TTL: a record lives as long as its video may be replayed
(an expiry would let captured URLs spend the quota again once it passed); each is ~100 bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..domain.ports import Arrival
from .aws_errors import error_code
from .dynamo import store_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

STORE = "received callbacks"
PREFIX = "CALLBACK#"  # the callback function's role may touch these keys only (template.yaml)
PENDING, QUEUED = "pending", "queued"


def _key(vid: str, content: str) -> dict[str, Any]:
    return {"pk": {"S": PREFIX + vid}, "sk": {"S": content}}


class DynamoReceivedCallbacks:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def arrive(self, vid: str, content: str, *, owner: str, now_ms: int, lease_ms: int) -> Arrival:
        """One consistent read answers a replay; a first arrival takes the item conditionally (two
        requests racing for it: one wins, the other is told it is in flight)."""
        key = _key(vid, content)
        with store_errors(STORE):
            item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        if item is not None:
            arrival = _arrival(item, now_ms)
            if arrival is not Arrival.FIRST:
                return arrival
        try:
            with store_errors(STORE):
                self._take(key, owner, now_ms, lease_ms)
        except _Lost:
            return Arrival.IN_FLIGHT
        return Arrival.FIRST

    def _take(self, key: dict[str, Any], owner: str, now_ms: int, lease_ms: int) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **key,
                    "s": {"S": PENDING},
                    "w": {"S": owner},
                    "l": {"N": str(now_ms + lease_ms)},
                },
                # absent, or a claim that was never marked queued and whose lease has ended
                ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(#s) OR "
                "(#s <> :queued AND (attribute_not_exists(#l) OR #l < :now))",
                ExpressionAttributeNames={"#s": "s", "#l": "l"},
                ExpressionAttributeValues={":queued": {"S": QUEUED}, ":now": {"N": str(now_ms)}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise _Lost() from None
            raise

    def queued(self, vid: str, content: str, *, owner: str, message_id: str, now_ms: int) -> None:
        """Marked whoever holds it now: the message is on the queue either way."""
        with store_errors(STORE):
            self._client.update_item(
                TableName=self._table,
                Key=_key(vid, content),
                UpdateExpression="SET #s = :queued, #m = :m, #at = :at REMOVE #w, #l",
                ExpressionAttributeNames={"#s": "s", "#m": "m", "#at": "at", "#w": "w", "#l": "l"},
                ExpressionAttributeValues={
                    ":queued": {"S": QUEUED},
                    ":m": {"S": message_id[:128]},
                    ":at": {"N": str(now_ms)},
                },
            )

    def abandon(self, vid: str, content: str, *, owner: str) -> None:
        """Deleted only while this owner's pending claim is what is there."""
        try:
            with store_errors(STORE):
                self._delete_own(vid, content, owner)
        except _Lost:
            return

    def _delete_own(self, vid: str, content: str, owner: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=_key(vid, content),
                ConditionExpression="#s = :pending AND #w = :owner",
                ExpressionAttributeNames={"#s": "s", "#w": "w"},
                ExpressionAttributeValues={":pending": {"S": PENDING}, ":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise _Lost() from None
            raise


class _Lost(Exception):
    """A conditional write found the item in another state than it needs (not an outage)."""


def _arrival(item: dict[str, Any], now_ms: int) -> Arrival:
    """What an existing item says of a new arrival. An item no write of this module made (no
    state, a lease that is not a number) is treated as a pending claim whose lease has ended, so
    it is taken over rather than stuck."""
    state = (item.get("s") or {}).get("S")
    if state == QUEUED:
        return Arrival.RECEIVED
    try:
        lease = int((item.get("l") or {}).get("N", "0"))
    except ValueError:
        lease = 0
    return Arrival.IN_FLIGHT if state == PENDING and lease >= now_ms else Arrival.FIRST
