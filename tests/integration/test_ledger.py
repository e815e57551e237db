"""The DynamoDB day ledger against moto's server: the corners the handler tests do not reach."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from polyv_prewarm.ledger import SHARDS, DynamoDayLedger, shard_of
from polyv_prewarm.model import EntryState, FileRef
from tests.integration.conftest import vid

pytestmark = pytest.mark.integration

DAY = "2026-11-27"
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


class ReplayingClient:
    """Sends the ``nth`` transaction twice, as an SDK retry after a lost answer would."""

    def __init__(self, client, nth=1):
        self._client = client
        self._countdown = nth

    def transact_write_items(self, **kwargs):
        self._countdown -= 1
        if self._countdown == 0:
            self._client.transact_write_items(**kwargs)
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def ledger(stack):
    return DynamoDayLedger(
        stack.tables["QuotaTable"], stack.client("dynamodb"), timezone=ZoneInfo("Asia/Shanghai")
    )


def files(n, start=0):
    return [(FileRef(vid(start + i), 1), f"m{i}") for i in range(n)]


def test_a_claim_whose_answer_was_lost_is_still_ours(stack, ledger):
    ledger.claim(DAY, files(1, start=500), 2000, now=NOW)  # the day exists
    replaying = DynamoDayLedger(
        stack.tables["QuotaTable"],
        ReplayingClient(stack.client("dynamodb")),
        timezone=ZoneInfo("Asia/Shanghai"),
    )
    result = replaying.claim(DAY, files(10), 2000, now=NOW)
    assert len(result.granted) == 10
    assert result.known == {}
    assert stack.quota_used(DAY) == 11


def test_creating_the_day_whose_answer_was_lost_is_still_ours(stack):
    # 1st transaction: the claim, refused because the day has no items; 2nd: creating them (replayed)
    replaying = DynamoDayLedger(
        stack.tables["QuotaTable"],
        ReplayingClient(stack.client("dynamodb"), nth=2),
        timezone=ZoneInfo("Asia/Shanghai"),
    )
    result = replaying.claim(DAY, files(10), 2000, now=NOW)
    assert len(result.granted) == 10
    assert result.known == {}
    assert stack.quota_used(DAY) == 10


def test_files_spread_over_the_shards_and_the_limit_holds(stack, ledger):
    result = ledger.claim(DAY, files(100), 60, now=NOW)
    assert len(result.granted) == 60
    assert len(result.no_room) == 40
    assert len({shard_of(f) for f in result.granted}) == SHARDS
    assert stack.quota_used(DAY) == 60
    again = ledger.claim(DAY, files(100), 60, now=NOW)
    assert again.granted == []
    assert len(again.known) == 60
    assert len(again.no_room) == 40
    entries = ledger.entries(DAY)
    assert {e.state for e in entries.values()} == {EntryState.CLAIMED}
    assert len(entries) == 60
