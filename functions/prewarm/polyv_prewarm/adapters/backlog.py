"""DynamoDB backlog of files deferred to a later quota day, by tier.

Items ``pk = "BACKLOG"`` (the home account's; another account's ``"BACKLOG#<userid>"``:
:func:`backlog_pk`), ``sk = "<vid>#<brIndex>"`` (so a file is stored once however often it
is deferred), ``deferredAt``, ``origin``, ``force``/``priority`` when a forced or priority request
deferred it, ``explicit`` when its event named its bitrate, ``tier`` (when not normal), and
``age`` for the ``byAge`` local secondary index, whose first characters are the file's place in
the drains' order:

====================================  ==========================================================
``age``                               the file
====================================  ==========================================================
``<deferredAt>#<vid>#<br>``           normal: never sent (a date: it sorts below ``"A"``)
``L#<deferredAt>#<vid>#<br>``         a video's other definition held back on a tight day
``R#<deferredAt>#<vid>#<br>``         in doubt: its call may have reached Polyv
``B#<deferredAt>#<vid>#<br>``         backfilled by an operator
``S#<deferredAt>#<vid>#<br>``         a suspect: in a refused call bisection left unsplit
``WAIT#<retryAt>#<deferredAt>#...``   waiting out an outage, for the recovery drain (any tier)
``PARKED#<deferredAt>#<vid>#<br>``    refused in too many drains: kept, shown, no longer drained
====================================  ==========================================================

So each tier is one range of the index, read oldest or newest first (a normal file's ``age`` is
what it was before tiers existed: items written then read as normal). ``failures`` and
``lastError`` count the drains in which Polyv refused a file's call with an error this package
does not know. No TTL: a deferred file leaves once it was submitted, rejected or expired. Uses the
same low-level client as the day ledger (:mod:`polyv_prewarm.adapters.dynamo`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..domain.claims import FileClaim
from ..domain.model import BacklogFigures, DeferredFile, FileRef, Tier
from .aws_errors import error_code
from .dynamo import batch_get, batch_write, plain, store_errors, typed
from .ledger.transactions import MAX_ACTIONS, Cancelled, Part, transact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BACKLOG_PK = "BACKLOG"
AGE_INDEX = "byAge"
PARKED = "PARKED#"
WAITING = "WAIT#"  # waiting out an outage: "WAIT#<retryAt>#<deferredAt>#<vid>#<brIndex>"
NORMAL_BELOW = "A"  # normal files' ages start with a digit (a date)
STORE = "backlog"
#: Backfill writes: conditional transactions of this many files, so many at once.
BACKFILL_TRANSACTION = MAX_ACTIONS
BACKFILL_WRITERS = 4


def stamp(instant: datetime) -> str:
    """A time as the backlog writes it in ``age``: one fixed format, so that text order is time order."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Each tier's ``age`` range (the normal tier's is every age below NORMAL_BELOW).
PREFIXES = {Tier.NORMAL: "", Tier.LATER: "L#", Tier.BACKFILL: "B#", Tier.RESEND: "R#", Tier.SUSPECT: "S#"}


def _tier_age(tier: Tier, deferred_at: str, file: FileRef) -> str:
    return f"{PREFIXES[tier]}{deferred_at}#{file.key}"


def _parked_age(deferred: DeferredFile) -> str:
    return f"{PARKED}{deferred.deferred_at}#{deferred.file.key}"


def backlog_pk(userid: str, *, home: bool) -> str:
    """An account's backlog partition: the home account (the one a deployment served before it had
    several) keeps ``BACKLOG``, so its deferred files are drained on as they were; another
    account's is ``BACKLOG#<userid>``, so each account's drains read its own order alone."""
    return BACKLOG_PK if home else f"{BACKLOG_PK}#{userid}"


class DynamoBacklog:
    def __init__(self, table_name: str, client: DynamoDBClient, *, pk: str = BACKLOG_PK) -> None:
        """``pk``: the account's partition (:func:`backlog_pk`)."""
        self._client = client
        self._table = table_name
        self._pk = pk
        self._items = _Items(table_name, client, pk)

    def defer(
        self,
        files: Sequence[FileClaim],
        *,
        now: datetime,
        priority_high: bool = False,
        retry_at: datetime | None = None,
        reason: str | None = None,
        tier: Tier = Tier.NORMAL,
    ) -> int:
        wanted = {c.file: c for c in files}
        already = self.pending(list(wanted))
        new = [f for f in wanted if f not in already]
        deferred_at = now.isoformat()

        def put(file: FileRef) -> dict[str, Any]:
            claim = wanted[file]
            item = _item(file, deferred_at, claim.origin, tier, self._pk)
            if claim.rule.force:
                item["force"] = True
            if claim.rule.explicit:
                item["explicit"] = True
            if priority_high:
                item["priority"] = "high"
            if retry_at is not None:
                item |= _waiting(retry_at, deferred_at, file, reason or "")
            return {"PutRequest": {"Item": typed(item)}}

        batch_write(self._client, self._table, (put(f) for f in new), store=STORE)
        # A file already waiting in a lower tier (a backfill, a held-back definition) that is now
        # deferred as it ranks higher moves up: the lower tier must never delay it.
        for deferred in already.values():
            if tier.rank < deferred.tier.rank and not deferred.parked and not deferred.waiting:
                self._items.move(deferred, tier)
        return len(new)

    def oldest(
        self, limit: int, *, after: DeferredFile | None = None, tier: Tier = Tier.NORMAL
    ) -> list[DeferredFile]:
        return self._items.drainable(limit, after, tier, oldest_first=True)

    def newest(
        self, limit: int, *, after: DeferredFile | None = None, tier: Tier = Tier.NORMAL
    ) -> list[DeferredFile]:
        return self._items.drainable(limit, after, tier, oldest_first=False)

    def due(self, limit: int, *, now: datetime, after: DeferredFile | None = None) -> list[DeferredFile]:
        args: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND age BETWEEN :first AND :now",
            "ExpressionAttributeValues": typed(
                {":pk": self._pk, ":first": WAITING, ":now": f"{WAITING}{stamp(now)}~"}
            ),
            "Limit": limit,
        }
        if after is not None:
            args["ExclusiveStartKey"] = typed({"pk": self._pk, "sk": after.file.key, "age": _age(after)})
        return [_deferred(item) for item in self._items.query(args)["Items"]]

    def wait(self, files: Sequence[DeferredFile], *, retry_at: datetime, reason: str) -> None:
        for deferred in files:
            fields = _waiting(retry_at, deferred.deferred_at, deferred.file, reason)
            self._items.update(
                deferred.file,
                "SET age = :age, retryAt = :retryAt, waitReason = :why",
                {":age": fields["age"], ":retryAt": fields["retryAt"], ":why": fields["waitReason"]},
                condition="attribute_exists(pk)",
            )

    def to_daily(self, files: Sequence[DeferredFile]) -> None:
        for deferred in files:
            self._items.update(
                deferred.file,
                "SET age = :age REMOVE retryAt, waitReason",
                {":age": _tier_age(deferred.tier, deferred.deferred_at, deferred.file)},
                condition="attribute_exists(pk)",
            )

    def move(self, files: Sequence[DeferredFile], tier: Tier) -> None:
        """Files still in the backlog, to ``tier`` (a file found in doubt: to the resends)."""
        for deferred in files:
            self._items.move(deferred, tier)

    def add_backfill(self, files: Sequence[tuple[FileRef, str]], *, now: datetime) -> int:
        """Store a catalogue's files in the backfill tier, each only if the backlog does not hold
        it yet (a run twice stores nothing twice; a fresh deferral is never demoted): conditional
        transactions of 100, a few at once. Returns how many were new."""
        deferred_at = now.isoformat()
        chunks = _chunks(list(dict(files).items()), BACKFILL_TRANSACTION)
        with ThreadPoolExecutor(BACKFILL_WRITERS) as pool:
            return sum(pool.map(lambda chunk: self._items.backfill_chunk(chunk, deferred_at), chunks))

    def parked(self, limit: int) -> list[DeferredFile]:
        args = {
            "KeyConditionExpression": "pk = :pk AND begins_with(age, :parked)",
            "ExpressionAttributeValues": typed({":pk": self._pk, ":parked": PARKED}),
            "Limit": limit,
        }
        return [_deferred(item) for item in self._items.query(args)["Items"]]

    def record_failure(self, files: Sequence[DeferredFile], error: str, *, park_after: int) -> list[FileRef]:
        parked: list[FileRef] = []
        for deferred in files:
            if self._items.count_failure(deferred, error) >= park_after:
                self._items.update(
                    deferred.file,
                    "SET age = :age, parked = :true",
                    {":age": _parked_age(deferred), ":true": True},
                )
                parked.append(deferred.file)
        return parked

    def count_refusals(self, files: Sequence[DeferredFile], error: str) -> dict[FileRef, int]:
        return {d.file: self._items.count_failure(d, error) for d in files}

    def remove(self, files: Sequence[FileRef]) -> None:
        keys = dict.fromkeys(files)
        deletes = ({"DeleteRequest": {"Key": typed({"pk": self._pk, "sk": f.key})}} for f in keys)
        batch_write(self._client, self._table, deletes, store=STORE)

    def pending(self, files: Sequence[FileRef]) -> dict[FileRef, DeferredFile]:
        keys = [typed({"pk": self._pk, "sk": f.key}) for f in dict.fromkeys(files)]
        found = (_deferred(item) for item in batch_get(self._client, self._table, keys, store=STORE))
        return {deferred.file: deferred for deferred in found}

    def stats(self) -> BacklogFigures:
        """Every figure from one pass over the ``byAge`` index (its keys only): the tiers are
        ranges of it, and the oldest normal deferral is the first of its range."""
        args: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": typed({":pk": self._pk}),
            "ProjectionExpression": "age",
        }
        everything = waiting = 0
        tiers = dict.fromkeys(Tier, 0)
        oldest: str | None = None
        while True:
            answer = self._items.query(args)
            for item in answer["Items"]:
                age = str(item["age"])
                everything += 1
                if age.startswith(WAITING):
                    waiting += 1
                elif age < NORMAL_BELOW:
                    tiers[Tier.NORMAL] += 1
                    oldest = age if oldest is None or age < oldest else oldest
                elif (tier := _tier_of(age)) is not None:
                    tiers[tier] += 1
            if "LastEvaluatedKey" not in answer:
                break
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        deferred_at = oldest.rsplit("#", 2)[0] if oldest is not None else None
        return BacklogFigures(everything, deferred_at, waiting, tiers)


class _Items:
    """The backlog's items in one table: the queries and updates its port is made of."""

    def __init__(self, table_name: str, client: DynamoDBClient, pk: str) -> None:
        self._client = client
        self._table = table_name
        self._pk = pk

    def drainable(
        self, limit: int, after: DeferredFile | None, tier: Tier, *, oldest_first: bool
    ) -> list[DeferredFile]:
        """Up to ``limit`` files of ``tier`` (neither waiting nor parked), after ``after`` (a
        cursor of the same tier)."""
        args: dict[str, Any] = {
            **_tier_range(tier, self._pk),
            "ScanIndexForward": oldest_first,
            "Limit": limit,
        }
        if after is not None:
            args["ExclusiveStartKey"] = typed({"pk": self._pk, "sk": after.file.key, "age": _age(after)})
        return [_deferred(item) for item in self.query(args)["Items"]]

    def move(self, deferred: DeferredFile, tier: Tier) -> None:
        """To ``tier``'s range (out of the waiting one, if it was there)."""
        age = {":age": _tier_age(tier, deferred.deferred_at, deferred.file)}
        if tier is Tier.NORMAL:
            expression, values = "SET age = :age REMOVE tier, retryAt, waitReason", age
        else:
            expression, values = (
                "SET age = :age, tier = :tier REMOVE retryAt, waitReason",
                {**age, ":tier": tier.value},
            )
        self.update(deferred.file, expression, values, condition="attribute_exists(pk)")

    def backfill_chunk(self, chunk: list[tuple[FileRef, str]], deferred_at: str) -> int:
        pending = dict(chunk)
        while pending:
            parts = [
                Part(
                    file.key,
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": typed(_item(file, deferred_at, origin, Tier.BACKFILL, self._pk)),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                )
                for file, origin in pending.items()
            ]
            try:
                transact(self._client, parts, retry_conflicts=True, store=STORE)
            except Cancelled as cancelled:
                if not cancelled.failed:
                    raise
                pending = {f: o for f, o in pending.items() if f.key not in cancelled.failed}
                continue
            return len(pending)
        return 0

    def query(self, args: dict[str, Any], *, index: str | None = AGE_INDEX) -> dict[str, Any]:
        if index is not None:
            args = {**args, "IndexName": index}
        with store_errors(STORE):
            answer = self._client.query(TableName=self._table, **args)
        return {**answer, "Items": [plain(item) for item in answer.get("Items", [])]}

    def count_failure(self, deferred: DeferredFile, error: str) -> int:
        """One more failed drain for a file still in the backlog; its failures so far (0: gone)."""
        answer = self.update(
            deferred.file,
            "SET failures = if_not_exists(failures, :zero) + :one, lastError = :e",
            {":zero": 0, ":one": 1, ":e": error[:200]},
            condition="attribute_exists(pk)",
        )
        if answer is None:  # removed meanwhile (submitted by another path)
            return 0
        return int(plain(answer.get("Attributes", {})).get("failures", 0))

    def update(
        self, file: FileRef, expression: str, values: dict[str, Any], *, condition: str | None = None
    ) -> dict[str, Any] | None:
        """Update one item; None when ``condition`` failed."""
        args: dict[str, Any] = {
            "TableName": self._table,
            "Key": typed({"pk": self._pk, "sk": file.key}),
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


def _tier_of(age: str) -> Tier | None:
    """The tier whose range ``age`` is in (None: parked, or waiting)."""
    return next((t for t, prefix in PREFIXES.items() if prefix and age.startswith(prefix)), None)


def _tier_range(tier: Tier, pk: str) -> dict[str, Any]:
    """The key condition of one tier's range of the ``byAge`` index."""
    if tier is Tier.NORMAL:
        return {
            "KeyConditionExpression": "pk = :pk AND age < :below",
            "ExpressionAttributeValues": typed({":pk": pk, ":below": NORMAL_BELOW}),
        }
    return {
        "KeyConditionExpression": "pk = :pk AND begins_with(age, :tier)",
        "ExpressionAttributeValues": typed({":pk": pk, ":tier": PREFIXES[tier]}),
    }


def _chunks(items: list[tuple[FileRef, str]], size: int) -> Iterator[list[tuple[FileRef, str]]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _item(file: FileRef, deferred_at: str, origin: str, tier: Tier, pk: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": pk,
        "sk": file.key,
        "age": _tier_age(tier, deferred_at, file),
        "vid": file.vid,
        "brIndex": file.br_index,
        "deferredAt": deferred_at,
        "origin": origin[:500],
    }
    if tier is not Tier.NORMAL:
        item["tier"] = tier.value
    return item


def _deferred(item: dict[str, Any]) -> DeferredFile:
    return DeferredFile(
        file=FileRef.from_key(str(item["sk"])),
        deferred_at=str(item["deferredAt"]),
        origin=str(item.get("origin", "")),
        force=bool(item.get("force", False)),
        explicit=bool(item.get("explicit", False)),
        failures=int(item.get("failures", 0)),
        last_error=str(item["lastError"]) if "lastError" in item else None,
        parked=bool(item.get("parked", False)),
        priority_high=item.get("priority") == "high",
        retry_at=str(item["retryAt"]) if "retryAt" in item else None,
        wait_reason=str(item["waitReason"]) if "waitReason" in item else None,
        tier=Tier(str(item.get("tier", Tier.NORMAL.value))),
    )


def _age(deferred: DeferredFile) -> str:
    if deferred.retry_at is not None:
        return f"{WAITING}{deferred.retry_at}#{deferred.deferred_at}#{deferred.file.key}"
    if deferred.parked:
        return _parked_age(deferred)
    return _tier_age(deferred.tier, deferred.deferred_at, deferred.file)


def _waiting(retry_at: datetime, deferred_at: str, file: FileRef, reason: str) -> dict[str, str]:
    when = stamp(retry_at)
    return {"age": f"{WAITING}{when}#{deferred_at}#{file.key}", "retryAt": when, "waitReason": reason[:200]}
