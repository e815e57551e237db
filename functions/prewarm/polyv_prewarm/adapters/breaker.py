"""Polyv's breaker as one DynamoDB item (``pk = "BREAKER"``, ``sk = "POLYV"``) in the quota table,
shared by every invocation: ``downSince`` (ISO), ``downUntil`` (epoch ms: no call before, but a
probe's), ``failures``, and the probe's holder (``probeOwner``, ``probeUntil``). No item: closed.
The rules (how long it stays open) are ``domain/breaker.py``'s."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..domain.breaker import PROBE_LEASE, BreakerState, opening
from ..domain.model import epoch_ms
from .aws_errors import error_code
from .dynamo import plain, store_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

KEY = {"pk": {"S": "BREAKER"}, "sk": {"S": "POLYV"}}
STORE = "Polyv's breaker"


class DynamoBreaker:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def state(self) -> BreakerState:
        with store_errors(STORE):
            item = self._client.get_item(TableName=self._table, Key=KEY, ConsistentRead=True).get("Item")
        return _state(plain(item or {}))

    def try_probe(self, owner: str, *, now: datetime) -> bool:
        return (
            self._update(
                "SET probeOwner = :owner, probeUntil = :until",
                {
                    ":owner": {"S": owner},
                    ":until": {"N": str(epoch_ms(now + PROBE_LEASE))},
                    ":now": {"N": str(epoch_ms(now))},
                },
                # no downUntil: a run killed between failed()'s two writes; its time has come
                condition="attribute_exists(downSince) "
                "AND (attribute_not_exists(downUntil) OR downUntil <= :now) "
                "AND (attribute_not_exists(probeUntil) OR probeUntil < :now)",
            )
            is not None
        )

    def failed(self, *, now: datetime) -> BreakerState:
        counted = self._update(
            "SET downSince = if_not_exists(downSince, :now) ADD failures :one REMOVE probeOwner, probeUntil",
            {":now": {"S": now.isoformat()}, ":one": {"N": "1"}},
        )
        failures = int(plain(counted or {}).get("failures", 1))
        until = epoch_ms(now + opening(failures))
        answer = self._update("SET downUntil = :until", {":until": {"N": str(until)}})
        return _state(plain(answer or {}))

    def recovered(self, *, unless_failed_since: BreakerState | None = None) -> None:
        args: dict[str, Any] = {"TableName": self._table, "Key": KEY}
        if unless_failed_since is not None:
            args["ConditionExpression"] = "attribute_not_exists(failures) OR failures = :seen"
            args["ExpressionAttributeValues"] = {":seen": {"N": str(unless_failed_since.failures)}}
        with store_errors(STORE):
            try:
                self._client.delete_item(**args)
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise

    def _update(self, expression: str, values: dict[str, Any], *, condition: str | None = None) -> Any:
        """The item after the update; None when ``condition`` failed."""
        args: dict[str, Any] = {
            "TableName": self._table,
            "Key": KEY,
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if condition is not None:
            args["ConditionExpression"] = condition
        with store_errors(STORE):
            try:
                return self._client.update_item(**args).get("Attributes")
            except ClientError as exc:
                if condition is not None and error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise


def _state(item: dict[str, Any]) -> BreakerState:
    if "downSince" not in item:
        return BreakerState()
    until = item.get("downUntil")
    return BreakerState(
        str(item["downSince"]), int(until) if until is not None else None, int(item.get("failures", 0))
    )
