"""The claim: count a chunk's files and claim each of them, in one transaction per part.

A claim is one ``TransactWriteItems``: the day's counter (``used <= limit - n``, not exhausted)
and one conditional ``Put`` per file, whose condition is the claim rule (``schema.claim_condition``)
evaluated by DynamoDB itself. DynamoDB allows 100 actions a transaction, so a chunk of 100 files
plus its counter is claimed as two balanced parts (50 + 50), each atomic with its own count. When
a transaction is cancelled, its parts say by name why: the counter (no room: its item tells how
much is left), or a file (its item: held by another invocation, handled today, or our own claim
whose answer was lost); the files still claimable are tried again, as many as there is room for.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from ...domain.claims import Decision, FileClaim, decide
from ...domain.model import FileRef, Lease
from ...domain.ports import ClaimResult, StoreUnavailable
from .schema import Expiry, LedgerTable, claim_condition, claimed_item, count_action, parse_entry
from .transactions import MAX_ACTIONS, Cancelled, Part, transact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

MAX_CLAIM_FILES = MAX_ACTIONS - 1  # the counter takes one action
CLAIM_ATTEMPTS = 25  # each failed attempt means another invocation changed the day: progress
COUNTER = "counter"


def file_part(file: FileRef) -> str:
    return f"file:{file.key}"


class ClaimCall(NamedTuple):
    """What one claim asks, shared by its parts and their attempts."""

    table: LedgerTable
    day: str
    claims: Mapping[FileRef, FileClaim]
    limit: int
    lease: Lease
    now: datetime
    expires: dict[str, str]


def claim(
    client: DynamoDBClient,
    table: LedgerTable,
    expiry: Expiry,
    day: str,
    claims: Sequence[FileClaim],
    limit: int,
    *,
    lease: Lease,
    now: datetime,
) -> ClaimResult:
    by_file = {c.file: c for c in claims}
    call = ClaimCall(table, day, by_file, limit, lease, now, expiry.of(day))
    result = ClaimResult()
    for part in balanced_parts(list(by_file), MAX_CLAIM_FILES):
        _claim_part(client, call, part, result)  # every part is asked, even after one found no room
    return result


def _claim_part(client: DynamoDBClient, call: ClaimCall, part: list[FileRef], result: ClaimResult) -> None:
    """Claim one part (one transaction with its count), trying again with what is still
    claimable while concurrent invocations change the day."""
    pending = part
    for _ in range(CLAIM_ATTEMPTS):
        if not pending:
            return
        try:
            transact(client, _parts(call, pending))
        except Cancelled as cancelled:
            refusal = ClaimRefusal.of(cancelled, pending)
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


def _parts(call: ClaimCall, files: Sequence[FileRef]) -> list[Part]:
    counter = count_action(
        call.table,
        call.day,
        len(files),
        call.expires,
        limit=call.limit,
        ranked=sum(1 for f in files if call.claims[f].first_rank),
        now=call.now,
    )
    parts = [Part(COUNTER, counter)]
    for file in files:
        condition = claim_condition(call.claims[file].rule, call.now)
        item = claimed_item(
            call.day, file, call.claims[file].origin or "-", call.lease, call.now, call.expires
        )
        put = {
            "TableName": call.table.name,
            "Item": item,
            "ConditionExpression": condition.expression,
            "ExpressionAttributeNames": condition.names,
            "ExpressionAttributeValues": condition.values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        parts.append(Part(file_part(file), {"Put": put}))
    return parts


class ClaimRefusal(NamedTuple):
    """A cancelled claim, by name: the day's counter and the part's files."""

    counter: dict[str, Any] | None  # the counter, if its condition failed (no room, exhausted)
    files: dict[FileRef, dict[str, Any]]  # the files whose condition failed: their items

    @classmethod
    def of(cls, cancelled: Cancelled, files: Sequence[FileRef]) -> ClaimRefusal:
        failed = cancelled.failed
        return cls(failed.get(COUNTER), {f: failed[file_part(f)] for f in files if file_part(f) in failed})

    def ours(self, lease: Lease) -> bool:
        """A file refused because it is claimed under this very lease: our own request committed."""
        return any(item.get("w") == lease.owner for item in self.files.values())

    @property
    def conflict_only(self) -> bool:
        return self.counter is None and not self.files

    def room(self, limit: int) -> int | None:
        """Files the counter has room for, if it refused; None if its condition held."""
        if self.counter is None:
            return None
        return 0 if self.counter.get("exhausted") else max(0, limit - int(self.counter.get("used", 0)))


def _still_claimable(
    call: ClaimCall, pending: list[FileRef], refusal: ClaimRefusal, result: ClaimResult
) -> list[FileRef]:
    """Sort a refused part's files by the claim rule: another invocation's live claim (held),
    handled today (known), in doubt (and not a resend), or still claimable; of the last, keep as
    many as the counter has room for (the rest: no room)."""
    still: list[FileRef] = []
    for file in pending:
        item = refusal.files.get(file)
        entry = parse_entry(item) if item else None
        decision = decide(entry, call.now, call.claims[file].rule) if entry is not None else Decision.CLAIM
        if not result.refuse(file, entry, decision):
            still.append(file)  # its condition held, or it changed since: try again
    room = refusal.room(call.limit)
    if room is not None:
        still, overflow = still[:room], still[room:]
        result.no_room += overflow
    return still


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
