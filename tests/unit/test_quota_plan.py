"""The quota planner (``domain/quota.py``), rule by rule, each a table of cases: a change of quota
policy changes this file and that module, nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from polyv_prewarm.domain.model import Tier
from polyv_prewarm.domain.quota import (
    DayOutlook,
    Resends,
    at_rate,
    beyond_the_count,
    claim_limit,
    covers,
    drain_limits,
    holds_back,
    may_resend,
    spare_per_day,
    sweep_limits,
)
from tests.helpers import TZ

MIDNIGHT = datetime(2026, 11, 29, 0, 0, tzinfo=TZ)
H = timedelta(hours=1)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("count", "seen_over", "carried_over", "expected"),
    [
        (10, 2 * H, 4 * H, 20),  # 5 an hour, for four hours
        (10, 10 * timedelta(minutes=1), 1 * H, 10),  # seen over less than an hour: read as an hour's
        (10, 2 * H, -H, 0),  # nothing left to carry it over
        (0, 5 * H, 5 * H, 0),
    ],
)
def test_the_one_rate_formula(count, seen_over, carried_over, expected):
    assert at_rate(count, seen_over, carried_over) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("priority_high", "released", "limit"),
    [
        (False, False, 95),  # automatic traffic leaves the reserve alone
        (True, False, 100),  # a person's priority request may use it
        (False, True, 100),  # once released, it is everyone's
        (True, True, 100),
    ],
)
def test_the_reserve_is_a_persons_until_its_release(priority_high, released, limit):
    assert claim_limit(100, 5, priority_high=priority_high, reserve_released=released) == limit


@pytest.mark.parametrize(
    ("surplus", "files", "covered"),
    [(None, 0, False), (0, 0, True), (5, 5, True), (4, 5, False), (100, 1, True)],
)
def test_the_surplus_covers_what_it_has_room_for_and_an_unread_day_is_tight(surplus, files, covered):
    assert covers(surplus, files) is covered


@pytest.mark.parametrize(
    ("resends", "surplus", "files", "allowed"),
    [
        (Resends.ALWAYS, None, 100, True),  # the resend tier's drain: after every never-sent file
        (Resends.NEVER, 1000, 1, False),  # a drain of never-sent files never resends
        (Resends.FROM_SURPLUS, 10, 10, True),
        (Resends.FROM_SURPLUS, 9, 10, False),
        (Resends.FROM_SURPLUS, None, 1, False),
    ],
)
def test_files_in_doubt_are_resent_only_when_the_run_may(resends, surplus, files, allowed):
    assert may_resend(resends, surplus, files) is allowed


@pytest.mark.parametrize(
    ("later", "surplus", "taken_as_asked", "held"),
    [
        (0, 0, False, False),  # nothing to hold back
        (3, 3, False, False),  # the surplus takes them all
        (3, 2, False, True),  # a tight day
        (3, None, False, True),  # an unread day is tight
        (3, 0, True, False),  # a forced or a person's priority request: taken as asked
    ],
)
def test_other_definitions_wait_only_on_a_tight_day(later, surplus, taken_as_asked, held):
    assert holds_back(later=later, surplus=surplus, taken_as_asked=taken_as_asked) is held


@pytest.mark.parametrize(
    ("limit", "yesterday", "expected"),
    [
        (100, 30, [(Tier.NORMAL, 100), (Tier.LATER, 70), (Tier.SUSPECT, 70)]),
        (100, 150, [(Tier.NORMAL, 100), (Tier.LATER, 0), (Tier.SUSPECT, 0)]),
    ],
)
def test_the_morning_drain_spends_what_yesterdays_main_definitions_leave(limit, yesterday, expected):
    assert drain_limits(limit, yesterday_first_rank=yesterday) == expected


@pytest.mark.parametrize(
    ("today", "now", "fresh_first"),
    [
        # 30 first-rank files from 08:00 to 23:00: 2 an hour, an hour left: 2 files held back
        (DayOutlook(used=40, first_rank=30, first_rank_since=at(8)), at(23), 100 - 2),
        # 30 in the half hour since 22:30, read as an hour's: 30 expected in the hour left
        (DayOutlook(used=40, first_rank=30, first_rank_since=at(22, 30)), at(23), 100 - 30),
        # a day without fresh traffic holds nothing back
        (DayOutlook(), at(23), 100),
        # at midnight nothing is expected any more
        (DayOutlook(used=90, first_rank=90, first_rank_since=at(1)), MIDNIGHT, 100),
    ],
)
def test_a_late_sweep_spends_every_never_sent_tier_and_the_rest_beyond_fresh_traffic(today, now, fresh_first):
    assert sweep_limits(100, today, now, MIDNIGHT) == [
        (Tier.NORMAL, 100),
        (Tier.LATER, 100),
        (Tier.SUSPECT, 100),
        (Tier.BACKFILL, fresh_first),
        (Tier.RESEND, fresh_first),
    ]


@pytest.mark.parametrize(
    ("today", "yesterday", "since_start", "spare"),
    [
        (DayOutlook(first_rank=20), DayOutlook(), 12 * H, 100 - 40),  # 20 by noon: 40 a day
        (DayOutlook(first_rank=20), DayOutlook(first_rank=90), 30 * timedelta(minutes=1), 10),  # yesterday's
        (DayOutlook(first_rank=200), DayOutlook(), 12 * H, 0),  # fresh traffic takes every unit
    ],
)
def test_a_backfill_gets_what_a_day_of_fresh_traffic_leaves(today, yesterday, since_start, spare):
    assert spare_per_day(100, today=today, yesterday=yesterday, since_day_start=since_start) == spare


@pytest.mark.parametrize(
    ("limit", "confirmed", "size", "room"),
    [(100, 60, 100, 40), (100, 60, 25, 25), (100, 100, 100, 0), (100, 120, 50, 0)],
)
def test_asking_beyond_the_count_is_bounded_by_what_polyv_may_have_left(limit, confirmed, size, room):
    assert beyond_the_count(limit=limit, confirmed=confirmed, size=size) == room
