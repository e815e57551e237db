"""The backlog's tiers, held alike by the DynamoDB backlog on moto and the in-memory fake: each
tier read in order either way with a cursor, a lower tier lifted by a fresh deferral, files moved
out of waiting into the resends, a backfill that stores nothing twice and demotes nothing, and the
figures by tier. Plus what only DynamoDB has: items written before tiers read as normal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polyv_prewarm.adapters.backlog import DynamoBacklog
from polyv_prewarm.domain.model import FileRef, Tier
from tests.fakes import InMemoryBacklog, claims_of
from tests.helpers import vid

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamodb"])
def backlog(request):
    if request.param == "memory":
        return InMemoryBacklog()
    stack = request.getfixturevalue("stack")
    return DynamoBacklog(stack.tables["QuotaTable"], stack.client("dynamodb"))


def files(n: int, start: int = 0) -> list[FileRef]:
    return [FileRef(vid(start + i), 1) for i in range(n)]


def defer(backlog, fs, tier, minutes=0, **options):
    for i, f in enumerate(fs):  # one deferral time each: the order is the deferrals'
        backlog.defer(claims_of([(f, "m")]), now=NOW + timedelta(minutes=minutes + i), tier=tier, **options)


def test_each_tier_is_read_in_order_either_way_with_a_cursor(backlog):
    normal, later, backfill = files(5), files(5, 100), files(5, 200)
    defer(backlog, normal, Tier.NORMAL)
    defer(backlog, later, Tier.LATER, minutes=10)
    defer(backlog, backfill, Tier.BACKFILL, minutes=20)
    first = backlog.oldest(2, tier=Tier.LATER)
    rest = backlog.oldest(10, tier=Tier.LATER, after=first[-1])
    assert [d.file for d in first + rest] == later
    newest = backlog.newest(3, tier=Tier.BACKFILL)
    assert [d.file for d in newest] == backfill[::-1][:3]
    assert [d.file for d in backlog.newest(10, tier=Tier.BACKFILL, after=newest[-1])] == backfill[::-1][3:]
    assert [d.file for d in backlog.oldest(10)] == normal  # the normal tier is the default
    assert backlog.oldest(10, tier=Tier.RESEND) == []


def test_a_fresh_deferral_lifts_a_file_from_a_lower_tier_and_nothing_lowers_one(backlog):
    (f,) = files(1)
    backlog.add_backfill([(f, "backfill:c")], now=NOW)
    defer(backlog, [f], Tier.LATER)
    assert backlog.pending([f])[f].tier is Tier.LATER
    defer(backlog, [f], Tier.RESEND)  # lower than where it is: stays
    assert backlog.pending([f])[f].tier is Tier.LATER
    assert backlog.add_backfill([(f, "backfill:c")], now=NOW) == 0  # a backfill demotes nothing
    assert backlog.pending([f])[f].tier is Tier.LATER


def test_files_move_out_of_waiting_into_the_resends(backlog):
    fs = files(3)
    backlog.defer(
        claims_of([(f, "m") for f in fs]), now=NOW, retry_at=NOW + timedelta(minutes=5), reason="Polyv down"
    )
    due = backlog.due(10, now=NOW + timedelta(minutes=6))
    assert len(due) == 3
    backlog.move(due[:2], Tier.RESEND)
    assert backlog.due(10, now=NOW + timedelta(minutes=6)) == due[2:]
    resends = backlog.oldest(10, tier=Tier.RESEND)
    assert [d.file for d in resends] == fs[:2]
    assert all(not d.waiting for d in resends)


def test_a_backfill_stores_each_file_once_and_the_figures_count_by_tier(backlog):
    fs = files(250, 1000)
    defer(backlog, fs[:3], Tier.NORMAL)
    assert backlog.add_backfill([(f, "backfill:c") for f in fs], now=NOW) == 247
    assert backlog.add_backfill([(f, "backfill:c") for f in fs], now=NOW) == 0
    figures = backlog.stats()
    assert figures.files == 250
    assert dict(figures.tiers) == {
        Tier.NORMAL: 3,
        Tier.LATER: 0,
        Tier.BACKFILL: 247,
        Tier.RESEND: 0,
        Tier.SUSPECT: 0,
    }


def test_items_written_before_tiers_read_as_normal(stack):
    table, client = stack.tables["QuotaTable"], stack.client("dynamodb")
    (f,) = files(1)
    client.put_item(  # as the backlog wrote them before tiers existed
        TableName=table,
        Item={
            "pk": {"S": "BACKLOG"},
            "sk": {"S": f.key},
            "age": {"S": f"{NOW.isoformat()}#{f.key}"},
            "vid": {"S": f.vid},
            "brIndex": {"N": "1"},
            "deferredAt": {"S": NOW.isoformat()},
            "origin": {"S": "m-old"},
        },
    )
    (found,) = DynamoBacklog(table, client).oldest(10)
    assert (found.file, found.tier, found.origin) == (f, Tier.NORMAL, "m-old")
