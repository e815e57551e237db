"""DynamoDB backlog of files deferred to a later quota day.

Items ``pk = "BACKLOG"``, ``sk = "<vid>#<brIndex>"`` (so a file is stored once however often it
is deferred), ``age = "<deferredAt>#<vid>#<brIndex>"`` for the ``byAge`` local secondary index
that lists them oldest first. No TTL: a deferred file leaves only once it was submitted or
rejected. Uses boto3's resource ``Table``: its ``batch_writer`` chunks writes by 25 and resends
unprocessed items, which is exactly what this store needs and no reason to write again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from .model import DeferredFile, FileRef
from .ports import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

BACKLOG_PK = "BACKLOG"
AGE_INDEX = "byAge"


class DynamoBacklog:
    def __init__(self, table_name: str, resource: DynamoDBServiceResource) -> None:
        self._resource = resource
        self._table = resource.Table(table_name)

    def defer(self, files: Sequence[tuple[FileRef, str]], *, now: datetime) -> int:
        wanted = dict(files)
        already = self.pending(list(wanted))
        new = [f for f in wanted if f not in already]
        stamp = now.isoformat()
        try:
            with self._table.batch_writer() as batch:
                for file in new:
                    batch.put_item(
                        Item={
                            "pk": BACKLOG_PK,
                            "sk": file.key,
                            "age": f"{stamp}#{file.key}",
                            "vid": file.vid,
                            "brIndex": file.br_index,
                            "deferredAt": stamp,
                            "origin": wanted[file][:500],
                        }
                    )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {_describe(exc)}") from None
        return len(new)

    def oldest(self, limit: int) -> list[DeferredFile]:
        try:
            answer = self._table.query(
                IndexName=AGE_INDEX,
                KeyConditionExpression=Key("pk").eq(BACKLOG_PK),
                ScanIndexForward=True,
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {_describe(exc)}") from None
        return [_deferred(item) for item in answer.get("Items", [])]

    def remove(self, files: Sequence[FileRef]) -> None:
        try:
            with self._table.batch_writer() as batch:
                for file in dict.fromkeys(files):
                    batch.delete_item(Key={"pk": BACKLOG_PK, "sk": file.key})
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"backlog: {_describe(exc)}") from None

    def pending(self, files: Sequence[FileRef]) -> dict[FileRef, DeferredFile]:
        found: dict[FileRef, DeferredFile] = {}
        keys = [{"pk": BACKLOG_PK, "sk": f.key} for f in dict.fromkeys(files)]
        for i in range(0, len(keys), 100):
            request: dict[str, Any] = {self._table.name: {"Keys": keys[i : i + 100]}}
            while request:
                try:
                    answer = self._resource.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreUnavailable(f"backlog: {_describe(exc)}") from None
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
            raise StoreUnavailable(f"backlog: {_describe(exc)}") from None
        oldest = self.oldest(1)
        return count, oldest[0].deferred_at if oldest else None


def _deferred(item: dict[str, Any]) -> DeferredFile:
    return DeferredFile(
        file=FileRef.from_key(str(item["sk"])),
        deferred_at=str(item["deferredAt"]),
        origin=str(item.get("origin", "")),
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
