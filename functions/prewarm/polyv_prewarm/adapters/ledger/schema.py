"""The day ledger's items, and the claim rule as DynamoDB conditions.

Items of one quota day (``pk = "DAY#<YYYY-MM-DD>"``), all with ``expiresAt`` (TTL: the end of the
day plus the retention):

* ``sk = "QUOTA"`` (the home account's; ``"QUOTA#<userid>"`` another account's,
  :class:`LedgerTable`): ``used`` (N), ``exhausted`` (BOOL: Polyv said so), ``fr`` (N: the fresh
  traffic's first-rank files claimed, the day's rate for ``domain/quota.py``) and ``frs`` (ISO:
  when the first of them was claimed)
* ``sk = "FILE#<vid>#<brIndex>"``: ``s`` state, ``at``, ``t`` taskId, ``r`` reason, ``o`` origin,
  ``w`` the claim call that owns it, ``l`` the owner's lease (epoch ms, while claimed), ``x`` when
  a file refused for now (its bitrate did not exist yet) may be asked again (epoch ms)
* ``sk = "RELEASE#<owner>"``: the receipt of quota given back by one claim's record (``n``), so
  that a record run again gives nothing back twice

Every item stays under 1 KB (origins and reasons are capped), so every write costs the same
whether it is the day's first file or its 100,000th: no item grows with the day's traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from ... import SERVICE
from ...domain.claims import ClaimRequest
from ...domain.model import EntryState, FileRef, Lease, LedgerEntry, epoch_ms
from ...domain.quotaday import day_end
from ...telemetry import count_malformed

logger = Logger(service=SERVICE, child=True)

QUOTA_SK = "QUOTA"
FILE_SK = "FILE#"
RELEASE_SK = "RELEASE#"
TEXT_CAP = 200  # origins and reasons: keeps every file item under 1 KB (one write unit)
STORE = "day ledger"


class LedgerTable(NamedTuple):
    """Where one account's part of the day ledger is: the table, the sort key of its day counter,
    and the prefix of its file items (a vid starts with its account's userid, so the file items of
    every account share the day's partition without a key of their own).

    The home account, the one a deployment served before it had several, keeps the keys it always
    had (``QUOTA``): its counters and fates are read on as they were, with no migration step;
    another account's counter is ``QUOTA#<userid>`` (docs/ledger.md, "Accounts")."""

    name: str
    counter: str = QUOTA_SK
    files: str = FILE_SK

    @classmethod
    def of_account(cls, name: str, userid: str, *, home: bool) -> LedgerTable:
        return cls(name, QUOTA_SK if home else f"{QUOTA_SK}#{userid}", FILE_SK + userid)


def quota_key(day: str, counter: str = QUOTA_SK) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": counter}}


def file_key(day: str, file: FileRef) -> dict[str, Any]:
    return {"pk": {"S": f"DAY#{day}"}, "sk": {"S": FILE_SK + file.key}}


def text(value: str) -> dict[str, str]:
    return {"S": value[:TEXT_CAP]}


def state(value: EntryState) -> dict[str, str]:
    return {"S": value.value}


class Expiry(NamedTuple):
    """When a day's items expire (TTL): the end of the day in the quota time zone, plus the retention."""

    timezone: ZoneInfo
    retention: timedelta

    def of(self, day: str) -> dict[str, str]:
        return {"N": str(int((day_end(day, self.timezone) + self.retention).timestamp()))}


MALFORMED_REASON = "a ledger item this package cannot read (written by hand?): read as in doubt"


def parse_entry(item: Mapping[str, Any]) -> LedgerEntry:
    """A file's entry. An item without a known state, or with a lease or retry time that is not
    a number (written by hand, say), is reported (a warning, ``LedgerItemsMalformed``) and read as
    in doubt, as the claim rule treats an entry whose call may have reached Polyv: not claimed by
    a plain request, claimed (and counted again) by a resend or a forced one, so that the file is
    not stuck; the DynamoDB conditions below read such an item the same way."""
    try:
        lease, retry = item.get("l"), item.get("x")
        return LedgerEntry(
            state=EntryState(item["s"]),
            at=str(item.get("at", "")),
            task_id=item.get("t"),
            reason=item.get("r"),
            origin=item.get("o"),
            owner=item.get("w"),
            lease_until_ms=int(lease) if lease is not None else None,
            retry_after_ms=int(retry) if retry is not None else None,
        )
    except (KeyError, ValueError, TypeError):
        logger.warning("malformed ledger item: read as in doubt", extra={"sk": str(item.get("sk"))[:120]})
        count_malformed()
        return LedgerEntry(EntryState.IN_DOUBT, str(item.get("at", ""))[:40], reason=MALFORMED_REASON)


def file_of(item: Mapping[str, Any]) -> FileRef:
    return FileRef.from_key(str(item["sk"]).removeprefix(FILE_SK))


# -- the claim rule (domain/claims.py), as conditions DynamoDB evaluates in the claim's transaction --
# ``x``: when a file refused for now, a bitrate that did not exist yet, may be asked again.
# An item without a known state, or claimed without a lease that is a number, is in doubt. A
# time is compared only once it is a number (DynamoDB finds a string < a number false; moto raises).
_LEASE_ENDED = "(attribute_type(#l, :num) AND #l < :now)"
_RETRY_DUE = "(attribute_type(#x, :num) AND #x < :now)"
_NO_LEASE = "NOT attribute_type(#l, :num)"
_MALFORMED = "attribute_not_exists(#s) OR NOT (#s IN (:claimed, :sub, :rej, :doubt, :back))"
_NOT_HELD = (
    f"attribute_not_exists(pk) OR #s IN (:doubt, :back) OR (#s = :claimed AND {_LEASE_ENDED}) "
    f"OR (#s = :claimed AND {_NO_LEASE}) OR {_MALFORMED}"
)
_NEVER_SENT = "attribute_not_exists(pk) OR #s = :back"  # not in doubt either
_CLAIMABLE_FORCED = (  # anything not held
    f"attribute_not_exists(pk) OR attribute_not_exists(#s) OR #s <> :claimed OR {_LEASE_ENDED} OR {_NO_LEASE}"
)
_NUMBER = {":num": {"S": "N"}}
_STATES = {
    ":claimed": state(EntryState.CLAIMED),
    ":sub": state(EntryState.SUBMITTED),
    ":rej": state(EntryState.REJECTED),
    ":doubt": state(EntryState.IN_DOUBT),
    ":back": state(EntryState.HANDED_BACK),
}


class Condition(NamedTuple):
    expression: str
    names: dict[str, str]
    values: dict[str, Any]


def claim_condition(request: ClaimRequest, now: datetime) -> Condition:
    """The condition under which a file may be claimed by ``request`` at ``now``. (A claimed
    item never carries ``x``: a claim's ``Put`` replaces the whole item.)"""
    now_ms = {"N": str(epoch_ms(now))}
    if request.force:
        values = {":claimed": state(EntryState.CLAIMED), ":now": now_ms, **_NUMBER}
        return Condition(_CLAIMABLE_FORCED, {"#s": "s", "#l": "l"}, values)
    # or its time has come, or the request names the bitrate (a refusal for now carries x)
    retry = "attribute_exists(#x)" if request.explicit else _RETRY_DUE
    if request.resend:
        values = {**_STATES, ":now": now_ms, **_NUMBER}
        return Condition(f"{_NOT_HELD} OR {retry}", {"#s": "s", "#l": "l", "#x": "x"}, values)
    values = {":back": state(EntryState.HANDED_BACK)}
    if not request.explicit:
        values |= {":now": now_ms, **_NUMBER}
    return Condition(f"{_NEVER_SENT} OR {retry}", {"#s": "s", "#x": "x"}, values)


def claimed_item(
    day: str, file: FileRef, origin: str, lease: Lease, now: datetime, expires: dict[str, str]
) -> dict[str, Any]:
    return {
        **file_key(day, file),
        "s": state(EntryState.CLAIMED),
        "at": {"S": now.isoformat()},
        "o": text(origin or "-"),
        "w": {"S": lease.owner},
        "l": {"N": str(lease.until_ms)},
        "expiresAt": expires,
    }


def count_action(
    table: LedgerTable,
    day: str,
    n: int,
    expires: dict[str, str],
    *,
    limit: int | None = None,
    ranked: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Count ``n`` more files on the day's counter (creating it), within ``limit`` if given:
    ``used <= limit - n`` and the day not exhausted; the counter is returned if it refuses.
    ``ranked`` of them are fresh first-rank files (the day's rate), claimed at ``now``."""
    expression = "SET used = if_not_exists(used, :zero) + :n, expiresAt = if_not_exists(expiresAt, :ttl)"
    values: dict[str, Any] = {":zero": {"N": "0"}, ":n": {"N": str(n)}, ":ttl": expires}
    if ranked and now is not None:
        expression += ", fr = if_not_exists(fr, :zero) + :fr, frs = if_not_exists(frs, :frs)"
        values |= {":fr": {"N": str(ranked)}, ":frs": {"S": now.isoformat()}}
    update: dict[str, Any] = {
        "TableName": table.name,
        "Key": quota_key(day, table.counter),
        "UpdateExpression": expression,
        "ExpressionAttributeValues": values,
    }
    if limit is not None:
        # A day's first claim finds no counter: it may count n only if n fits the limit at all.
        # (More than the limit is asked for when a part holds files already handled today: the
        # refusal then tells them apart, and the ones still claimable are asked for again.)
        fresh = "attribute_not_exists(used) OR " if n <= limit else ""
        update["ConditionExpression"] = f"({fresh}used <= :room) AND attribute_not_exists(exhausted)"
        update["ExpressionAttributeValues"][":room"] = {"N": str(limit - n)}
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": update}
