"""DynamoDB day ledger: per quota day, the count of files sent and one item per file handled.

Items of one quota day (``pk = "DAY#<YYYY-MM-DD>"``), all with ``expiresAt`` (TTL: the end of the
day plus the retention):

* ``sk = "QUOTA"``: ``used`` (N), ``exhausted`` (BOOL: Polyv said so)
* ``sk = "FILE#<vid>#<brIndex>"``: ``s`` state, ``at``, ``t`` taskId, ``r`` reason, ``o`` origin,
  ``w`` the claim call that owns it, ``l`` the owner's lease (epoch ms, while claimed), ``x`` when
  a file refused for now (its bitrate did not exist yet) may be asked again (epoch ms)
* ``sk = "RELEASE#<owner>"``: the receipt of quota given back by one claim's record (``n``), so
  that a record run again gives nothing back twice

Every item stays under 1 KB (origins and reasons are capped), so every write costs the same
whether it is the day's first file or its 100,000th: no item grows with the day's traffic.

A claim is one ``TransactWriteItems``: the counter (``used <= limit - n``, not exhausted) and one
conditional ``Put`` per file, whose condition says in DynamoDB itself whether the file may be
claimed (absent, handed back, in doubt, or claimed under a lease that has ended). DynamoDB allows
100 actions a transaction, so a chunk of 100 files plus its counter is claimed as two balanced
parts (50 + 50), each atomic with its own count. The record of a chunk's fates is one more
transaction of up to 100 updates, each conditional on the claim still being ours.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from ..domain.model import EntryState, FileRef, Lease, LedgerEntry, QuotaView, epoch_ms
from ..domain.ports import ClaimResult, Settlement, StoreUnavailable
from ..domain.quotaday import day_end
from .dynamo import batch_get, error_code, plain, store_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

QUOTA_SK = "QUOTA"
FILE_SK = "FILE#"
RELEASE_SK = "RELEASE#"
MAX_ACTIONS = 100  # per TransactWriteItems, in DynamoDB and in moto 5
MAX_CLAIM_FILES = MAX_ACTIONS - 1  # the counter takes one action
CLAIM_ATTEMPTS = 25  # each failed attempt means another invocation changed the day: progress
TEXT_CAP = 200  # origins and reasons: keeps every file item under 1 KB (one write unit)

STORE = "day ledger"


def quota_key(day: str) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": QUOTA_SK}}


def file_key(day: str, file: FileRef) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": FILE_SK + file.key}}


def parse_entry(item: Mapping[str, Any]) -> LedgerEntry:
    lease = item.get("l")
    return LedgerEntry(
        state=EntryState(item["s"]),
        at=str(item["at"]),
        task_id=item.get("t"),
        reason=item.get("r"),
        origin=item.get("o"),
        owner=item.get("w"),
        lease_until_ms=int(lease) if lease is not None else None,
        retry_after_ms=int(item["x"]) if item.get("x") is not None else None,
    )


def balanced_parts(files: Sequence[FileRef], most: int) -> list[list[FileRef]]:
    """Split into the fewest parts of at most ``most``, as even as possible (100 -> 50 + 50)."""
    if not files:
        return []
    count = math.ceil(len(files) / most)
    size, extra = divmod(len(files), count)
    parts, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        parts.append(list(files[start:end]))
        start = end
    return parts


def _text(value: str) -> dict[str, str]:
    return {"S": value[:TEXT_CAP]}


# Conditions of a file's claim, evaluated by DynamoDB in the same transaction as the count
# (``x``: when a file refused for now, a bitrate that did not exist yet, may be asked again).
_CLAIMABLE = "attribute_not_exists(pk) OR #s IN (:doubt, :back) OR (#s = :claimed AND #l < :now) OR #x < :now"
_CLAIMABLE_EXPLICIT = (
    "attribute_not_exists(pk) OR #s IN (:doubt, :back) OR (#s = :claimed AND #l < :now) "
    "OR attribute_exists(#x)"
)
_CLAIMABLE_FORCED = "attribute_not_exists(pk) OR #s <> :claimed OR #l < :now"


class _ClaimCall(NamedTuple):
    """What one ``claim`` asks, shared by its parts and their attempts."""

    day: str
    origins: Mapping[FileRef, str]
    limit: int
    lease: Lease
    now: datetime
    conditions: Mapping[FileRef, str]  # file -> its claim condition, when not _CLAIMABLE


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
        lease: Lease,
        now: datetime,
        forced: Collection[FileRef] = (),
        explicit: Collection[FileRef] = (),
    ) -> ClaimResult:
        conditions = {f: _CLAIMABLE_FORCED for f in forced}
        conditions |= {f: _CLAIMABLE_EXPLICIT for f in explicit if f not in conditions}
        call = _ClaimCall(day, dict(files), limit, lease, now, conditions)
        result = ClaimResult()
        for part in balanced_parts(list(call.origins), MAX_CLAIM_FILES):
            if result.no_room:  # the quota ran out in an earlier part: no need to ask again
                result.no_room += part
                continue
            self._claim_part(call, part, result)
        return result

    def _claim_part(self, call: _ClaimCall, part: list[FileRef], result: ClaimResult) -> None:
        """Claim one part (one transaction with its count), trying again with what is still
        claimable while concurrent invocations change the day."""
        pending = part[: call.limit]
        result.no_room += part[call.limit :]
        for _ in range(CLAIM_ATTEMPTS):
            if not pending:
                return
            try:
                self._transact(self._claim_actions(call, pending))
            except _Cancelled as cancelled:
                refusal = _ClaimRefusal.of(cancelled)
                if refusal.ours(call.lease):
                    # This very request committed, its answer was lost and the SDK sent it again
                    # (DynamoDB's idempotency token makes that a no-op; moto has none): all ours.
                    result.granted += pending
                    return
                if refusal.conflict_only:
                    time.sleep(random.uniform(0, 0.02))  # a concurrent transaction: step aside
                pending = _still_claimable(call, pending, refusal, result)
                continue
            result.granted += pending
            return
        raise StoreUnavailable("the day ledger is too contended: gave up claiming after many attempts")

    def _claim_actions(self, call: _ClaimCall, files: Sequence[FileRef]) -> list[dict[str, Any]]:
        day, origins, lease, now = call.day, call.origins, call.lease, call.now
        expires = self._expires(day)
        actions: list[dict[str, Any]] = [self._count_action(day, len(files), limit=call.limit)]
        at = {"S": now.isoformat()}
        for file in files:
            condition = call.conditions.get(file, _CLAIMABLE)
            values: dict[str, Any] = {
                ":claimed": {"S": EntryState.CLAIMED.value},
                ":now": {"N": str(epoch_ms(now))},
            }
            names = {"#s": "s", "#l": "l"}
            if condition is not _CLAIMABLE_FORCED:
                values[":doubt"] = {"S": EntryState.IN_DOUBT.value}
                values[":back"] = {"S": EntryState.HANDED_BACK.value}
                names["#x"] = "x"
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **file_key(day, file),
                            "s": {"S": EntryState.CLAIMED.value},
                            "at": at,
                            "o": _text(origins.get(file) or "-"),
                            "w": {"S": lease.owner},
                            "l": {"N": str(lease.until_ms)},
                            "expiresAt": expires,
                        },
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        return actions

    def _count_action(self, day: str, n: int, *, limit: int | None = None) -> dict[str, Any]:
        """Count ``n`` more files on the day's counter (creating it), within ``limit`` if given:
        ``used <= limit - n`` and the day not exhausted; the counter is returned if it refuses."""
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": quota_key(day),
            "UpdateExpression": "SET used = if_not_exists(used, :zero) + :n, "
            "expiresAt = if_not_exists(expiresAt, :ttl)",
            "ExpressionAttributeValues": {
                ":zero": {"N": "0"},
                ":n": {"N": str(n)},
                ":ttl": self._expires(day),
            },
        }
        if limit is not None:
            update["ConditionExpression"] = (
                "(attribute_not_exists(used) OR used <= :room) AND attribute_not_exists(exhausted)"
            )
            update["ExpressionAttributeValues"][":room"] = {"N": str(limit - n)}
            update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"Update": update}

    # -- record ---------------------------------------------------------------------------------
    def settle(self, day: str, settlement: Settlement, *, lease: Lease, now: datetime) -> None:
        actions: list[dict[str, Any]] = []
        if settlement.release:
            actions += self._release_actions(day, settlement.release, lease)
        for file, task_id in settlement.submitted.items():
            actions.append(self._fate_action(day, file, EntryState.SUBMITTED, lease, now, task_id=task_id))
        for file, reason in settlement.rejected.items():
            retry_after = settlement.retry_after_ms.get(file)
            actions.append(
                self._fate_action(
                    day, file, EntryState.REJECTED, lease, now, reason=reason, retry_after_ms=retry_after
                )
            )
        for file in settlement.in_doubt:
            actions.append(self._fate_action(day, file, EntryState.IN_DOUBT, lease, now))
        for file, reason in settlement.handed_back.items():
            actions.append(self._fate_action(day, file, EntryState.HANDED_BACK, lease, now, reason=reason))
        for start in range(0, len(actions), MAX_ACTIONS):
            self._transact_owned(actions[start : start + MAX_ACTIONS])

    def _fate_action(
        self,
        day: str,
        file: FileRef,
        state: EntryState,
        lease: Lease,
        now: datetime,
        *,
        task_id: str | None = None,
        reason: str | None = None,
        retry_after_ms: int | None = None,
    ) -> dict[str, Any]:
        """Record one file's fate, ending its lease, if the claim is still ours."""
        values = {":s": _state(state), ":at": {"S": now.isoformat()}, ":owner": {"S": lease.owner}}
        sets = "SET #s = :s, #at = :at"
        for name, value in (("t", task_id), ("r", reason)):
            if value is not None:
                values[f":{name}"] = _text(value)
                sets += f", {name} = :{name}"
        if retry_after_ms is not None:
            values[":x"] = {"N": str(retry_after_ms)}
            sets += ", x = :x"
        return {
            "Update": {
                "TableName": self._table,
                "Key": file_key(day, file),
                "UpdateExpression": sets + " REMOVE #l",
                "ConditionExpression": "#w = :owner",
                "ExpressionAttributeNames": {"#s": "s", "#at": "at", "#l": "l", "#w": "w"},
                "ExpressionAttributeValues": values,
            }
        }

    def _release_actions(self, day: str, release: int, lease: Lease) -> list[dict[str, Any]]:
        """Give back ``release`` files of quota, once: with a receipt item (``RELEASE#<owner>``)
        that only the first run can create, so a record run again (after an error whose write
        had committed) cannot give the same quota back twice."""
        return [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": quota_key(day),
                    "UpdateExpression": "SET used = used - :released",
                    "ExpressionAttributeValues": {":released": {"N": str(release)}},
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": {"S": f"DAY#{day}"},
                        "sk": {"S": RELEASE_SK + lease.owner},
                        "n": {"N": str(release)},
                        "expiresAt": self._expires(day),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]

    def _transact_owned(self, actions: list[dict[str, Any]]) -> None:
        """Run a record. Drop the files whose claim another invocation took over once our lease
        ended (theirs is the newer truth), and a release whose receipt exists (done before), then
        run the rest again."""
        while actions:
            try:
                self._transact(actions, retry_conflicts=True)
                return
            except _Cancelled as cancelled:
                lost = {i for i, item in enumerate(cancelled.failed) if item is not None}
                if not lost:
                    raise StoreUnavailable("day ledger: a record kept being cancelled") from None
                for i in list(lost):
                    if "Put" in actions[i] and i > 0:  # the release's receipt: drop the release too
                        lost.add(i - 1)
                actions = [a for i, a in enumerate(actions) if i not in lost]

    def carry_over(
        self, day: str, submitted: Mapping[FileRef, str], origins: Mapping[FileRef, str], *, now: datetime
    ) -> None:
        expires = self._expires(day)
        for part in balanced_parts(list(submitted), MAX_CLAIM_FILES):
            actions: list[dict[str, Any]] = [self._count_action(day, len(part))]
            actions += [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **file_key(day, file),
                            "s": _state(EntryState.SUBMITTED),
                            "at": {"S": now.isoformat()},
                            "t": _text(submitted[file]),
                            "o": _text(origins.get(file) or "-"),
                            "w": {"S": uuid.uuid4().hex},
                            "expiresAt": expires,
                        },
                    }
                }
                for file in part
            ]
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
            "SET exhausted = :true, used = if_not_exists(used, :zero) + :zero, "
            "expiresAt = if_not_exists(expiresAt, :ttl)",
            {":true": {"BOOL": True}, ":zero": {"N": "0"}, ":ttl": self._expires(day)},
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
        with store_errors(STORE):
            try:
                self._client.update_item(**args)
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise _Cancelled([]) from None
                raise

    # -- reads ----------------------------------------------------------------------------------
    def usage(self, day: str, limit: int) -> QuotaView:
        with store_errors(STORE):
            raw = self._client.get_item(TableName=self._table, Key=quota_key(day), ConsistentRead=True).get(
                "Item"
            )
        item = plain(raw or {})
        return QuotaView(
            day=day, used=int(item.get("used", 0)), limit=limit, exhausted=bool(item.get("exhausted"))
        )

    def lookup(self, day: str, files: Sequence[FileRef]) -> dict[FileRef, LedgerEntry]:
        found: dict[FileRef, LedgerEntry] = {}
        for item in self._batch_get([file_key(day, f) for f in dict.fromkeys(files)]):
            found[FileRef.from_key(str(item["sk"]).removeprefix(FILE_SK))] = parse_entry(item)
        return found

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        files = [FileRef(vid, br) for br in (1, 2, 3)]
        found: dict[str, dict[int, LedgerEntry]] = {}
        for item in self._batch_get([file_key(day, f) for day in days for f in files]):
            day = str(item["pk"]).removeprefix("DAY#")
            file = FileRef.from_key(str(item["sk"]).removeprefix(FILE_SK))
            found.setdefault(day, {})[file.br_index] = parse_entry(item)
        return found

    def _batch_get(self, keys: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        return batch_get(self._client, self._table, keys, store=STORE)

    # -- transactions ---------------------------------------------------------------------------
    def _transact(self, actions: list[dict[str, Any]], *, retry_conflicts: bool = False) -> None:
        """Run a transaction. When conditions fail, raise :class:`_Cancelled`; a conflict with a
        concurrent transaction is tried again when ``retry_conflicts``, else a ``_Cancelled``
        whose conditions all held."""
        for attempt in range(5 if retry_conflicts else 1):
            reasons = self._try_transaction(actions)
            if reasons is None:
                return
            codes = {r.get("Code") for r in reasons}
            if "ConditionalCheckFailed" in codes:
                raise _Cancelled(
                    [
                        plain(r.get("Item") or {}) if r.get("Code") == "ConditionalCheckFailed" else None
                        for r in reasons
                    ]
                )
            if not codes <= _TRANSIENT:
                # e.g. ThrottlingError, ValidationError (an item over 400 KB): not ours to fix
                raise StoreUnavailable(f"day ledger: transaction cancelled ({sorted(map(str, codes))})")
            if not retry_conflicts:
                raise _Cancelled([None] * len(actions))
            time.sleep(random.uniform(0, 0.02 * 2**attempt))  # a concurrent transaction: step aside
        raise StoreUnavailable("day ledger: transaction kept conflicting with concurrent ones")

    def _try_transaction(self, actions: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """None once committed; else DynamoDB's cancellation reasons, one per action."""
        with store_errors(STORE):
            try:
                self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
                return None
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                return list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]


#: Cancellation reasons that say "try again": another transaction, or throttling.
_TRANSIENT = {"None", None, "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


def _state(state: EntryState) -> dict[str, str]:
    return {"S": state.value}


class _Cancelled(Exception):
    """A transaction cancelled because conditions failed: per action, the item whose condition
    failed (``{}`` if it had no item) or None (its condition held)."""

    def __init__(self, failed: list[dict[str, Any] | None]) -> None:
        self.failed = failed or [None]


class _ClaimRefusal(NamedTuple):
    """A cancelled claim, by name: the day's counter and the part's files."""

    counter: dict[str, Any] | None  # the counter, if its condition failed (no room, exhausted)
    files: list[dict[str, Any] | None]  # per file: its item if its condition failed

    @classmethod
    def of(cls, cancelled: _Cancelled) -> _ClaimRefusal:
        return cls(cancelled.failed[0], cancelled.failed[1:])

    def ours(self, lease: Lease) -> bool:
        """A file refused because it is claimed under this very lease: our own request committed."""
        return any(item is not None and item.get("w") == lease.owner for item in self.files)

    @property
    def conflict_only(self) -> bool:
        return self.counter is None and all(item is None for item in self.files)

    def room(self, limit: int) -> int | None:
        """Files the counter has room for, if it refused; None if its condition held."""
        if self.counter is None:
            return None
        return 0 if self.counter.get("exhausted") else max(0, limit - int(self.counter.get("used", 0)))


def _still_claimable(
    call: _ClaimCall, pending: list[FileRef], refusal: _ClaimRefusal, result: ClaimResult
) -> list[FileRef]:
    """Sort a refused part's files: another invocation's live claim (held), handled today (known),
    or still claimable; of the last, keep as many as the counter has room for (the rest: no room)."""
    still: list[FileRef] = []
    for file, item in zip(pending, refusal.files, strict=False):
        entry = parse_entry(item) if item else None
        condition = call.conditions.get(file)
        if entry is not None and entry.held(call.now):
            result.held[file] = entry
        elif entry is not None and not entry.claimable(
            call.now, force=condition is _CLAIMABLE_FORCED, explicit=condition is _CLAIMABLE_EXPLICIT
        ):
            result.known[file] = entry
        else:
            still.append(file)  # its condition held, or it changed since: try again
    room = refusal.room(call.limit)
    if room is not None:
        still, overflow = still[:room], still[room:]
        result.no_room += overflow
    return still
