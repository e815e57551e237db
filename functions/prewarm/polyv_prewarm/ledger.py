"""DynamoDB day ledger: one item per quota day holds the day's file count and every file's fate.

Item ``pk = "DAY#<YYYY-MM-DD>"``, ``sk = "LEDGER"``:

* ``used`` (N): files counted against the day's quota; never above the limit
* ``exhausted`` (BOOL): Polyv itself said the quota is spent
* ``f`` (M): ``"<vid>#<brIndex>" -> {s: state, at, t: taskId, r: reason, o: origin, d: duplicates}``
* ``expiresAt`` (N): TTL, the end of the day plus the retention

Why one item and not one item per file: claiming a chunk of 100 files and counting them must be
one atomic step, and the benchmark budget is a handful of requests per 100 files. Per-file items
would need a 100-item transaction (moto, which the tests run against, allows 25) plus 4 batch
writes to record the outcome. On one item, one conditional ``UpdateItem`` claims and counts a
whole chunk (``attribute_not_exists`` per file, ``used <= limit - n``), and one more records its
outcome. At Polyv's 2000 files a day the item stays near 200 KB, under DynamoDB's 400 KB.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from .model import EntryState, FileRef, LedgerEntry, QuotaView
from .ports import ClaimResult, Settlement, StoreUnavailable
from .quotaday import day_end

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

LEDGER_SK = "LEDGER"
MAX_EXPRESSION = 3800  # DynamoDB allows 4 KB per expression; keep a margin
CLAIM_ATTEMPTS = 25  # each failed attempt means another invocation changed the day: progress

_deserialize = TypeDeserializer().deserialize


def day_key(day: str) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": LEDGER_SK}}


def parse_entry(raw: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        state=EntryState(raw["s"]),
        at=str(raw["at"]),
        task_id=raw.get("t"),
        reason=raw.get("r"),
        origin=raw.get("o"),
        duplicates=int(raw.get("d", 0)),
    )


def _entry_value(state: EntryState, now: datetime, **fields: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {"s": {"S": state.value}, "at": {"S": now.isoformat()}}
    for name, text in fields.items():
        if text:
            value[name] = {"S": text[:500]}
    return {"M": value}


class _Update:
    """Builds ``SET`` clauses with placeholders, split so no expression passes the size limit."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], dict[str, str], dict[str, Any]]] = [([], {"#f": "f"}, {})]

    def add(self, clause: str, names: dict[str, str], values: dict[str, Any]) -> None:
        clauses, batch_names, batch_values = self.batches[-1]
        if sum(len(c) + 2 for c in clauses) + len(clause) > MAX_EXPRESSION:
            self.batches.append(([], {"#f": "f"}, {}))
            clauses, batch_names, batch_values = self.batches[-1]
        clauses.append(clause)
        batch_names.update(names)
        batch_values.update(values)


class DynamoDayLedger:
    def __init__(
        self, table_name: str, client: DynamoDBClient, *, timezone: ZoneInfo, retention_days: int = 35
    ):
        self._table = table_name
        self._client = client
        self._tz = timezone
        self._retention = timedelta(days=retention_days)

    # -- writes ---------------------------------------------------------------------------------
    def claim(
        self,
        day: str,
        files: Sequence[tuple[FileRef, str]],
        limit: int,
        *,
        now: datetime,
        force: bool = False,
    ) -> ClaimResult:
        origins = dict(files)
        result = ClaimResult()
        pending = list(origins)
        expected: dict[FileRef, str | None] = dict.fromkeys(pending)  # None: must not exist yet
        if force:
            for file, current in self._entries(day, pending).items():
                expected[file] = current.at
        day_ensured = False
        for _ in range(CLAIM_ATTEMPTS):
            if not pending:
                return result
            batch, rest = pending[:limit], pending[limit:]
            try:
                self._claim_update(day, batch, expected, origins, limit, now)
            except (_DayMissing, _ConditionFailed) as failed:
                item = failed.item if isinstance(failed, _ConditionFailed) else {}
                if "used" not in item:  # the day's first claim: create the day item, then claim
                    if day_ensured:
                        raise StoreUnavailable(
                            "day ledger: claim refused (ValidationException) on an existing day"
                        ) from None
                    self._ensure_day(day)
                    day_ensured = True
                    continue
                if item.get("exhausted"):
                    result.no_room += pending
                    return result
                raw_entries = item.get("f", {})
                still: list[FileRef] = []
                for file in pending:
                    raw = raw_entries.get(file.key)
                    entry = parse_entry(raw) if raw is not None else None
                    if entry is None:
                        expected[file] = None
                        still.append(file)
                    elif force or entry.reclaimable(now):
                        expected[file] = entry.at  # claim it only if nobody changed it meanwhile
                        still.append(file)
                    else:
                        result.known[file] = entry
                room = max(0, limit - int(item.get("used", 0)))
                pending, overflow = still[:room], still[room:]
                result.no_room += overflow
                continue
            result.granted += batch
            result.no_room += rest
            return result
        raise StoreUnavailable("the day ledger is too contended: gave up claiming after many attempts")

    def _claim_update(
        self,
        day: str,
        batch: Sequence[FileRef],
        expected: dict[FileRef, str | None],
        origins: dict[FileRef, str],
        limit: int,
        now: datetime,
    ) -> None:
        names = {"#f": "f"}
        values: dict[str, Any] = {":n": {"N": str(len(batch))}, ":room": {"N": str(limit - len(batch))}}
        sets = ["used = used + :n"]
        conditions = ["used <= :room", "attribute_not_exists(exhausted)"]
        for i, file in enumerate(batch):
            names[f"#k{i}"] = file.key
            values[f":v{i}"] = _entry_value(EntryState.CLAIMED, now, o=origins.get(file))
            sets.append(f"#f.#k{i} = :v{i}")
            version = expected.get(file)
            if version is None:
                conditions.append(f"attribute_not_exists(#f.#k{i})")
            else:
                names["#at"] = "at"  # DynamoDB refuses names an expression does not use
                values[f":x{i}"] = {"S": version}
                conditions.append(f"#f.#k{i}.#at = :x{i}")
        try:
            self._client.update_item(
                TableName=self._table,
                Key=day_key(day),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ConditionalCheckFailedException":
                old: dict[str, Any] = getattr(exc, "response", {}).get("Item") or {}  # ALL_OLD
                raise _ConditionFailed({k: _deserialize(v) for k, v in old.items()}) from None
            if code == "ValidationException":  # no day item yet: no `used`, no `f` map to set into
                raise _DayMissing from None
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None

    def _ensure_day(self, day: str) -> None:
        expires = int((day_end(day, self._tz) + self._retention).timestamp())
        self._update(
            day,
            "SET #f = if_not_exists(#f, :empty), used = if_not_exists(used, :zero), "
            "expiresAt = if_not_exists(expiresAt, :ttl)",
            {"#f": "f"},
            {":empty": {"M": {}}, ":zero": {"N": "0"}, ":ttl": {"N": str(expires)}},
        )

    def settle(self, day: str, settlement: Settlement, *, now: datetime) -> None:
        origins = settlement.origins
        update = _Update()
        n = 0

        def put(file: FileRef, value: dict[str, Any]) -> None:
            nonlocal n
            update.add(f"#f.#e{n} = :e{n}", {f"#e{n}": file.key}, {f":e{n}": value})
            n += 1

        for file, task_id in settlement.submitted.items():
            put(file, _entry_value(EntryState.SUBMITTED, now, t=task_id, o=origins.get(file)))
        for file, reason in settlement.rejected.items():
            put(file, _entry_value(EntryState.REJECTED, now, r=reason, o=origins.get(file)))
        for file in settlement.in_doubt:
            put(file, _entry_value(EntryState.IN_DOUBT, now, o=origins.get(file)))
        for file, reason in settlement.handed_back.items():
            put(file, _entry_value(EntryState.HANDED_BACK, now, r=reason, o=origins.get(file)))
        for i, file in enumerate(settlement.duplicates):
            update.add(
                f"#f.#d{i}.#dup = if_not_exists(#f.#d{i}.#dup, :zero) + :one",
                {f"#d{i}": file.key, "#dup": "d"},
                {":zero": {"N": "0"}, ":one": {"N": "1"}},
            )
        if settlement.release:
            update.add("used = used - :released", {}, {":released": {"N": str(settlement.release)}})
        for clauses, names, values in update.batches:
            if clauses:
                self._update(day, "SET " + ", ".join(clauses), names, values)

    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        try:
            self._update(
                day,
                "SET used = used + :n",
                {},
                {":n": {"N": str(count)}, ":room": {"N": str(limit - count)}},
                condition="used <= :room AND attribute_not_exists(exhausted)",
            )
        except _ConditionFailed:
            return False
        return True

    def mark_exhausted(self, day: str, limit: int) -> None:
        self._ensure_day(day)
        self._update(
            day,
            "SET exhausted = :true, used = :limit",
            {},
            {":true": {"BOOL": True}, ":limit": {"N": str(limit)}},
        )

    def _update(
        self,
        day: str,
        expression: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        condition: str | None = None,
    ) -> None:
        args: dict[str, Any] = {"TableName": self._table, "Key": day_key(day), "UpdateExpression": expression}
        if names:
            args["ExpressionAttributeNames"] = names
        if values:
            args["ExpressionAttributeValues"] = values
        if condition:
            args["ConditionExpression"] = condition
        try:
            self._client.update_item(**args)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise _ConditionFailed({}) from None
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None

    # -- reads ----------------------------------------------------------------------------------
    def usage(self, day: str, limit: int) -> QuotaView:
        item = self._get(day, "used, exhausted", {})
        return QuotaView(
            day=day, used=int(item.get("used", 0)), limit=limit, exhausted=bool(item.get("exhausted"))
        )

    def entries(self, day: str) -> dict[FileRef, LedgerEntry]:
        item = self._get(day, "#f", {"#f": "f"})
        return {FileRef.from_key(key): parse_entry(raw) for key, raw in item.get("f", {}).items()}

    def _entries(self, day: str, files: Sequence[FileRef]) -> dict[FileRef, LedgerEntry]:
        if not files:
            return {}
        names = {"#f": "f", **{f"#k{i}": f.key for i, f in enumerate(files)}}
        item = self._get(day, ", ".join(f"#f.#k{i}" for i in range(len(files))), names)
        return {FileRef.from_key(key): parse_entry(raw) for key, raw in item.get("f", {}).items()}

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        names = {"#f": "f", "#b1": f"{vid}#1", "#b2": f"{vid}#2", "#b3": f"{vid}#3"}
        found: dict[str, dict[int, LedgerEntry]] = {}
        for keys in _slices([day_key(d) for d in days], 100):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys,
                    "ProjectionExpression": "pk, #f.#b1, #f.#b2, #f.#b3",
                    "ExpressionAttributeNames": names,
                }
            }
            while request:
                try:
                    answer = self._client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
                for raw in answer.get("Responses", {}).get(self._table, []):
                    item = {k: _deserialize(v) for k, v in raw.items()}
                    day = str(item["pk"]).removeprefix("DAY#")
                    for key, entry in item.get("f", {}).items():
                        found.setdefault(day, {})[FileRef.from_key(key).br_index] = parse_entry(entry)
                request = dict(answer.get("UnprocessedKeys") or {})
        return found

    def _get(self, day: str, projection: str, names: dict[str, str]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "TableName": self._table,
            "Key": day_key(day),
            "ConsistentRead": True,
            "ProjectionExpression": projection,
        }
        if names:
            args["ExpressionAttributeNames"] = names
        try:
            raw = self._client.get_item(**args).get("Item") or {}
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
        return {k: _deserialize(v) for k, v in raw.items()}


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item


class _DayMissing(Exception):
    pass


def _slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
