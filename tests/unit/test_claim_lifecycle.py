"""Every exit between claim and record, against in-memory fakes: the claims always end recorded
(or leased until the deadline), every file gets exactly one fate, and nothing is silently lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyv_prewarm.domain.model import EntryState, Fate, FileRef, FileRequest, Origin
from polyv_prewarm.domain.ports import PolyvQuotaSpent, PolyvUnavailable, StoreUnavailable
from tests.fakes import FakePolyv, vid
from tests.helpers import DAY, FIFTEEN_SECONDS_A_CALL, NO_RESERVE, World, requests_for


def states(world: World, day: str = DAY) -> dict[FileRef, EntryState]:
    return {f: e.state for f, e in world.ledger.files.get(day, {}).items()}


def test_an_unexpected_error_before_sending_hands_every_claim_back():
    w = World()
    w.polyv.fail_with = [StoreUnavailable("secret store down")]  # raised before anything was sent?
    origin = Origin("sqs", message_id="m1")
    report = w.prewarm(requests_for(10, origin=origin))
    # The fake raised inside push: the call may have gone out, so its files are in doubt.
    assert set(states(w).values()) == {EntryState.IN_DOUBT}
    assert report.count(Fate.HANDED_BACK) == 10
    assert report.messages_to_retry() == {"m1"}
    assert "unexpected error" in report.stopped_because
    redelivered = w.prewarm(requests_for(10, origin=origin))
    assert redelivered.count(Fate.SUBMITTED) == 10  # never "duplicate"
    assert w.ledger.used[DAY] == 20  # in doubt: counted again (over, never under)


def test_secret_unreadable_after_a_refused_signature_parks_and_releases():
    w = World()
    # The client turns an unreadable secret into "unavailable, nothing sent".
    w.polyv.fail_with = [PolyvUnavailable("cannot read the Polyv secret: ...", ambiguous=False, secret=True)]
    report = w.prewarm(requests_for(5, origin=Origin("sqs", message_id="m")))
    assert set(states(w).values()) == {EntryState.HANDED_BACK}
    assert w.ledger.used[DAY] == 0
    assert report.count(Fate.DEFERRED) == 5  # waiting in the backlog, due at once
    assert report.messages_to_retry() == set()
    assert not w.breaker.current.open  # Polyv was not even asked: no outage of Polyv's
    assert w.prewarm(requests_for(5)).count(Fate.SUBMITTED) == 5


def test_the_store_failing_while_counting_a_resend_leaves_the_files_in_doubt():
    w = World()
    w.polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)]
    real = w.ledger.reserve_extra

    def failing(*args, **kwargs):
        raise StoreUnavailable("day ledger: InternalServerError")

    w.ledger.reserve_extra = failing
    report = w.prewarm(requests_for(7, origin=Origin("sqs", message_id="m")))
    w.ledger.reserve_extra = real
    assert set(states(w).values()) == {EntryState.IN_DOUBT}
    assert w.ledger.used[DAY] == 7  # the unknown call stays counted
    assert report.count(Fate.HANDED_BACK) == 7
    assert w.prewarm(requests_for(7)).count(Fate.SUBMITTED) == 7


def test_a_failed_record_keeps_the_fates_polyv_gave_and_hands_nothing_back():
    w = World()
    w.ledger.fail_settle = True
    report = w.prewarm(requests_for(3, origin=Origin("sqs", message_id="m")))
    assert report.count(Fate.SUBMITTED) == 3  # Polyv accepted them: handing back would re-send
    assert report.messages_to_retry() == set()
    assert set(states(w).values()) == {EntryState.CLAIMED}  # leased until the deadline
    w.ledger.fail_settle = False
    held = w.prewarm(requests_for(3))
    assert held.count(Fate.HANDED_BACK) == 3  # the lease still runs: not ours, not a duplicate
    w.clock.advance(minutes=16)  # past the default 15-minute deadline and the grace
    again = w.prewarm(requests_for(3))
    assert again.count(Fate.SUBMITTED) == 3  # in doubt for the ledger: sent and counted again
    assert w.ledger.used[DAY] == 6


def test_a_record_that_fails_for_a_while_is_written_on_a_later_attempt():
    w = World()
    w.ledger.fail_settle = 3
    report = w.prewarm(requests_for(3), deadline=w.deadline_in(60))
    assert report.count(Fate.SUBMITTED) == 3
    assert set(states(w).values()) == {EntryState.SUBMITTED}
    assert w.ledger.calls.count("settle") == 4


def test_a_record_is_not_retried_into_the_deadline():
    w = World(**FIFTEEN_SECONDS_A_CALL)
    w.ledger.fail_settle = True
    time_left = w.slow_polyv(seconds_per_call=0, deadline_in=20)
    w.backoff = lambda attempt: 5.0
    w.sleep = lambda seconds: w.clock.advance(seconds=seconds)
    w.prewarm(requests_for(3), deadline=time_left)
    assert 2 <= w.ledger.calls.count("settle") <= 5  # stops once under 2 s would be left
    assert w.clock() - datetime(2026, 11, 27, 17, 0, tzinfo=UTC) < timedelta(seconds=20)


def test_an_interrupt_during_a_call_still_records_the_claims_then_propagates():
    w = World()
    w.polyv.fail_with = [KeyboardInterrupt()]
    with pytest.raises(KeyboardInterrupt):
        w.prewarm(requests_for(4))
    assert set(states(w).values()) == {EntryState.IN_DOUBT}
    assert "settle" in w.ledger.calls


def test_bisection_stops_at_the_deadline_and_keeps_what_it_learned():
    bad = {vid(i) for i in range(0, 80, 2)}  # 40 unknown vids among 60 files
    # without the bisection budgets (they would stop it first: test_bisection_budget_* below)
    w = World(
        polyv=FakePolyv(unknown=bad),
        BISECTION_CALLS_PER_CHUNK="10000",
        BISECTION_CALLS_PER_INVOCATION="10000",
    )
    time_left = w.slow_polyv(seconds_per_call=0.25, deadline_in=12)
    w.configure(
        POLYV_ATTEMPTS="1", POLYV_CONNECT_TIMEOUT_SECONDS="1", POLYV_READ_TIMEOUT_SECONDS="2"
    )  # 3 s a call
    report = w.prewarm(requests_for(60, origin=Origin("sqs", message_id="m")), deadline=time_left)
    assert (w.clock() - datetime(2026, 11, 27, 17, 0, tzinfo=UTC)) <= timedelta(seconds=9.25)
    assert len(w.polyv.calls) <= 37  # (12 - 3) / 0.25 calls at most
    assert report.count(Fate.DEFERRED) > 0  # parked: they wait for the recovery drain
    assert "time" in report.stopped_because
    # Everything learned is recorded; the rest is parked, released and claimable again.
    recorded = states(w)
    assert set(recorded.values()) <= {EntryState.SUBMITTED, EntryState.REJECTED, EntryState.HANDED_BACK}
    assert w.ledger.used[DAY] == report.count(Fate.SUBMITTED)
    for _ in range(10):  # recovery drains, each with a fresh deadline, finish the job
        if not w.backlog.items:
            break
        time_left = w.slow_polyv(seconds_per_call=0.25, deadline_in=12)
        report = w.recover(deadline=time_left)
    assert w.backlog.items == {}
    good = {FileRef(vid(i), 1) for i in range(60) if vid(i) not in bad}
    assert set(w.polyv.accepted_files()) == good
    assert len(w.polyv.accepted_files()) == len(good)  # none twice


def test_a_call_that_straddles_midnight_counts_in_the_day_polyv_answered():
    w = World()
    w.clock.now = datetime(2026, 11, 28, 15, 59, 59, 700_000, tzinfo=UTC)  # 23:59:59.7 in Shanghai
    w.polyv.on_push = lambda files: w.clock.advance(seconds=1)
    first = w.prewarm(requests_for(1))
    assert first.count(Fate.SUBMITTED) == 1
    assert w.ledger.used == {"2026-11-28": 1, "2026-11-29": 1}  # old day keeps it; new day counts it
    w.polyv.on_push = None
    w.clock.advance(seconds=5)
    again = w.prewarm(requests_for(1))
    assert again.count(Fate.DUPLICATE) == 1  # Polyv has it for the new day: not sent again
    assert len(w.polyv.accepted_files()) == 1


def test_files_already_handled_when_the_quota_is_spent_are_duplicates_not_missing():
    w = World(limit=100, **NO_RESERVE)
    w.prewarm(requests_for(100))
    report = w.prewarm(requests_for(200))
    assert len(report.results) == 200
    assert report.count(Fate.DUPLICATE) == 100
    assert report.count(Fate.DEFERRED) == 100
    assert len(w.backlog.items) == 100


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 260),
    limit=st.integers(1, 300),
    already=st.integers(0, 150),
    bad=st.sets(st.integers(0, 260), max_size=8),
    faults=st.lists(
        st.sampled_from(["none", "down", "ambiguous", "spent", "crash", "refused"]), min_size=0, max_size=4
    ),
    settle_fails=st.booleans(),
)
def test_every_requested_file_gets_exactly_one_fate(n, limit, already, bad, faults, settle_fails):
    w = World(limit=limit, polyv=FakePolyv(unknown={vid(i) for i in bad}))
    w.prewarm(requests_for(min(already, limit)))
    w.ledger.fail_settle = settle_fails
    errors = {
        "down": PolyvUnavailable("HTTP 503", ambiguous=False),
        "ambiguous": PolyvUnavailable("ReadTimeout", ambiguous=True),
        "spent": PolyvQuotaSpent("spent"),
        "crash": RuntimeError("a defect"),
        "refused": PolyvUnavailable("Polyv refused the call: 'new error'", ambiguous=False, refused=True),
    }
    w.polyv.fail_with = [errors[f] for f in faults if f != "none"]
    reqs = [*requests_for(n, origin=Origin("sqs", message_id="m")), FileRequest("bad", 1, Origin("direct"))]
    report = w.prewarm(reqs)
    assert len(report.results) == len(reqs)
    assert sorted(map(id, (r.request for r in report.results))) == sorted(map(id, reqs))
    submitted = [r.file for r in report.results if r.fate is Fate.SUBMITTED]
    assert len(submitted) == len(set(submitted))
    assert set(submitted) <= set(w.polyv.accepted_files())
    # never under-count: the counter covers everything Polyv accepted today, a spent day included
    # (Polyv's "spent" marks the day; it does not change the count)
    assert w.ledger.used.get(DAY, 0) >= len(w.polyv.accepted_files())


def test_a_bitrate_that_does_not_exist_yet_is_asked_again_when_named_or_after_a_while():
    w = World(polyv=FakePolyv(missing={FileRef(vid(0), 3)}))
    defaults = [FileRequest(vid(0), br, Origin("s3")) for br in (1, 2, 3)]  # no brIndex named
    first = w.prewarm(defaults)
    assert [r.fate for r in first.results if r.file == FileRef(vid(0), 3)] == [Fate.REJECTED]
    assert w.ledger.used[DAY] == 2  # the refusal burned no quota
    again = w.prewarm(defaults)  # the same defaults soon after: not yet
    refused = next(r for r in again.results if r.file == FileRef(vid(0), 3))
    assert refused.fate is Fate.DUPLICATE
    assert "asked again after" in refused.reason
    w.polyv.missing.clear()  # the 超清 transcoding finishes
    callback = w.prewarm([FileRequest(vid(0), 3, Origin("sqs", message_id="cb"), explicit=True)])
    assert callback.count(Fate.SUBMITTED) == 1  # named explicitly (a callback's df): at once
    assert FileRef(vid(0), 3) in w.polyv.accepted_files()


def test_a_refused_bitrate_is_claimable_again_once_its_retry_time_has_come():
    w = World(polyv=FakePolyv(missing={FileRef(vid(0), 3)}))
    defaults = [FileRequest(vid(0), br, Origin("s3")) for br in (1, 2, 3)]
    w.prewarm(defaults)
    w.polyv.missing.clear()
    w.clock.advance(minutes=31)
    later = w.prewarm(defaults)
    assert [r.fate for r in later.results if r.file == FileRef(vid(0), 3)] == [Fate.SUBMITTED]
    assert later.count(Fate.DUPLICATE) == 2  # 1 and 2 stay done
    illegal = World(polyv=FakePolyv(unknown={vid(1)}))
    illegal.prewarm([FileRequest(vid(1), 1, Origin("s3"), explicit=True)])
    illegal.clock.advance(hours=2)
    assert (
        illegal.prewarm([FileRequest(vid(1), 1, Origin("s3"), explicit=True)]).count(Fate.DUPLICATE) == 1
    )  # an unknown vid stays rejected for the day: only force sends it again
