"""The DynamoDB day ledger against moto's server: leases, conditions, lost answers, and the size of
what it writes (DynamoDB bills a write by the size of the item written)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from polyv_prewarm.adapters.ledger import DynamoDayLedger, balanced_parts
from polyv_prewarm.adapters.ledger.transactions import MAX_ACTIONS
from polyv_prewarm.domain.claims import ClaimRequest
from polyv_prewarm.domain.model import EntryState, FileRef, Lease
from tests.fakes import claims_of, record_of
from tests.helpers import vid

pytestmark = pytest.mark.integration

DAY = "2026-11-27"
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def lease(owner="inv-1", seconds=120):
    return Lease.until(owner, NOW + timedelta(seconds=seconds))


class RecordingClient:
    """Passes every call through; sends the ``replay``-th transaction twice, as an SDK retry after
    a lost answer would; keeps every TransactWriteItems request it saw."""

    def __init__(self, client, replay=0):
        self._client = client
        self._countdown = replay
        self.transactions: list[list[dict]] = []

    def transact_write_items(self, **kwargs):
        self.transactions.append(kwargs["TransactItems"])
        self._countdown -= 1
        if self._countdown == 0:
            self._client.transact_write_items(**kwargs)
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def make_ledger(stack, client=None):
    return DynamoDayLedger(
        stack.tables["QuotaTable"],
        client or stack.client("dynamodb"),
        timezone=ZoneInfo("Asia/Shanghai"),
        retention_days=35,
    )


@pytest.fixture
def ledger(stack):
    return make_ledger(stack)


def files(n, start=0):
    return [(FileRef(vid(start + i), 1), f"m{i}") for i in range(n)]


def test_balanced_parts_fit_a_transaction_with_the_counter():
    assert [len(p) for p in balanced_parts([FileRef(vid(i), 1) for i in range(100)], 99)] == [50, 50]
    assert [len(p) for p in balanced_parts([FileRef(vid(i), 1) for i in range(99)], 99)] == [99]
    assert balanced_parts([], 99) == []


def test_a_claim_whose_answer_was_lost_is_still_ours(stack):
    make_ledger(stack).claim(DAY, claims_of(files(1, start=500)), 2000, lease=lease(), now=NOW)
    replaying = make_ledger(stack, RecordingClient(stack.client("dynamodb"), replay=1))
    result = replaying.claim(DAY, claims_of(files(10)), 2000, lease=lease("inv-2"), now=NOW)
    assert len(result.granted) == 10
    assert result.known == {}
    assert result.held == {}
    assert stack.quota_used(DAY) == 11


def test_the_days_first_claim_whose_answer_was_lost_is_still_ours(stack):
    replaying = make_ledger(stack, RecordingClient(stack.client("dynamodb"), replay=1))
    result = replaying.claim(DAY, claims_of(files(10)), 2000, lease=lease(), now=NOW)
    assert len(result.granted) == 10
    assert stack.quota_used(DAY) == 10


def test_100_files_are_two_atomic_claims_and_the_limit_holds(stack):
    client = RecordingClient(stack.client("dynamodb"))
    ledger = make_ledger(stack, client)
    result = ledger.claim(DAY, claims_of(files(100)), 60, lease=lease(), now=NOW)
    assert len(result.granted) == 60
    assert len(result.no_room) == 40
    assert stack.quota_used(DAY) == 60
    assert all(len(t) <= MAX_ACTIONS for t in client.transactions)
    again = make_ledger(stack).claim(DAY, claims_of(files(100)), 60, lease=lease("inv-2"), now=NOW)
    assert again.granted == []
    assert len(again.held) == 60  # claimed by a live invocation: retry, never "duplicate"
    assert len(again.no_room) == 40
    assert stack.quota_used(DAY) == 60  # the cancelled transactions changed nothing


def test_live_claims_are_held_expired_ones_are_in_doubt_and_claimable(stack, ledger):
    ledger.claim(DAY, claims_of(files(3)), 2000, lease=lease("dead", seconds=60), now=NOW)
    held = ledger.claim(DAY, claims_of(files(3)), 2000, lease=lease("inv-2"), now=NOW + timedelta(seconds=59))
    assert len(held.held) == 3
    later = NOW + timedelta(seconds=61)
    fresh_only = ledger.claim(
        DAY, claims_of(files(3)), 2000, lease=Lease.until("inv-3", later + timedelta(minutes=2)), now=later
    )
    assert len(fresh_only.in_doubt) == 3  # the dead one may have sent them: not a never-sent claim
    assert stack.quota_used(DAY) == 3
    reclaimed = ledger.claim(
        DAY,
        claims_of(files(3), ClaimRequest(resend=True)),
        2000,
        lease=Lease.until("inv-3", later + timedelta(minutes=2)),
        now=later,
    )
    assert len(reclaimed.granted) == 3
    assert stack.quota_used(DAY) == 6  # counted again


def test_settled_files_are_known_and_force_claims_them_again(stack, ledger):
    mine = lease()
    claimed = ledger.claim(DAY, claims_of(files(2)), 2000, lease=mine, now=NOW)
    ledger.settle(
        DAY,
        record_of(submitted={claimed.granted[0]: "task-1"}, rejected={claimed.granted[1]: "illeagal vid"}),
        lease=mine,
        now=NOW,
    )
    again = ledger.claim(DAY, claims_of(files(2)), 2000, lease=lease("inv-2"), now=NOW)
    assert {e.state for e in again.known.values()} == {EntryState.SUBMITTED, EntryState.REJECTED}
    forced = ledger.claim(
        DAY, claims_of(files(2), ClaimRequest(force=True)), 2000, lease=lease("inv-3"), now=NOW
    )
    assert len(forced.granted) == 2


def test_a_record_leaves_alone_what_another_invocation_took_over(stack, ledger):
    first = lease("slow", seconds=10)
    ledger.claim(DAY, claims_of(files(2)), 2000, lease=first, now=NOW)
    later = NOW + timedelta(seconds=11)
    second = Lease.until("fast", later + timedelta(minutes=2))
    ledger.claim(
        DAY, claims_of(files(1), ClaimRequest(resend=True)), 2000, lease=second, now=later
    )  # file 0 taken over after expiry
    ledger.settle(
        DAY,
        record_of(handed_back={FileRef(vid(0), 1): "slow gave up", FileRef(vid(1), 1): "slow gave up"}),
        lease=first,
        now=later,
    )
    entries = ledger.lookup(DAY, [FileRef(vid(0), 1), FileRef(vid(1), 1)])
    assert entries[FileRef(vid(0), 1)].state is EntryState.CLAIMED  # fast's claim stands
    assert entries[FileRef(vid(0), 1)].owner == "fast"
    assert entries[FileRef(vid(1), 1)].state is EntryState.HANDED_BACK


def test_carry_over_counts_whatever_the_limit(stack, ledger):
    ledger.claim(DAY, claims_of(files(5)), 5, lease=lease(), now=NOW)
    ledger.carry_over(DAY, {FileRef(vid(9), 1): "t9"}, {}, now=NOW)
    assert stack.quota_used(DAY) == 6
    assert ledger.lookup(DAY, [FileRef(vid(9), 1)])[FileRef(vid(9), 1)].task_id == "t9"


def _item_size(item: dict) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8 strings, numbers ~ digits/2 + 1)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, str):
            size += len(value.encode())
        elif isinstance(value, (int, Decimal)):
            size += math.ceil(len(str(value).lstrip("-").replace(".", "")) / 2) + 1
        elif isinstance(value, bool):
            size += 1
        else:
            raise AssertionError(f"unexpected attribute type {type(value)}")
    return size


def test_every_ledger_item_stays_one_write_unit_whatever_it_holds(stack, ledger):
    """Each file has an item of its own, with capped texts: the write that claims or records the
    day's 20,000th file costs what the first one did."""
    table = stack.resource("dynamodb").Table(stack.tables["QuotaTable"])
    long_origin = "s3/" + "k" * 1000
    sizes = []
    for start in (0, 19_900):
        mine = lease(f"inv-{start:05d}")
        batch = [(FileRef(vid(start + i), 1), long_origin) for i in range(100)]
        claimed = ledger.claim(DAY, claims_of(batch), 100_000, lease=mine, now=NOW)
        ledger.settle(
            DAY,
            record_of(
                submitted={f: "b3ad461ef1df4afc9340427767968a4c" for f in claimed.granted[:50]},
                rejected={f: "bitrate does not exist " * 20 for f in claimed.granted[50:]},
            ),
            lease=mine,
            now=NOW,
        )
        sizes.append(
            max(
                _item_size(table.get_item(Key={"pk": f"DAY#{DAY}", "sk": f"FILE#{f.key}"})["Item"])
                for f, _ in batch
            )
        )
    assert max(sizes) <= 1024  # one write unit per file, whatever the day holds
    assert sizes[0] == sizes[1]


def test_a_record_run_again_gives_its_quota_back_once(stack, ledger):
    mine = lease()
    claimed = ledger.claim(DAY, claims_of(files(100)), 2000, lease=mine, now=NOW)
    settlement = record_of(
        submitted={f: "task" for f in claimed.granted[:40]},
        handed_back={f: "Polyv unavailable" for f in claimed.granted[40:]},
        release=60,
    )
    ledger.settle(DAY, settlement, lease=mine, now=NOW)  # 102 actions: two transactions
    assert stack.quota_used(DAY) == 40
    ledger.settle(DAY, settlement, lease=mine, now=NOW)  # after an error whose write had committed
    assert stack.quota_used(DAY) == 40
    states = {e.state for e in ledger.lookup(DAY, claimed.granted).values()}
    assert states == {EntryState.SUBMITTED, EntryState.HANDED_BACK}


def test_an_explicit_request_reclaims_a_bitrate_refused_for_now_and_nothing_else(stack, ledger):
    mine = lease()
    (missing, illegal, sent) = (FileRef(vid(1), 3), FileRef(vid(2), 1), FileRef(vid(3), 1))
    ledger.claim(DAY, claims_of([(f, "m") for f in (missing, illegal, sent)]), 2000, lease=mine, now=NOW)
    later_ms = int((NOW + timedelta(minutes=30)).timestamp() * 1000)
    ledger.settle(
        DAY,
        record_of(
            rejected={missing: "bitrate does not exist", illegal: "illeagal vid"},
            retry_after_ms={missing: later_ms},
            submitted={sent: "task"},
            release=2,
        ),
        lease=mine,
        now=NOW,
    )
    asked = [(f, "m2") for f in (missing, illegal, sent)]
    soon = ledger.claim(DAY, claims_of(asked), 2000, lease=lease("inv-2"), now=NOW + timedelta(minutes=1))
    assert soon.granted == []
    assert set(soon.known) == {missing, illegal, sent}
    named = ledger.claim(
        DAY,
        claims_of(asked, ClaimRequest(explicit=True)),
        2000,
        lease=lease("inv-3"),
        now=NOW + timedelta(minutes=1),
    )
    assert named.granted == [missing]  # only the bitrate refused for now
    assert set(named.known) == {illegal, sent}
