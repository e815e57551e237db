"""DynamoDB quota store: one counter item per quota day, changed only by conditional updates.

Table keys: ``pk`` (S) and ``sk`` (S); the day's counter is ``pk = "QUOTA#<day>"``, ``sk = "COUNTER"``
with attributes ``used`` (N), optionally ``exhausted`` (BOOL), and ``expiresAt`` (N, TTL).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .ports import QuotaStoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

COUNTER_SK = "COUNTER"

# Reserve n files (1 <= n <= limit). `used <= :room` (room = limit - n) keeps the sum within the
# limit; the day's first reservation creates the item and is safe because n <= limit is checked
# before the call. Without that check `attribute_not_exists(used)` would let it overshoot.
_RESERVE_CONDITION = "(attribute_not_exists(used) OR used <= :room) AND attribute_not_exists(exhausted)"


class DynamoQuotaStore:
    def __init__(self, table_name: str, client: DynamoDBClient, *, retention_days: int = 35) -> None:
        self._table = table_name
        self._client = client
        self._retention_s = retention_days * 86_400

    @staticmethod
    def _key(day: str) -> dict[str, Any]:
        return {"pk": {"S": f"QUOTA#{day}"}, "sk": {"S": COUNTER_SK}}

    def reserve(self, day: str, wanted: int, limit: int) -> int:
        n = min(wanted, limit)
        while n > 0:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=self._key(day),
                    UpdateExpression="SET used = if_not_exists(used, :zero) + :n, "
                    "expiresAt = if_not_exists(expiresAt, :ttl)",
                    ConditionExpression=_RESERVE_CONDITION,
                    ExpressionAttributeValues={
                        ":n": {"N": str(n)},
                        ":zero": {"N": "0"},
                        ":room": {"N": str(limit - n)},
                        ":ttl": {"N": str(int(time.time()) + self._retention_s)},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return n
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise QuotaStoreUnavailable(f"quota store: {_describe(exc)}") from None
                item: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
                if "exhausted" in item:
                    return 0
                used = int(item.get("used", {}).get("N", "0"))
                n = min(n, limit - used)  # fewer remain: ask for exactly what fits
            except BotoCoreError as exc:
                raise QuotaStoreUnavailable(f"quota store: {_describe(exc)}") from None
        return 0

    def release(self, day: str, count: int) -> None:
        if count <= 0:
            return
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(day),
                UpdateExpression="SET used = used - :n",
                # An exhausted day stays at its limit: Polyv itself said nothing is left.
                ConditionExpression="used >= :n AND attribute_not_exists(exhausted)",
                ExpressionAttributeValues={":n": {"N": str(count)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise QuotaStoreUnavailable(f"quota store: {_describe(exc)}") from None
        except BotoCoreError as exc:
            raise QuotaStoreUnavailable(f"quota store: {_describe(exc)}") from None

    def mark_exhausted(self, day: str, limit: int) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(day),
                UpdateExpression="SET exhausted = :true, used = :limit, "
                "expiresAt = if_not_exists(expiresAt, :ttl)",
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":limit": {"N": str(limit)},
                    ":ttl": {"N": str(int(time.time()) + self._retention_s)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise QuotaStoreUnavailable(f"quota store: {_describe(exc)}") from None

    def used(self, day: str) -> int:
        try:
            item = self._client.get_item(TableName=self._table, Key=self._key(day), ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise QuotaStoreUnavailable(f"quota store: {_describe(exc)}") from None
        return int(item["used"]["N"]) if item and "used" in item else 0


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
