"""DynamoDB day ledger: per quota day, the count of files sent and every file's fate.

Items of one quota day (``pk = "DAY#<YYYY-MM-DD>"``):

* ``sk = "QUOTA"``: ``used`` (N, never above the limit), ``exhausted`` (BOOL: Polyv said so)
* ``sk = "FILES#<0..7>"``: ``f`` (M), ``"<vid>#<brIndex>" -> {s: state, at, t: taskId, r: reason,
  o: origin, d: duplicates}``; a file lives in shard ``crc32(key) % 8``

All items carry ``expiresAt`` (TTL: the end of the day plus the retention).

Claiming a chunk of up to 100 files and counting them is one ``TransactWriteItems``: an update of
the counter (``used <= limit - n``, not exhausted) and one update per shard the files fall in,
each with ``attribute_not_exists`` per file. Recording the outcome is one more. So the normal path
costs two writes per 100 files, and concurrent invocations can neither pass the limit nor claim
the same file twice. Why shards and not one item per file: per-file items need a 100-item
transaction (moto, which the tests run against, allows 25) plus four batch writes to record the
outcome. Why not one item per day: 2000 entries of ~150 bytes come close to DynamoDB's 400 KB
item limit; eight shards hold about 20,000 files a day.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
import zlib
from collections import defaultdict
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

SHARDS = 8
QUOTA_SK = "QUOTA"
MAX_EXPRESSION = 3800  # DynamoDB allows 4 KB per expression; keep a margin
CLAIM_ATTEMPTS = 25  # each failed attempt means another invocation changed the day: progress

_deserialize = TypeDeserializer().deserialize


def shard_of(file: FileRef) -> int:
    return zlib.crc32(file.key.encode()) % SHARDS


def quota_key(day: str) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": QUOTA_SK}}


def shard_key(day: str, shard: int) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": f"FILES#{shard}"}}


def parse_entry(raw: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        state=EntryState(raw["s"]),
        at=str(raw["at"]),
        task_id=raw.get("t"),
        reason=raw.get("r"),
        origin=raw.get("o"),
        duplicates=int(raw.get("d", 0)),
        claim_token=raw.get("c"),
    )


def _entry_value(state: EntryState, now: datetime, **fields: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {"s": {"S": state.value}, "at": {"S": _iso(now)}}
    for name, text in fields.items():
        if text:
            value[name] = {"S": text[:200]}
    return {"M": value}


@functools.lru_cache(maxsize=8)
def _iso(now: datetime) -> str:
    return now.isoformat()  # one claim stamps up to 100 entries with the same instant


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserialize(v) for k, v in item.items()}


class _Clauses:
    """``SET`` clauses for one item, split so no expression passes the size limit."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], dict[str, str], dict[str, Any]]] = []

    def add(self, clause: str, names: dict[str, str], values: dict[str, Any]) -> None:
        if not self.batches or sum(len(c) + 2 for c in self.batches[-1][0]) + len(clause) > MAX_EXPRESSION:
            self.batches.append(([], {}, {}))
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

    def _expires(self, day: str) -> dict[str, str]:
        return {"N": str(int((day_end(day, self._tz) + self._retention).timestamp()))}

    # -- claim ----------------------------------------------------------------------------------
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
            for file, current in self.entries(day).items():
                if file in expected:
                    expected[file] = current.at
        # Marks every entry this call writes. If a write committed but its answer was lost and the
        # SDK sent it again (DynamoDB's idempotency token makes that a no-op; moto has none), the
        # refusal shows our own entries: those files are ours, already counted.
        token = uuid.uuid4().hex
        for _ in range(CLAIM_ATTEMPTS):
            if not pending:
                return result
            batch, rest = pending[:limit], pending[limit:]
            try:
                self._transact(self._claim_actions(day, batch, expected, origins, limit, now, token))
            except _Cancelled as cancelled:
                counter, shards = cancelled.items[0], cancelled.items[1:]
                if counter is not None and counter.get("exhausted"):
                    result.no_room += pending
                    return result
                if counter is not None and "used" not in counter:
                    # No such day yet: create its items with this claim, unless someone just did.
                    if self._create_day(day, batch, origins, now, token):
                        result.granted += batch
                        result.no_room += rest
                        return result
                    continue
                answered = _answered(shards)
                still: list[FileRef] = []
                for file in pending:
                    if file in answered:  # its shard refused: we now know the file's current entry
                        entry = answered[file]
                        if entry is not None and entry.claim_token == token:
                            result.granted.append(file)
                            continue
                        if entry is not None and not force and not entry.reclaimable(now):
                            result.known[file] = entry
                            continue
                        expected[file] = entry.at if entry is not None else None
                    still.append(file)
                room = len(still) if counter is None else max(0, limit - int(counter["used"]))
                pending, overflow = still[:room], still[room:]
                result.no_room += overflow
                if all(item is None for item in cancelled.items):
                    time.sleep(random.uniform(0, 0.02))  # a concurrent transaction: step aside
                continue
            result.granted += batch
            result.no_room += rest
            return result
        raise StoreUnavailable("the day ledger is too contended: gave up claiming after many attempts")

    def _claim_actions(
        self,
        day: str,
        batch: Sequence[FileRef],
        expected: dict[FileRef, str | None],
        origins: dict[FileRef, str],
        limit: int,
        now: datetime,
        token: str,
    ) -> list[dict[str, Any]]:
        counter: dict[str, Any] = {
            "Update": {
                "TableName": self._table,
                "Key": quota_key(day),
                "UpdateExpression": "SET used = used + :n",
                "ConditionExpression": "used <= :room AND attribute_not_exists(exhausted)",
                "ExpressionAttributeValues": {
                    ":n": {"N": str(len(batch))},
                    ":room": {"N": str(limit - len(batch))},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        actions = [counter]
        by_shard: dict[int, list[FileRef]] = defaultdict(list)
        for file in batch:
            by_shard[shard_of(file)].append(file)
        for shard, files in sorted(by_shard.items()):
            names = {"#f": "f"}
            values: dict[str, Any] = {}
            sets, conditions = [], ["attribute_exists(#f)"]
            for i, file in enumerate(files):
                names[f"#k{i}"] = file.key
                values[f":v{i}"] = _entry_value(EntryState.CLAIMED, now, o=origins.get(file), c=token)
                sets.append(f"#f.#k{i} = :v{i}")
                version = expected.get(file)
                if version is None:
                    conditions.append(f"attribute_not_exists(#f.#k{i})")
                else:
                    names["#at"] = "at"  # DynamoDB refuses names an expression does not use
                    values[f":x{i}"] = {"S": version}
                    conditions.append(f"#f.#k{i}.#at = :x{i}")
            actions.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": shard_key(day, shard),
                        "UpdateExpression": "SET " + ", ".join(sets),
                        "ConditionExpression": " AND ".join(conditions),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    },
                    "_asked": [f.key for f in files],
                }
            )
        return actions

    def _create_day(
        self, day: str, batch: Sequence[FileRef], origins: dict[FileRef, str], now: datetime, token: str
    ) -> bool:
        """Create the day's items holding this first claim; False if they already exist."""
        expires = self._expires(day)
        by_shard: dict[int, dict[str, Any]] = {shard: {} for shard in range(SHARDS)}
        for file in batch:
            by_shard[shard_of(file)][file.key] = _entry_value(
                EntryState.CLAIMED, now, o=origins.get(file), c=token
            )
        puts = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**quota_key(day), "used": {"N": str(len(batch))}, "expiresAt": expires},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        puts += [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**shard_key(day, shard), "f": {"M": entries}, "expiresAt": expires},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for shard, entries in by_shard.items()
        ]
        try:
            self._transact(puts)
        except _Cancelled:
            return False
        return True

    # -- settle ---------------------------------------------------------------------------------
    def settle(self, day: str, settlement: Settlement, *, now: datetime) -> None:
        origins = settlement.origins
        by_shard: dict[int, _Clauses] = defaultdict(_Clauses)
        n = 0

        def put(file: FileRef, value: dict[str, Any]) -> None:
            nonlocal n
            by_shard[shard_of(file)].add(
                f"#f.#e{n} = :e{n}", {"#f": "f", f"#e{n}": file.key}, {f":e{n}": value}
            )
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
            by_shard[shard_of(file)].add(
                f"#f.#d{i}.#dup = if_not_exists(#f.#d{i}.#dup, :zero) + :one",
                {"#f": "f", f"#d{i}": file.key, "#dup": "d"},
                {":zero": {"N": "0"}, ":one": {"N": "1"}},
            )
        # One transaction per round; a shard whose clauses overflow one expression takes more rounds
        # (a transaction may not touch an item twice).
        rounds = max((len(c.batches) for c in by_shard.values()), default=0) or (
            1 if settlement.release else 0
        )
        for r in range(rounds):
            actions = []
            if r == 0 and settlement.release:
                actions.append(
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": quota_key(day),
                            "UpdateExpression": "SET used = used - :released",
                            "ExpressionAttributeValues": {":released": {"N": str(settlement.release)}},
                        }
                    }
                )
            for shard, clauses in sorted(by_shard.items()):
                if r < len(clauses.batches):
                    sets, names, values = clauses.batches[r]
                    actions.append(
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": shard_key(day, shard),
                                "UpdateExpression": "SET " + ", ".join(sets),
                                "ExpressionAttributeNames": names,
                                "ExpressionAttributeValues": values,
                            }
                        }
                    )
            if actions:
                self._transact(actions, retry_conflicts=True)

    # -- the counter alone ----------------------------------------------------------------------
    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        try:
            self._update_quota(
                day,
                "SET used = used + :n",
                {":n": {"N": str(count)}, ":room": {"N": str(limit - count)}},
                condition="used <= :room AND attribute_not_exists(exhausted)",
            )
        except _Cancelled:
            return False
        return True

    def mark_exhausted(self, day: str, limit: int) -> None:
        self._update_quota(
            day,
            "SET exhausted = :true, used = :limit, expiresAt = if_not_exists(expiresAt, :ttl)",
            {":true": {"BOOL": True}, ":limit": {"N": str(limit)}, ":ttl": self._expires(day)},
        )

    def _update_quota(
        self, day: str, expression: str, values: dict[str, Any], *, condition: str | None = None
    ) -> None:
        args: dict[str, Any] = {
            "TableName": self._table,
            "Key": quota_key(day),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
        }
        if condition:
            args["ConditionExpression"] = condition
        try:
            self._client.update_item(**args)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise _Cancelled([]) from None
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None

    # -- reads ----------------------------------------------------------------------------------
    def usage(self, day: str, limit: int) -> QuotaView:
        try:
            raw = self._client.get_item(TableName=self._table, Key=quota_key(day), ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
        item = _plain(raw or {})
        return QuotaView(
            day=day, used=int(item.get("used", 0)), limit=limit, exhausted=bool(item.get("exhausted"))
        )

    def entries(self, day: str) -> dict[FileRef, LedgerEntry]:
        found: dict[FileRef, LedgerEntry] = {}
        for item in self._batch_get([shard_key(day, s) for s in range(SHARDS)], "#f", {"#f": "f"}):
            for key, raw in item.get("f", {}).items():
                found[FileRef.from_key(key)] = parse_entry(raw)
        return found

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        files = [FileRef(vid, br) for br in (1, 2, 3)]
        shards = sorted({shard_of(f) for f in files})
        names = {"#f": "f", **{f"#b{f.br_index}": f.key for f in files}}
        found: dict[str, dict[int, LedgerEntry]] = {}
        keys = [shard_key(day, shard) for day in days for shard in shards]
        for item in self._batch_get(keys, "pk, #f.#b1, #f.#b2, #f.#b3", names):
            day = str(item["pk"]).removeprefix("DAY#")
            for key, raw in item.get("f", {}).items():
                found.setdefault(day, {})[FileRef.from_key(key).br_index] = parse_entry(raw)
        return found

    def _batch_get(
        self, keys: Sequence[dict[str, Any]], projection: str, names: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        for i in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": list(keys[i : i + 100]),
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    answer = self._client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
                for raw in answer.get("Responses", {}).get(self._table, []):
                    yield _plain(raw)
                request = dict(answer.get("UnprocessedKeys") or {})

    # -- transactions ---------------------------------------------------------------------------
    def _transact(self, actions: list[dict[str, Any]], *, retry_conflicts: bool = False) -> None:
        """Run a transaction. On cancellation, raise :class:`_Cancelled` with, per action, the item
        it found (``None`` when that action's condition held), tagged with the files it asked for."""
        asked = [action.pop("_asked", []) for action in actions]
        for _ in range(5 if retry_conflicts else 1):
            try:
                self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
                reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
                codes = {r.get("Code") for r in reasons}
                if retry_conflicts and codes <= {"None", "TransactionConflict", None}:
                    continue
                items: list[dict[str, Any] | None] = []
                for i, reason in enumerate(reasons):
                    if reason.get("Code") in ("ConditionalCheckFailed",):
                        item = _plain(reason.get("Item") or {})
                        item["_asked"] = asked[i] if i < len(asked) else []
                        items.append(item)
                    else:
                        items.append(None)
                if "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes:
                    items = [None] * len(actions)  # a concurrent transaction: just try again
                raise _Cancelled(items) from None
            except BotoCoreError as exc:
                raise StoreUnavailable(f"day ledger: {_describe(exc)}") from None
        raise StoreUnavailable("day ledger: transaction kept conflicting with concurrent ones")


def _answered(shards: Sequence[dict[str, Any] | None]) -> dict[FileRef, LedgerEntry | None]:
    """For the files of every shard whose condition failed: their entry now, or None if absent."""
    answered: dict[FileRef, LedgerEntry | None] = {}
    for item in shards:
        if item is None:
            continue
        for key in item.get("_asked", []):
            raw = item.get("f", {}).get(key)
            answered[FileRef.from_key(key)] = parse_entry(raw) if raw is not None else None
    return answered


class _Cancelled(Exception):
    def __init__(self, items: list[dict[str, Any] | None]) -> None:
        self.items = items or [None]


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
