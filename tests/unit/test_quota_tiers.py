"""Every unit of the day on the file that matters most, against in-memory fakes: the outlook's
rule, the reserve's release, held-back definitions, files in doubt after never-sent ones, the
drains' and sweeps' tiers, and a backfill's catalogue (tests/integration/test_quota_days.py runs
the same on the local stack's timeline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polyv_prewarm.config import ConfigurationError, Settings
from polyv_prewarm.domain.catalogue import read_catalogue
from polyv_prewarm.domain.model import EntryState, Fate, FileRef, FileRequest, Lease, Origin, Tier
from polyv_prewarm.domain.ports import PolyvUnavailable
from polyv_prewarm.domain.quota import DayOutlook
from tests.fakes import USERID, claims_of, vid
from tests.helpers import BASE_ENV, DAY, TZ, World, requests_for

NOON = datetime(2026, 11, 28, 12, 0, tzinfo=TZ)
MIDNIGHT = datetime(2026, 11, 29, 0, 0, tzinfo=TZ)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, tzinfo=TZ)


# -- the outlook: the rule that says how tight a day is ---------------------------------------------
@pytest.mark.parametrize(
    ("outlook", "now", "asking", "surplus"),
    [
        # the day's first request: its own files are the first hour's rate (5/h x 12 h = 60)
        (DayOutlook(), NOON, 5, 100 - 5 - 60),
        # 30 first-rank files since 08:00 (4 h): 7.5/h for the 12 h left = 90 -> none to spare
        (DayOutlook(used=40, first_rank=30, first_rank_since=at(8)), NOON, 5, 0),
        # the same files, an hour before midnight: 30 in 15 h, 2 expected
        (DayOutlook(used=40, first_rank=30, first_rank_since=at(8)), at(23), 5, 100 - 40 - 5 - 2),
        # a rate is read from an hour at least: 10 files in 10 minutes are 10/h, not 60/h
        (DayOutlook(used=10, first_rank=10, first_rank_since=at(11, 50)), NOON, 0, 100 - 10 - 120),
        # ...and 10/h for the 50 minutes left: 8.3 expected, whole files to spare
        (DayOutlook(used=10, first_rank=10, first_rank_since=at(23, 0)), at(23, 10), 0, 81),
        # nothing left of the day: the limit less what is used
        (DayOutlook(used=70, first_rank=70, first_rank_since=at(1)), MIDNIGHT, 0, 30),
    ],
)
def test_the_surplus_is_what_the_rest_of_the_day_is_not_expected_to_need(outlook, now, asking, surplus):
    assert outlook.surplus(100, now, MIDNIGHT, asking=asking) == max(0, surplus)


# -- the reserve ---------------------------------------------------------------------------------
def test_the_reserve_is_everyones_from_its_release_time():
    policy = World(limit=100, MANUAL_RESERVE="5").settings.policy()
    assert policy.limit(priority_high=False, now=at(22, 59)) == 95
    assert policy.limit(priority_high=True, now=at(22, 59)) == 100
    assert policy.limit(priority_high=False, now=at(23, 0)) == 100
    assert policy.release_time(at(3)) == at(23)


@pytest.mark.parametrize(
    ("name", "value"),
    [("RESERVE_RELEASE_AT", "24:00"), ("RESERVE_RELEASE_AT", "23"), ("PRIORITY_BR_INDEXES", "4")],
)
def test_the_quota_settings_are_checked(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**BASE_ENV, name: value})


# -- held-back definitions -----------------------------------------------------------------------
def videos(n: int, start: int = 0) -> list[FileRequest]:
    """Videos asking for every definition (no brIndex named: the defaults 1, 2, 3)."""
    return [
        FileRequest(vid(start + i), br, Origin("sqs", message_id=f"m{i}"))
        for i in range(n)
        for br in (1, 2, 3)
    ]


def test_on_a_tight_day_a_videos_other_definitions_wait_for_its_main_one():
    w = World(limit=30, MANUAL_RESERVE="0", PRIORITY_BR_INDEXES="2")
    report = w.prewarm(videos(5))  # 15 files; 5 main ones at 01:00: 5/h for 23 h is more than 30
    assert sorted(f.br_index for f in w.polyv.accepted_files()) == [2] * 5
    assert report.count(Fate.DEFERRED) == 10
    assert {(d.file.br_index, d.tier, d.origin) for d in w.backlog.items.values()} == {
        (br, Tier.LATER, f"m{i}") for i in range(5) for br in (1, 3)
    }
    assert w.ledger.first_rank[DAY] == 5  # the day's rate counts what fresh traffic asks first


def test_on_a_light_day_every_definition_goes_at_once():
    w = World(limit=2000, MANUAL_RESERVE="0", PRIORITY_BR_INDEXES="2")
    w.prewarm(videos(5))
    assert len(w.polyv.accepted_files()) == 15
    assert w.backlog.items == {}


def test_an_explicit_bitrate_or_a_persons_priority_request_is_taken_as_asked():
    w = World(limit=30, MANUAL_RESERVE="0", PRIORITY_BR_INDEXES="2")
    explicit = [FileRequest(vid(1), 3, Origin("sqs"), explicit=True)]
    w.prewarm(explicit)
    w.prewarm([FileRequest(vid(2), br, Origin("direct")) for br in (1, 2, 3)], priority_high=True)
    assert sorted(w.polyv.accepted_files()) == sorted(
        [FileRef(vid(1), 3)] + [FileRef(vid(2), b) for b in (1, 2, 3)]
    )


def test_without_priorities_every_definition_is_first_rank():
    w = World(limit=30, MANUAL_RESERVE="0")
    w.prewarm(videos(5))
    assert len(w.polyv.accepted_files()) == 15


# -- files in doubt after never-sent ones -------------------------------------------------------
def killed_claims(w: World, n: int, start: int = 0) -> list[FileRef]:
    """Files claimed by an invocation that died after its call (its lease long over)."""
    files = [FileRef(vid(start + i), 1) for i in range(n)]
    lease = Lease.until("killed", w.clock() - timedelta(minutes=1))
    w.ledger.claim(
        DAY,
        claims_of([(f, "m-dead") for f in files]),
        2000,
        lease=lease,
        now=w.clock() - timedelta(minutes=5),
    )
    return files


def test_files_in_doubt_wait_as_resends_on_a_tight_day():
    w = World(limit=10, MANUAL_RESERVE="0")
    killed_claims(w, 10)  # the day is spent on files Polyv may have taken
    report = w.prewarm(requests_for(10))  # their redelivery
    assert report.count(Fate.DEFERRED) == 10
    assert {d.tier for d in w.backlog.items.values()} == {Tier.RESEND}
    assert w.polyv.calls == []
    assert report.resent_in_doubt == 0


def test_files_in_doubt_are_resent_at_once_from_a_days_surplus():
    w = World(limit=2000, MANUAL_RESERVE="0")
    killed_claims(w, 10)
    report = w.prewarm(requests_for(10))
    assert report.count(Fate.SUBMITTED) == 10
    assert report.resent_in_doubt == 10  # FilesResentInDoubt: what the re-sends cost
    assert w.ledger.used[DAY] == 20  # counted again: over, never under


def test_a_call_of_unknown_outcome_is_not_resent_on_a_tight_day():
    w = World(limit=10, MANUAL_RESERVE="0")
    w.polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)]
    report = w.prewarm(requests_for(5))  # 5/h for 23 h: the day is tight
    assert len(w.polyv.calls) == 1  # no re-send in the same invocation
    assert w.ledger.files[DAY][FileRef(vid(0), 1)].state is EntryState.IN_DOUBT
    assert report.count(Fate.SUBMITTED) == 0


# -- the drains' tiers ---------------------------------------------------------------------------
def backlog_of(w: World, tier: Tier, n: int, start: int) -> list[FileRef]:
    files = [FileRef(vid(start + i), 1) for i in range(n)]
    w.backlog.defer(claims_of([(f, "m") for f in files]), now=w.clock() - timedelta(days=1), tier=tier)
    return files


def test_the_morning_drain_sends_never_sent_files_and_never_backfill_or_resends():
    w = World(limit=100, MANUAL_RESERVE="0")
    normal = backlog_of(w, Tier.NORMAL, 10, 0)
    later = backlog_of(w, Tier.LATER, 10, 100)
    backlog_of(w, Tier.BACKFILL, 10, 200)
    backlog_of(w, Tier.RESEND, 10, 300)
    report = w.drain()
    sent = w.polyv.accepted_files()
    assert sent[:10] == sorted(normal, key=lambda f: f.vid, reverse=True)  # newest first: same time, by key
    assert set(sent[10:]) == set(later)  # then the held-back ones, from what yesterday leaves
    assert report.count(Fate.SUBMITTED) == 20
    assert {d.tier for d in w.backlog.items.values()} == {Tier.BACKFILL, Tier.RESEND}


def test_the_morning_drain_keeps_yesterdays_main_definitions_worth_for_today():
    w = World(limit=100, MANUAL_RESERVE="0")
    w.ledger.first_rank["2026-11-27"] = 95  # yesterday's fresh main definitions
    backlog_of(w, Tier.LATER, 10, 100)
    w.drain()
    assert len(w.polyv.accepted_files()) == 5


def test_the_late_sweep_spends_tier_by_tier_and_backfill_only_beyond_fresh_traffics_need():
    w = World(limit=100, MANUAL_RESERVE="5")
    w.clock.now = at(22, 0).astimezone(UTC)
    w.prewarm(requests_for(66, start=1000))  # fresh traffic: 66 since 22:00 -> 66/h
    normal = backlog_of(w, Tier.NORMAL, 3, 0)
    resend = backlog_of(w, Tier.RESEND, 3, 300)
    backfill = backlog_of(w, Tier.BACKFILL, 40, 200)
    w.clock.now = at(23, 50).astimezone(UTC)  # 66 in 1 h 50 min, 10 minutes left: 6 expected
    w.drain(sweep=True)
    sent = w.polyv.accepted_files()[66:]
    assert sent[:3] == sorted(normal, key=lambda f: f.vid, reverse=True)  # the reserve is released
    assert len(sent) == 100 - 66 - 6  # backfill and resends leave the expected 6 to fresh files
    assert set(sent[3:]) <= set(backfill)  # never-sent backfill before files in doubt
    assert not set(sent) & set(resend)


def test_a_fresh_deferral_lifts_a_backfilled_file_to_the_normal_tier():
    w = World(limit=1, MANUAL_RESERVE="0")
    w.backfill.run([vid(5)], source="catalogue")
    w.prewarm(requests_for(6))  # vid(0) sent; vids 1-5 deferred, vid(5)'s files among them
    assert w.backlog.items[FileRef(vid(5), 1)].tier is Tier.NORMAL
    assert w.backlog.items[FileRef(vid(5), 2)].tier is Tier.BACKFILL


def test_backfill_expires_by_its_own_age_not_the_backlogs():
    w = World(limit=100, MANUAL_RESERVE="0")
    old_normal = backlog_of(w, Tier.NORMAL, 2, 0)
    old_backfill = backlog_of(w, Tier.BACKFILL, 2, 200)
    w.clock.advance(days=30)
    w.configure(DAILY_FILE_LIMIT="1")  # nothing sent: only expiry
    w.polyv.userid = lambda: USERID
    report = w.drain()
    assert {r.file for r in report.results if r.fate is Fate.EXPIRED} == set(old_normal)
    assert set(w.backlog.items) >= set(old_backfill)


# -- a backfill's catalogue ------------------------------------------------------------------------
def test_a_catalogue_is_read_line_by_line_and_says_what_it_refused():
    lines = [
        "vid,brIndex",
        f"{vid(1)},2",
        f"{vid(2)}",
        "",
        "# a comment",
        f"{vid(1)},2",
        "0000000000" + vid(3)[10:],
        f"{vid(4)},7",
        "not a vid at all",
        f"{vid(5)},1,extra",
    ]
    catalogue = read_catalogue(lines, [USERID], (1, 2, 3))
    assert catalogue.files == [FileRef(vid(1), 2)] + [FileRef(vid(2), br) for br in (1, 2, 3)]
    assert catalogue.repeated == 1
    assert [(r.line, r.reason.split(" (")[0]) for r in catalogue.refused] == [
        (7, "no account for userid '0000000000': the vid belongs to another Polyv account"),
        (8, "brIndex must be 1, 2 or 3, got '7'"),
        (9, "vid does not have the Polyv shape <32 chars [0-9a-z]>_<1 char>"),
        (10, "expected vid or vid,brIndex"),
    ]
    assert catalogue.lines == 10


def test_a_backfill_run_twice_stores_once_and_estimates_its_days():
    w = World(limit=100, MANUAL_RESERVE="0")
    w.clock.now = at(12).astimezone(UTC)
    w.prewarm(requests_for(20, start=500))  # 20 first-rank files by noon: 40 a day, 60 spare
    lines = [f"{vid(i)},1" for i in range(300)]
    preview = w.backfill.run(lines, source="c.csv", dry_run=True)
    assert (preview.stored, preview.spare_per_day, preview.days) == (0, 60, 5)
    assert not any(d.tier is Tier.BACKFILL for d in w.backlog.items.values())
    first = w.backfill.run(lines, source="c.csv")
    second = w.backfill.run(lines, source="c.csv")
    assert (first.stored, second.stored) == (300, 0)
    assert {d.origin for d in w.backlog.items.values()} == {"backfill:c.csv"}
