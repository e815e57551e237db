"""One contract, two day ledgers: the DynamoDB ledger on moto and the tests' in-memory fake decide
alike, case by case (tests/contract/claim_cases.py) and at the edges where they once differed:
a part larger than the room, a part after a part that found no room, Polyv's "spent", a record
run twice. A unit test on the fake then means what it would mean on DynamoDB."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from polyv_prewarm.adapters.ledger import DynamoDayLedger
from polyv_prewarm.domain.claims import ClaimRequest, Decision, in_doubt
from polyv_prewarm.domain.model import EntryState, FileRef, Lease, LedgerEntry
from tests.contract.claim_cases import CASES, NOW, at, entry
from tests.fakes import InMemoryLedger, claims_of, record_of, vid

pytestmark = pytest.mark.integration

DAY = "2026-11-28"
LEASE = Lease("contract", at(120))


class Ledgers:
    """Puts an entry in place the way each implementation stores it."""

    def __init__(self, kind: str, stack=None) -> None:
        self.kind = kind
        self.stack = stack
        if kind == "memory":
            self.ledger = InMemoryLedger()
        else:
            table = stack.tables["QuotaTable"]
            self.ledger = DynamoDayLedger(
                table, stack.client("dynamodb"), timezone=ZoneInfo("Asia/Shanghai"), retention_days=35
            )

    def put(self, file: FileRef, found: LedgerEntry) -> None:
        if self.kind == "memory":
            self.ledger.files.setdefault(DAY, {})[file] = found
            return
        item = {
            "pk": {"S": f"DAY#{DAY}"},
            "sk": {"S": f"FILE#{file.key}"},
            "s": {"S": found.state.value},
            "at": {"S": found.at},
            "w": {"S": found.owner or "-"},
        }
        for name, value in (("t", found.task_id), ("r", found.reason), ("o", found.origin)):
            if value is not None:
                item[name] = {"S": value}
        for name, number in (("l", found.lease_until_ms), ("x", found.retry_after_ms)):
            if number is not None:
                item[name] = {"N": str(number)}
        self.stack.client("dynamodb").put_item(TableName=self.stack.tables["QuotaTable"], Item=item)

    def set_used(self, used: int) -> None:
        if self.kind == "memory":
            self.ledger.used[DAY] = used
            return
        self.stack.client("dynamodb").put_item(
            TableName=self.stack.tables["QuotaTable"],
            Item={"pk": {"S": f"DAY#{DAY}"}, "sk": {"S": "QUOTA"}, "used": {"N": str(used)}},
        )


@pytest.fixture(params=["memory", "dynamodb"])
def ledgers(request) -> Ledgers:
    if request.param == "memory":
        return Ledgers("memory")
    return Ledgers("dynamodb", request.getfixturevalue("stack"))


def decided(result, file: FileRef) -> list[Decision]:
    where = {
        Decision.CLAIM: result.granted,
        Decision.HELD: result.held,
        Decision.KNOWN: result.known,
        Decision.IN_DOUBT: result.in_doubt,
    }
    return [d for d, files in where.items() if file in files] + (
        ["no room"] if file in result.no_room else []
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_case_of_the_claim_rule(ledgers, case):
    file = FileRef(vid(1), 1)
    if case.entry is not None:
        ledgers.put(file, case.entry)
    result = ledgers.ledger.claim(
        DAY,
        claims_of([(file, "contract")], case.request),
        10,
        lease=LEASE,
        now=NOW,
    )
    assert decided(result, file) == [case.expected]


def test_files_handled_today_take_no_room_from_the_rest(ledgers):
    """Limit 3, v0 and v2 submitted, v1 rejected: a request for v0..v3 claims v3."""
    v = [FileRef(vid(i), 1) for i in range(4)]
    for file, state in (
        (v[0], EntryState.SUBMITTED),
        (v[1], EntryState.REJECTED),
        (v[2], EntryState.SUBMITTED),
    ):
        ledgers.put(file, entry(state))
    ledgers.set_used(2)
    result = ledgers.ledger.claim(DAY, claims_of([(f, "m") for f in v]), 3, lease=LEASE, now=NOW)
    assert result.granted == [v[3]]
    assert set(result.known) == set(v[:3])
    assert result.no_room == []


def test_a_fresh_day_counts_no_more_than_its_limit(ledgers):
    v = [FileRef(vid(i), 1) for i in range(5)]
    result = ledgers.ledger.claim(DAY, claims_of([(f, "m") for f in v]), 3, lease=LEASE, now=NOW)
    assert result.granted == v[:3]
    assert result.no_room == v[3:]
    assert ledgers.ledger.usage(DAY, 3).used == 3


def test_a_held_file_after_a_part_without_room_is_held_not_deferred(ledgers):
    """150 files are two parts of 75; the day is full; a forced file of the second part is held
    by a live claim: it is handed back (held), not deferred (no room)."""
    files = [FileRef(vid(i), 1) for i in range(150)]
    busy = files[120]
    ledgers.put(busy, entry(EntryState.CLAIMED, lease_in=60))
    ledgers.set_used(50)
    result = ledgers.ledger.claim(
        DAY, claims_of([(f, "m") for f in files], ClaimRequest(force=True)), 50, lease=LEASE, now=NOW
    )
    assert result.granted == []
    assert set(result.held) == {busy}
    assert len(result.no_room) == 149


def test_polyvs_spent_marks_the_day_and_keeps_its_count(ledgers):
    ledgers.set_used(7)
    ledgers.ledger.mark_exhausted(DAY, 2000)
    usage = ledgers.ledger.usage(DAY, 2000)
    assert (usage.used, usage.exhausted, usage.remaining) == (7, True, 0)
    result = ledgers.ledger.claim(DAY, claims_of([(FileRef(vid(1), 1), "m")]), 2000, lease=LEASE, now=NOW)
    assert result.no_room == [FileRef(vid(1), 1)]


def test_a_record_run_twice_gives_its_quota_back_once(ledgers):
    files = [FileRef(vid(i), 1) for i in range(3)]
    ledgers.ledger.claim(DAY, claims_of([(f, "m") for f in files]), 10, lease=LEASE, now=NOW)
    settlement = record_of(submitted={files[0]: "t1"}, handed_back={files[1]: "x", files[2]: "x"}, release=2)
    later = NOW + timedelta(seconds=1)
    ledgers.ledger.settle(DAY, settlement, lease=LEASE, now=later)
    ledgers.ledger.settle(DAY, settlement, lease=LEASE, now=later)  # an error whose write had committed
    assert ledgers.ledger.usage(DAY, 10).used == 1
    entries = ledgers.ledger.lookup(DAY, files)
    assert [entries[f].state for f in files] == [
        EntryState.SUBMITTED,
        EntryState.HANDED_BACK,
        EntryState.HANDED_BACK,
    ]


def test_a_record_leaves_a_claim_another_invocation_took_over_alone(ledgers):
    file = FileRef(vid(1), 1)
    ledgers.ledger.claim(
        DAY, claims_of([(file, "m")]), 10, lease=Lease("dead", at(-10)), now=NOW - timedelta(minutes=1)
    )
    # the dead one's lease ended: its file is in doubt, claimed again by a resend
    again = ledgers.ledger.claim(
        DAY, claims_of([(file, "m")], ClaimRequest(resend=True)), 10, lease=LEASE, now=NOW
    )
    assert again.granted == [file]
    late = record_of(submitted={file: "t-dead"})
    ledgers.ledger.settle(DAY, late, lease=Lease("dead", at(-10)), now=NOW)
    found = ledgers.ledger.lookup(DAY, [file])[file]
    assert (found.state, found.owner) == (EntryState.CLAIMED, "contract")


MALFORMED_ITEMS = {
    "no state": {},
    "no state, no at": {"o": {"S": "by hand"}},
    "an unknown state": {"s": {"S": "sent-i-think"}, "at": {"S": "x"}},
    "a state of another type": {"s": {"N": "3"}},
    "claimed without a lease": {"s": {"S": "claimed"}, "at": {"S": "x"}},
    "a lease that is not a number": {"s": {"S": "claimed"}, "at": {"S": "x"}, "l": {"S": "soon"}},
}


@pytest.mark.parametrize("extra", MALFORMED_ITEMS.values(), ids=MALFORMED_ITEMS.keys())
def test_a_malformed_item_is_read_as_in_doubt_and_never_stuck(stack, extra):
    """A file item written by hand without its fields: no KeyError, reported, read as in doubt (a
    plain claim leaves it, a resend or a forced one claims it), so a drain's resend tier sends it."""
    ledgers = Ledgers("dynamodb", stack)
    file = FileRef(vid(1), 1)
    item = {"pk": {"S": f"DAY#{DAY}"}, "sk": {"S": f"FILE#{file.key}"}, **extra}
    stack.client("dynamodb").put_item(TableName=stack.tables["QuotaTable"], Item=item)
    assert in_doubt(ledgers.ledger.lookup(DAY, [file])[file], NOW)
    plain = ledgers.ledger.claim(DAY, claims_of([(file, "t")]), 10, lease=LEASE, now=NOW)
    assert decided(plain, file) == [Decision.IN_DOUBT]
    resend = ledgers.ledger.claim(
        DAY, claims_of([(file, "t")], ClaimRequest(resend=True)), 10, lease=LEASE, now=NOW
    )
    assert decided(resend, file) == [Decision.CLAIM]
    stack.client("dynamodb").put_item(TableName=stack.tables["QuotaTable"], Item=item)
    forced = ledgers.ledger.claim(
        DAY, claims_of([(file, "t")], ClaimRequest(force=True)), 10, lease=LEASE, now=NOW
    )
    assert decided(forced, file) == [Decision.CLAIM]
