"""DynamoDB backlog of files deferred to a later quota day.

Items ``pk = "BACKLOG"``, ``sk = "<vid>#<brIndex>"`` (so a file is stored once however often it
is deferred), ``age = "<deferredAt>#<vid>#<brIndex>"`` for the ``byAge`` local secondary index
that lists them oldest first, ``force`` when a forced request deferred it, ``failures`` and
``lastError`` when Polyv refused its drained call with an error this package does not know. A file
that failed too many drains is parked: its ``age`` becomes ``"PARKED#<when>#<vid>#<brIndex>"``,
which sorts after every date, so drains (which read ages below ``"A"``) pass it by while
``backlog`` and ``status`` still show it. No TTL: a deferred file leaves only once it was
submitted or rejected. Uses the same low-level client as the day ledger
(:mod:`polyv_prewarm.adapters.dynamo`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..domain.model import DeferredFile, FileRef
from .dynamo import batch_get, batch_write, error_code, plain, store_errors, typed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BACKLOG_PK = "BACKLOG"
AGE_INDEX = "byAge"
PARKED = "PARKED#"
WAITING = "WAIT#"  # waiting out an outage: "WAIT#<retryAt>#<deferredAt>#<vid>#<brIndex>"
DRAINABLE_BELOW = "A"  # ages of drainable files start with a digit; parked ones "P", waiting ones "W"
STORE = "backlog"


def stamp(instant: datetime) -> str:
    """A time as the backlog writes it in ``age``: one fixed format, so that text order is time order."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DynamoBacklog:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._client = client
        self._table = table_name

    def defer(
        self,
        files: Sequence[tuple[FileRef, str]],
        *,
        now: datetime,
        force: bool = False,
        priority_high: bool = False,
        retry_at: datetime | None = None,
        reason: str | None = None,
    ) -> int:
        wanted = dict(files)
        already = self.pending(list(wanted))
        new = [f for f in wanted if f not in already]
        deferred_at = now.isoformat()

        def put(file: FileRef) -> dict[str, Any]:
            item: dict[str, Any] = {
                "pk": BACKLOG_PK,
                "sk": file.key,
                "age": f"{deferred_at}#{file.key}",
                "vid": file.vid,
                "brIndex": file.br_index,
                "deferredAt": deferred_at,
                "origin": wanted[file][:500],
            }
            if force:
                item["force"] = True
            if priority_high:
                item["priority"] = "high"
            if retry_at is not None:
                item |= _waiting(retry_at, deferred_at, file, reason or "")
            return {"PutRequest": {"Item": typed(item)}}

        batch_write(self._client, self._table, (put(f) for f in new), store=STORE)
        return len(new)

    def oldest(self, limit: int, *, after: DeferredFile | None = None) -> list[DeferredFile]:
        return self._drainable(limit, after, oldest_first=True)

    def newest(self, limit: int, *, after: DeferredFile | None = None) -> list[DeferredFile]:
        return self._drainable(limit, after, oldest_first=False)

    def _drainable(self, limit: int, after: DeferredFile | None, *, oldest_first: bool) -> list[DeferredFile]:
        args: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND age < :below",
            "ExpressionAttributeValues": typed({":pk": BACKLOG_PK, ":below": DRAINABLE_BELOW}),
            "ScanIndexForward": oldest_first,
            "Limit": limit,
        }
        if after is not None:
            args["ExclusiveStartKey"] = typed({"pk": BACKLOG_PK, "sk": after.file.key, "age": _age(after)})
        return [_deferred(item) for item in self._query(args)["Items"]]

    def due(self, limit: int, *, now: datetime, after: DeferredFile | None = None) -> list[DeferredFile]:
        args: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND age BETWEEN :first AND :now",
            "ExpressionAttributeValues": typed(
                {":pk": BACKLOG_PK, ":first": WAITING, ":now": f"{WAITING}{stamp(now)}~"}
            ),
            "Limit": limit,
        }
        if after is not None:
            args["ExclusiveStartKey"] = typed({"pk": BACKLOG_PK, "sk": after.file.key, "age": _age(after)})
        return [_deferred(item) for item in self._query(args)["Items"]]

    def wait(self, files: Sequence[DeferredFile], *, retry_at: datetime, reason: str) -> None:
        for deferred in files:
            fields = _waiting(retry_at, deferred.deferred_at, deferred.file, reason)
            self._update(
                deferred.file,
                "SET age = :age, retryAt = :retryAt, waitReason = :why",
                {":age": fields["age"], ":retryAt": fields["retryAt"], ":why": fields["waitReason"]},
                condition="attribute_exists(pk)",
            )

    def to_daily(self, files: Sequence[DeferredFile]) -> None:
        for deferred in files:
            self._update(
                deferred.file,
                "SET age = :age REMOVE retryAt, waitReason",
                {":age": f"{deferred.deferred_at}#{deferred.file.key}"},
                condition="attribute_exists(pk)",
            )

    def parked(self, limit: int) -> list[DeferredFile]:
        args = {
            "KeyConditionExpression": "pk = :pk AND begins_with(age, :parked)",
            "ExpressionAttributeValues": typed({":pk": BACKLOG_PK, ":parked": PARKED}),
            "Limit": limit,
        }
        return [_deferred(item) for item in self._query(args)["Items"]]

    def _query(self, args: dict[str, Any], *, index: str | None = AGE_INDEX) -> dict[str, Any]:
        if index is not None:
            args = {**args, "IndexName": index}
        with store_errors(STORE):
            answer = self._client.query(TableName=self._table, **args)
        return {**answer, "Items": [plain(item) for item in answer.get("Items", [])]}

    def record_failure(self, files: Sequence[DeferredFile], error: str, *, park_after: int) -> list[FileRef]:
        parked: list[FileRef] = []
        for deferred in files:
            if self._count_failure(deferred, error) >= park_after:
                self._update(
                    deferred.file,
                    "SET age = :age, parked = :true",
                    {":age": f"{PARKED}{deferred.deferred_at}#{deferred.file.key}", ":true": True},
                )
                parked.append(deferred.file)
        return parked

    def _count_failure(self, deferred: DeferredFile, error: str) -> int:
        """One more failed drain for a file still in the backlog; its failures so far (0: gone)."""
        answer = self._update(
            deferred.file,
            "SET failures = if_not_exists(failures, :zero) + :one, lastError = :e",
            {":zero": 0, ":one": 1, ":e": error[:200]},
            condition="attribute_exists(pk)",
        )
        if answer is None:  # removed meanwhile (submitted by another path)
            return 0
        return int(plain(answer.get("Attributes", {})).get("failures", 0))

    def _update(
        self, file: FileRef, expression: str, values: dict[str, Any], *, condition: str | None = None
    ) -> dict[str, Any] | None:
        """Update one item; None when ``condition`` failed."""
        args: dict[str, Any] = {
            "TableName": self._table,
            "Key": typed({"pk": BACKLOG_PK, "sk": file.key}),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": typed(values),
            "ReturnValues": "ALL_NEW",
        }
        if condition is not None:
            args["ConditionExpression"] = condition
        with store_errors(STORE):
            try:
                return dict(self._client.update_item(**args))
            except ClientError as exc:
                if condition is not None and error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise

    def remove(self, files: Sequence[FileRef]) -> None:
        keys = dict.fromkeys(files)
        deletes = ({"DeleteRequest": {"Key": typed({"pk": BACKLOG_PK, "sk": f.key})}} for f in keys)
        batch_write(self._client, self._table, deletes, store=STORE)

    def pending(self, files: Sequence[FileRef]) -> dict[FileRef, DeferredFile]:
        keys = [typed({"pk": BACKLOG_PK, "sk": f.key}) for f in dict.fromkeys(files)]
        found = (_deferred(item) for item in batch_get(self._client, self._table, keys, store=STORE))
        return {deferred.file: deferred for deferred in found}

    def stats(self) -> tuple[int, str | None, int]:
        everything = self._count(
            {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": typed({":pk": BACKLOG_PK})},
            index=None,
        )
        waiting = self._count(
            {
                "KeyConditionExpression": "pk = :pk AND begins_with(age, :waiting)",
                "ExpressionAttributeValues": typed({":pk": BACKLOG_PK, ":waiting": WAITING}),
            },
            index=AGE_INDEX,
        )
        oldest = self.oldest(1)
        return everything, oldest[0].deferred_at if oldest else None, waiting

    def _count(self, args: dict[str, Any], *, index: str | None) -> int:
        count = 0
        args = {**args, "Select": "COUNT"}
        while True:
            answer = self._query(args, index=index)
            count += int(answer.get("Count", 0))
            if "LastEvaluatedKey" not in answer:
                return count
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _deferred(item: dict[str, Any]) -> DeferredFile:
    return DeferredFile(
        file=FileRef.from_key(str(item["sk"])),
        deferred_at=str(item["deferredAt"]),
        origin=str(item.get("origin", "")),
        force=bool(item.get("force", False)),
        failures=int(item.get("failures", 0)),
        last_error=str(item["lastError"]) if "lastError" in item else None,
        parked=bool(item.get("parked", False)),
        priority_high=item.get("priority") == "high",
        retry_at=str(item["retryAt"]) if "retryAt" in item else None,
        wait_reason=str(item["waitReason"]) if "waitReason" in item else None,
    )


def _age(deferred: DeferredFile) -> str:
    if deferred.retry_at is not None:
        return f"{WAITING}{deferred.retry_at}#{deferred.deferred_at}#{deferred.file.key}"
    return f"{deferred.deferred_at}#{deferred.file.key}"


def _waiting(retry_at: datetime, deferred_at: str, file: FileRef, reason: str) -> dict[str, str]:
    when = stamp(retry_at)
    return {"age": f"{WAITING}{when}#{deferred_at}#{file.key}", "retryAt": when, "waitReason": reason[:200]}
