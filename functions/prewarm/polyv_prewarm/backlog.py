"""DynamoDB backlog of files deferred to a later quota day.

Items ``pk = "BACKLOG"``, ``sk = "<vid>#<brIndex>"`` (so a file is stored once however often it
is deferred), ``age = "<deferredAt>#<vid>#<brIndex>"`` for the ``byAge`` local secondary index
that lists them oldest first, ``force`` when a forced request deferred it, ``failures`` and
``lastError`` when Polyv refused its drained call with an error this package does not know. A file
that failed too many drains is parked: its ``age`` becomes ``"PARKED#<when>#<vid>#<brIndex>"``,
which sorts after every date, so drains (which read ages below ``"A"``) pass it by while
``backlog`` and ``status`` still show it. No TTL: a deferred file leaves only once it was
submitted or rejected. Uses boto3's resource ``Table``: its ``batch_writer`` chunks writes by 25 and resends
unprocessed items, which is exactly what this store needs and no reason to write again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from .ledger import describe_aws_error
from .model import DeferredFile, FileRef
from .ports import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

BACKLOG_PK = "BACKLOG"
AGE_INDEX = "byAge"
PARKED = "PARKED#"
DRAINABLE_BELOW = "A"  # ages of drainable files start with a digit; parked ones with "P"


class DynamoBacklog:
    def __init__(self, table_name: str, resource: DynamoDBServiceResource) -> None:
        self._resource = resource
        self._table = resource.Table(table_name)

    def defer(self, files: Sequence[tuple[FileRef, str]], *, now: datetime, force: bool = False) -> int:
        wanted = dict(files)
        already = self.pending(list(wanted))
        new = [f for f in wanted if f not in already]
        stamp = now.isoformat()
        try:
            with self._table.batch_writer() as batch:
                for file in new:
                    item: dict[str, Any] = {
                        "pk": BACKLOG_PK,
                        "sk": file.key,
                        "age": f"{stamp}#{file.key}",
                        "vid": file.vid,
                        "brIndex": file.br_index,
                        "deferredAt": stamp,
                        "origin": wanted[file][:500],
                    }
                    if force:
                        item["force"] = True
                    batch.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None
        return len(new)

    def oldest(self, limit: int, *, after: DeferredFile | None = None) -> list[DeferredFile]:
        return self._drainable(limit, after, oldest_first=True)

    def newest(self, limit: int, *, after: DeferredFile | None = None) -> list[DeferredFile]:
        return self._drainable(limit, after, oldest_first=False)

    def _drainable(self, limit: int, after: DeferredFile | None, *, oldest_first: bool) -> list[DeferredFile]:
        args: dict[str, Any] = {
            "IndexName": AGE_INDEX,
            "KeyConditionExpression": Key("pk").eq(BACKLOG_PK) & Key("age").lt(DRAINABLE_BELOW),
            "ScanIndexForward": oldest_first,
            "Limit": limit,
        }
        if after is not None:
            args["ExclusiveStartKey"] = {"pk": BACKLOG_PK, "sk": after.file.key, "age": _age(after)}
        return self._query(args)

    def parked(self, limit: int) -> list[DeferredFile]:
        return self._query(
            {
                "IndexName": AGE_INDEX,
                "KeyConditionExpression": Key("pk").eq(BACKLOG_PK) & Key("age").begins_with(PARKED),
                "Limit": limit,
            }
        )

    def _query(self, args: dict[str, Any]) -> list[DeferredFile]:
        try:
            answer = self._table.query(**args)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None
        return [_deferred(item) for item in answer.get("Items", [])]

    def record_failure(self, files: Sequence[DeferredFile], error: str, *, park_after: int) -> list[FileRef]:
        parked: list[FileRef] = []
        try:
            for deferred in files:
                key = {"pk": BACKLOG_PK, "sk": deferred.file.key}
                answer = self._table.update_item(
                    Key=key,
                    UpdateExpression="SET failures = if_not_exists(failures, :zero) + :one, lastError = :e",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":zero": 0, ":one": 1, ":e": error[:200]},
                    ReturnValues="ALL_NEW",
                )
                if int(str(answer["Attributes"].get("failures", 0))) >= park_after:
                    self._table.update_item(
                        Key=key,
                        UpdateExpression="SET age = :age, parked = :true",
                        ExpressionAttributeValues={
                            ":age": f"{PARKED}{deferred.deferred_at}#{deferred.file.key}",
                            ":true": True,
                        },
                    )
                    parked.append(deferred.file)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None
        return parked

    def remove(self, files: Sequence[FileRef]) -> None:
        try:
            with self._table.batch_writer() as batch:
                for file in dict.fromkeys(files):
                    batch.delete_item(Key={"pk": BACKLOG_PK, "sk": file.key})
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None

    def pending(self, files: Sequence[FileRef]) -> dict[FileRef, DeferredFile]:
        found: dict[FileRef, DeferredFile] = {}
        keys = [{"pk": BACKLOG_PK, "sk": f.key} for f in dict.fromkeys(files)]
        for i in range(0, len(keys), 100):
            request: dict[str, Any] = {self._table.name: {"Keys": keys[i : i + 100]}}
            while request:
                try:
                    answer = self._resource.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None
                for item in answer.get("Responses", {}).get(self._table.name, []):
                    deferred = _deferred(item)
                    found[deferred.file] = deferred
                request = dict(answer.get("UnprocessedKeys") or {})
        return found

    def stats(self) -> tuple[int, str | None]:
        count = 0
        args: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(BACKLOG_PK), "Select": "COUNT"}
        try:
            while True:
                answer = self._table.query(**args)
                count += int(answer.get("Count", 0))
                if "LastEvaluatedKey" not in answer:
                    break
                args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {describe_aws_error(exc)}") from None
        oldest = self.oldest(1)
        return count, oldest[0].deferred_at if oldest else None


def _deferred(item: dict[str, Any]) -> DeferredFile:
    return DeferredFile(
        file=FileRef.from_key(str(item["sk"])),
        deferred_at=str(item["deferredAt"]),
        origin=str(item.get("origin", "")),
        force=bool(item.get("force", False)),
        failures=int(item.get("failures", 0)),
        last_error=str(item["lastError"]) if "lastError" in item else None,
        parked=bool(item.get("parked", False)),
    )


def _age(deferred: DeferredFile) -> str:
    return f"{deferred.deferred_at}#{deferred.file.key}"
