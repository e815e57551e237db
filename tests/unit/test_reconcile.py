"""The reconcile (domain/reconcile.py, logic/reconcile.py) over fakes: Polyv's list of new videos
read in a bounded window, only the files no event brought queued, a pass over several runs, the
watermark held by a video still transcoding, and a listing that fails costing nothing but a count.
tests/integration/test_reconcile.py runs it on the local stack."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from polyv_prewarm.domain.model import Fate, FileRef, ListedVideo
from polyv_prewarm.domain.reconcile import (
    MAX_PAGES,
    PAGE_SIZE,
    SETTLE,
    SKEW,
    STUCK,
    Mark,
    Window,
    after_the_run,
    files_of,
    holds_back,
    window,
)
from tests.helpers import TZ, World, requests_for, vid

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=TZ)
W = Window(NOW - timedelta(hours=1), NOW - SETTLE, 1)


def listed(i: int, *, at: datetime, df: int = 3, status: int = 60) -> ListedVideo:
    return ListedVideo(vid(i), df, status, at.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S"), 0)


# -- the rules, a table each ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("df", "status", "at", "files"),
    [
        (3, 60, NOW - timedelta(minutes=30), [1, 2, 3]),
        (2, 61, NOW - timedelta(minutes=30), [1, 2]),
        (5, 60, NOW - timedelta(minutes=30), [1, 2, 3]),  # brIndex 1..3 at most
        (0, 60, NOW - timedelta(minutes=30), []),
        (3, 20, NOW - timedelta(minutes=30), []),  # still encoding: nothing yet
        (3, 60, NOW - timedelta(minutes=5), []),  # settling: left to its events
        (3, 60, NOW - timedelta(hours=2), []),  # before the window
    ],
)
def test_the_files_of_a_listed_video(df, status, at, files):
    assert files_of(listed(1, at=at, df=df, status=status), at, W) == [FileRef(vid(1), br) for br in files]


@pytest.mark.parametrize(
    ("status", "age", "holds"),
    [
        (20, timedelta(minutes=30), True),  # encoding: the watermark waits for it
        (10, timedelta(minutes=30), True),
        (60, timedelta(minutes=30), False),  # published: its files are taken now
        (-1, timedelta(minutes=30), False),  # deleted: never
        (51, timedelta(minutes=30), False),  # rejected by audit: never
    ],
)
def test_which_videos_hold_the_watermark(status, age, holds):
    at = NOW - age
    assert holds_back(listed(1, at=at, status=status), at, W, NOW) is holds


def test_a_video_stuck_for_a_day_holds_the_watermark_no_longer():
    old = Window(NOW - STUCK - timedelta(hours=1), NOW - SETTLE, 1)
    at = NOW - STUCK - timedelta(minutes=1)
    assert not holds_back(listed(1, at=at, status=20), at, old, NOW)


def test_the_window_and_the_mark_through_a_pass():
    first = window(None, NOW)  # a first run looks back a day
    assert (first.start, first.end, first.page) == (NOW - timedelta(days=1) - SKEW, NOW - SETTLE, 1)
    mark = Mark(since=NOW - timedelta(hours=1))
    w = window(mark, NOW)
    assert (w.start, w.end) == (mark.since - SKEW, NOW - SETTLE)
    cut = after_the_run(mark, w, pages_read=MAX_PAGES, complete=False, held=[])
    assert (cut.since, cut.page, cut.pass_end) == (mark.since, 1 + MAX_PAGES - 1, w.end)  # one page again
    later = NOW + timedelta(minutes=15)
    resumed = window(cut, later)
    assert (resumed.page, resumed.end) == (MAX_PAGES, w.end)  # the same pass, not the new uploads
    done = after_the_run(cut, resumed, pages_read=2, complete=True, held=[])
    assert (done.since, done.page, done.pass_end) == (w.end, 1, None)
    held = after_the_run(mark, w, pages_read=1, complete=True, held=[NOW - timedelta(minutes=40)])
    assert held.since == NOW - timedelta(minutes=40)
    assert (
        after_the_run(mark, w, pages_read=1, complete=True, held=[NOW - timedelta(hours=5)]).since
        == mark.since
    )


# -- the use case over fakes ---------------------------------------------------------------------
def reconcile(w: World, **options):
    return w.every_account().reconcile(deadline=w.deadline_in(60), **options)


def test_a_video_whose_callback_was_lost_is_found_and_warmed_once():
    w = World()
    w.clock.advance(hours=5)
    now = w.clock()
    w.polyv.listed = [
        listed(1, at=now - timedelta(minutes=20), df=2),
        listed(2, at=now - timedelta(minutes=30)),
    ]
    w.prewarm(
        requests_for(1, br=1, start=2) + requests_for(1, br=2, start=2) + requests_for(1, br=3, start=2)
    )
    run = reconcile(w)
    assert run.files_found == 2  # video 1's two definitions; video 2 came by its events
    assert run.report.count(Fate.SUBMITTED) == 2
    assert sorted(f for call in w.polyv.accepted for f in call if f.vid == vid(1)) == [
        FileRef(vid(1), 1),
        FileRef(vid(1), 2),
    ]
    calls = len(w.polyv.calls)
    w.clock.advance(minutes=15)
    again = reconcile(w)
    assert again.files_found == 0
    assert len(w.polyv.calls) == calls  # nothing sent twice
    assert w.marks.mark is not None
    assert w.marks.mark.since == w.clock() - SETTLE


def test_files_deferred_or_handled_on_an_earlier_day_are_not_found_again():
    w = World(limit=1, MANUAL_RESERVE="0")
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=30), df=2)]
    w.prewarm(requests_for(1, br=1, start=1) + requests_for(1, br=2, start=1))  # one sent, one deferred
    assert len(w.backlog.items) == 1
    w.clock.advance(days=1)
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=30), df=2)]
    run = reconcile(w, since=now - timedelta(hours=1))
    assert run.files_found == 0


def test_a_listing_that_fails_costs_nothing_but_a_count_and_prewarming_goes_on():
    w = World()
    w.polyv.listing_fails = True
    for n in range(1, 5):
        run = reconcile(w)
        assert run.failed() == ["e6b23c6f51"]
        assert w.marks.mark is not None
        assert w.marks.mark.failures == n
        w.clock.advance(minutes=15)
    assert w.polyv.calls == []
    assert w.prewarm(requests_for(3)).count(Fate.SUBMITTED) == 3  # the prewarm never waits on it
    w.polyv.listing_fails = False
    reconcile(w)
    assert w.marks.mark.failures == 0


def test_a_busy_day_is_read_in_bounded_passes_and_every_file_found_once():
    w = World(limit=100_000)
    w.clock.advance(hours=12)
    now = w.clock()
    uploads = 5_000
    w.polyv.listed = [listed(i, at=now - timedelta(minutes=20, seconds=i), df=1) for i in range(uploads)]
    found, runs = [], 0
    while runs < 20:
        run = reconcile(w, dry_run=False)
        runs += 1
        found += [r.file for r in run.report.results]
        assert all(f.pages <= MAX_PAGES for f in run.found.values())
        if w.marks.mark is not None and w.marks.mark.page == 1 and run.files_found == 0:
            break
        w.clock.advance(minutes=15)
    assert len(set(found)) == uploads  # every upload's file, and none twice
    assert len(found) == uploads
    assert runs <= uploads // (PAGE_SIZE * (MAX_PAGES - 1)) + 3


def test_a_dry_run_or_a_look_since_a_date_moves_no_mark():
    w = World()
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=20))]
    run = reconcile(w, dry_run=True)
    assert run.files_found == 3
    assert run.report.count(Fate.PLANNED) == 3
    assert w.marks.puts == 0
    reconcile(w, since=now - timedelta(hours=2))
    assert w.marks.puts == 0
    assert w.polyv.pages_asked[-1][1] == (now - timedelta(hours=2) - SKEW).strftime("%Y-%m-%d")


def test_the_table_unavailable_skips_the_run_and_stores_nothing():
    w = World()
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=20))]
    w.marks.fail = True
    run = reconcile(w)
    assert (run.files_found, run.failed(), w.polyv.pages_asked) == (0, [], [])  # not a listing failure
    assert run.found["e6b23c6f51"].error == "the reconcile mark: InternalServerError"
    w.marks.fail = False
    w.backlog.unavailable = True  # the mark readable, the backlog not: nothing found, nothing stored
    run = reconcile(w)
    assert (run.files_found, w.marks.puts) == (0, 0)
    w.backlog.unavailable = False
    assert reconcile(w).files_found == 3  # the next run does it all


def test_a_video_its_events_brought_is_left_to_their_choice_of_definitions():
    w = World(DEFAULT_BR_INDEXES="2,3")
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=30)), listed(2, at=now - timedelta(minutes=30))]
    w.prewarm(requests_for(1, br=1, start=1))  # the pipeline asked for brIndex 1 of video 1 only
    run = reconcile(w)
    assert [r.file for r in run.report.results] == [
        FileRef(vid(2), 2),
        FileRef(vid(2), 3),
    ]  # DEFAULT_BR_INDEXES


def test_while_events_are_in_flight_a_video_is_queued_only_when_a_second_run_finds_it_unbrought():
    w = World()
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=20)), listed(2, at=now - timedelta(minutes=20))]
    w.queue.busy = True  # messages in the queue: one may be video 1's, waiting out a back-off
    first = reconcile(w)
    assert first.files_found == 0
    assert w.marks.mark is not None
    assert w.marks.mark.candidates == {FileRef(v, br) for v in (vid(1), vid(2)) for br in (1, 2, 3)}
    assert w.marks.mark.page == 1  # the mark moves on: the candidates are checked without a listing
    w.clock.advance(minutes=15)
    w.prewarm(requests_for(1, br=1, start=1))  # video 1's message arrives: its events' choice stands
    second = reconcile(w)
    assert sorted(r.file for r in second.report.results) == [FileRef(vid(2), br) for br in (1, 2, 3)]
    assert w.marks.mark.candidates == frozenset()
    w.clock.advance(minutes=15)
    assert reconcile(w).files_found == 0  # nothing twice


def test_an_unreadable_queue_counts_as_events_in_flight_and_an_empty_one_as_none():
    w = World()
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=20))]
    w.queue.fail = True
    assert reconcile(w).files_found == 0
    w.queue.fail = False
    w.clock.advance(minutes=15)
    assert reconcile(w).files_found == 3  # the candidate, still unbrought: queued


def test_a_candidate_is_checked_again_even_once_the_window_has_moved_past_it():
    w = World()
    now = w.clock()
    w.polyv.listed = [listed(1, at=now - timedelta(minutes=20))]
    w.queue.busy = True
    assert reconcile(w).files_found == 0
    w.polyv.listed = []  # the next run lists nothing of it (a busy day's later pages, say)
    w.clock.advance(minutes=15)
    assert sorted(r.file for r in reconcile(w).report.results) == [FileRef(vid(1), br) for br in (1, 2, 3)]
