"""The drain's ways out: it resumes after a kill, passes by what cannot move, parks a file that
keeps failing, keeps ``force``, and never re-sends what another path sent since the deferral."""

from __future__ import annotations

from datetime import timedelta

from polyv_prewarm.domain.claims import FORCE
from polyv_prewarm.domain.model import EntryState, Fate, FileRef, Lease, Origin, Tier
from polyv_prewarm.domain.ports import PolyvUnavailable
from polyv_prewarm.logic.drain import PARK_AFTER_FAILURES
from polyv_prewarm.summaries import summary
from tests.fakes import claims_of, vid
from tests.helpers import DAY, World, requests_for

NEXT_DAY = "2026-11-29"


def deferred_world(n: int, limit: int = 1) -> World:
    w = World(limit=limit, DRAIN_ORDER="oldest")  # the tests below name the files of each slice
    w.prewarm(requests_for(limit + n))  # `limit` sent today, n deferred
    w.clock.advance(days=1)
    return w


def test_a_drain_killed_mid_slice_is_resumed_by_its_retry():
    w = deferred_world(150)
    w.configure(DAILY_FILE_LIMIT="2000")
    # the killed drain: it claimed the first slice under its lease and died before recording
    lease = Lease.until("killed-drain", w.clock() + timedelta(seconds=150))
    oldest = [d.file for d in w.backlog.oldest(100)]
    w.ledger.claim(NEXT_DAY, claims_of([(f, "backlog") for f in oldest]), 2000, lease=lease, now=w.clock())
    w.clock.advance(minutes=3)  # Lambda retries a failed asynchronous invocation after 1-2 min
    report = w.drain()
    assert report.count(Fate.SUBMITTED) == 50  # the never-sent files first
    # the dead drain's claims are in doubt (its call may have reached Polyv): they wait as resends
    assert report.count(Fate.DEFERRED) == 100
    assert {d.tier for d in w.backlog.items.values()} == {Tier.RESEND}
    w.clock.advance(hours=22)  # the late sweep, with nothing never-sent left: claimed again
    swept = w.drain(sweep=True)
    assert swept.count(Fate.SUBMITTED) == 100
    assert swept.resent_in_doubt == 100
    assert w.backlog.items == {}


def test_files_held_by_another_invocation_do_not_block_the_rest():
    w = World(limit=1)
    w.prewarm(requests_for(301))
    w.clock.advance(days=1)
    w.configure(DAILY_FILE_LIMIT="2000")
    held = [d.file for d in w.backlog.oldest(100)]
    lease = Lease.until("busy", w.clock() + timedelta(minutes=2))
    w.ledger.claim(NEXT_DAY, claims_of([(f, "m") for f in held]), 2000, lease=lease, now=w.clock())
    report = w.drain()
    assert report.count(Fate.SUBMITTED) == 200  # the slices after the held one
    assert report.count(Fate.HANDED_BACK) == 100
    assert set(w.backlog.items) == set(held)  # they stay for the next drain


def test_a_file_refused_with_an_unknown_error_in_several_drains_is_parked():
    w = deferred_world(120)
    w.configure(DAILY_FILE_LIMIT="2000")
    refusal = PolyvUnavailable("Polyv refused the call: 'video frozen'", ambiguous=False, refused=True)
    for n in range(PARK_AFTER_FAILURES):
        w.polyv.fail_with = [refusal]
        report = w.drain()
        assert report.count(Fate.HANDED_BACK) == 100  # the failing slice...
        assert report.count(Fate.SUBMITTED) == (20 if n == 0 else 0)  # ...does not block the next
        w.clock.advance(days=1)
    parked = [d for d in w.backlog.items.values() if d.parked]
    assert len(parked) == 100
    assert {d.last_error for d in parked} == {"Polyv refused the call: 'video frozen'"}
    calls = len(w.polyv.calls)
    assert w.drain().results == []  # parked files are passed by...
    assert len(w.polyv.calls) == calls
    assert len(w.queries.deferred(500)) == 100  # ...and still listed
    status = summary(w.queries.status(vid(1)))
    assert status["deferred"]["1"]["parked"] is True


def test_a_forced_file_that_does_not_fit_keeps_its_force_in_the_backlog():
    w = World(limit=1)
    w.prewarm(requests_for(2))  # vid(0) sent, vid(1) deferred
    forced = w.prewarm(requests_for(2), rule=FORCE)  # nothing fits: both deferred
    assert forced.count(Fate.DEFERRED) == 2
    assert w.backlog.items[FileRef(vid(0), 1)].force is True  # sent today, so only force sends it
    assert w.backlog.items[FileRef(vid(1), 1)].force is False  # pending already: stored once
    w.prewarm(requests_for(1, start=5), rule=FORCE)
    assert w.backlog.items[FileRef(vid(5), 1)].force is True
    w.clock.advance(days=1)
    w.configure(DAILY_FILE_LIMIT="10")
    w.prewarm(requests_for(1, start=5))  # normal traffic sends it on the new day first
    report = w.drain()
    assert [r.file for r in report.results if r.fate is Fate.SUBMITTED].count(FileRef(vid(5), 1)) == 1
    assert w.polyv.accepted_files().count(FileRef(vid(5), 1)) == 2  # forced: sent again, as asked


def test_a_file_another_path_submitted_since_its_deferral_is_not_sent_again():
    w = World(limit=1)
    w.prewarm(requests_for(3))  # vid(0) sent; vid(1), vid(2) deferred
    w.clock.advance(days=1)
    w.configure(DAILY_FILE_LIMIT="1")
    # The next day, before any drain reaches it, normal traffic sends vid(2).
    w.prewarm(requests_for(1, start=2, origin=Origin("sqs", message_id="late")))
    w.clock.advance(days=1)
    w.configure(DAILY_FILE_LIMIT="10")
    report = w.drain()
    assert [r.file for r in report.results if r.fate is Fate.SUBMITTED] == [FileRef(vid(1), 1)]
    dup = [r for r in report.results if r.fate is Fate.DUPLICATE]
    assert [r.file for r in dup] == [FileRef(vid(2), 1)]
    assert "since it was deferred" in dup[0].reason
    assert w.backlog.items == {}
    assert w.polyv.accepted_files().count(FileRef(vid(2), 1)) == 1


def test_drained_files_are_recorded_on_the_drain_day():
    w = deferred_world(3)
    w.drain()
    assert {s.state for s in w.ledger.files[NEXT_DAY].values()} == {EntryState.SUBMITTED}
    assert w.ledger.used[DAY] == 1
