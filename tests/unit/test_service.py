import math
from datetime import timedelta

import pytest

from polyv_prewarm.domain.claims import FORCE
from polyv_prewarm.domain.model import EntryState, Fate, FileRef, FileRequest, Lease, Origin
from polyv_prewarm.domain.ports import (
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvQuotaSpent,
    PolyvUnavailable,
)
from polyv_prewarm.summaries import summary
from tests.fakes import FakePolyv, claims_of, vid
from tests.helpers import DAY, FIFTEEN_SECONDS_A_CALL, NO_RESERVE, World, requests_for


@pytest.fixture
def world():
    return World()


def test_quota_day_is_in_the_configured_time_zone(world):
    report = world.prewarm(requests_for(3))
    assert world.ledger.used == {DAY: 3}
    assert report.quota.day == DAY
    assert report.quota.used == 3


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250])
def test_calls_are_the_physical_minimum(world, n):
    report = world.prewarm(requests_for(n))
    assert len(world.polyv.calls) == math.ceil(n / 100)
    assert report.count(Fate.SUBMITTED) == n
    assert {r.task_id for r in report.results} == {f"task-{i + 1}" for i in range(len(world.polyv.calls))}


def test_sends_what_fits_and_defers_the_rest_durably():
    w = World(limit=150, **NO_RESERVE)
    report = w.prewarm(requests_for(250, origin=Origin("sqs", message_id="m1")))
    assert [len(c) for c in w.polyv.accepted] == [100, 50]
    assert report.count(Fate.SUBMITTED) == 150
    assert report.count(Fate.DEFERRED) == 100
    assert report.messages_to_retry() == set()  # deferred is done: the message succeeds
    assert len(w.backlog.items) == 100
    assert {d.origin for d in w.backlog.items.values()} == {"m1"}
    assert w.ledger.used[DAY] == 150


def test_deferring_again_does_not_store_twice():
    w = World(limit=1)
    w.prewarm(requests_for(5))
    first = dict(w.backlog.items)
    w.clock.advance(minutes=5)
    w.prewarm(requests_for(5))
    assert w.backlog.items == first  # same four files, their first deferral time kept


def test_same_file_on_the_same_day_is_sent_once(world):
    world.prewarm(requests_for(3, origin=Origin("sqs", message_id="a")))
    again = world.prewarm(requests_for(3, origin=Origin("sqs", message_id="a")))  # redelivery
    assert again.count(Fate.DUPLICATE) == 3
    assert "already submitted" in again.results[0].reason
    assert len(world.polyv.accepted_files()) == 3


def test_force_submits_again(world):
    world.prewarm(requests_for(2))
    forced = world.prewarm(requests_for(2), rule=FORCE)
    assert forced.count(Fate.SUBMITTED) == 2
    assert len(world.polyv.accepted_files()) == 4
    assert world.ledger.used[DAY] == 4


def test_next_quota_day_is_a_new_day(world):
    world.prewarm(requests_for(2))
    world.clock.advance(days=1)
    assert world.prewarm(requests_for(2)).count(Fate.SUBMITTED) == 2


def test_duplicates_across_messages_are_sent_once_and_reported(world):
    reqs = requests_for(2, origin=Origin("sqs", message_id="a")) + requests_for(
        2, origin=Origin("sqs", message_id="b")
    )
    report = world.prewarm(reqs)
    assert len(world.polyv.accepted_files()) == 2
    assert report.count(Fate.DUPLICATE) == 2
    assert report.messages_to_retry() == set()


def test_one_bad_vid_among_100_is_isolated_by_bisection():
    bad = vid(37)
    w = World(polyv=FakePolyv(unknown={bad}))
    report = w.prewarm(requests_for(100))
    rejected = [r for r in report.results if r.fate is Fate.REJECTED]
    assert [(r.file.vid, r.reason) for r in rejected] == [(bad, "illeagal vid")]
    assert report.count(Fate.SUBMITTED) == 99
    assert len(w.polyv.calls) - 1 <= 2 * math.ceil(math.log2(100))
    assert w.ledger.used[DAY] == 99  # the refused file's quota went back
    # a redelivery does not send the offender again
    again = w.prewarm([FileRequest(bad, 1, Origin("direct"))])
    assert again.count(Fate.DUPLICATE) == 1
    assert "rejected by Polyv" in again.results[0].reason


def test_mixed_refusals_each_get_polyvs_reason():
    missing = FileRef(vid(5), 1)
    w = World(polyv=FakePolyv(unknown={vid(2)}, missing={missing}))
    report = w.prewarm(requests_for(8))
    reasons = {r.file.vid: r.reason for r in report.results if r.fate is Fate.REJECTED}
    assert reasons == {vid(2): "illeagal vid", vid(5): "bitrate does not exist"}
    assert report.count(Fate.SUBMITTED) == 6
    assert w.ledger.used[DAY] == 6


def test_polyv_unavailable_parks_releases_opens_the_breaker_and_the_recovery_sends(world):
    world.polyv.fail_with = [PolyvUnavailable("HTTP 503", ambiguous=False)]
    origin = Origin("sqs", message_id="m1")
    report = world.prewarm(requests_for(150, origin=origin))
    assert report.count(Fate.DEFERRED) == 150  # parked: the first call failed; the second was not tried
    assert len(world.polyv.calls) == 1
    assert world.ledger.used[DAY] == 0
    assert report.messages_to_retry() == set()  # its message succeeds: the files wait in the backlog
    assert world.ledger.files[DAY][FileRef(vid(0), 1)].state is EntryState.HANDED_BACK
    assert len(world.backlog.items) == 150
    assert all(d.waiting for d in world.backlog.items.values())
    assert world.breaker.current.open
    again = world.prewarm(requests_for(150, origin=origin))  # while the breaker is open: no call
    assert again.count(Fate.DEFERRED) == 150
    assert len(world.polyv.calls) == 1
    assert len(world.backlog.items) == 150  # each file stored once
    world.clock.advance(seconds=31)  # the breaker's first opening is over: a probe may go
    recovered = world.recover()
    assert recovered.count(Fate.SUBMITTED) == 150
    assert not world.breaker.current.open
    assert world.backlog.items == {}
    assert len(world.polyv.accepted_files()) == len(set(world.polyv.accepted_files())) == 150


def test_ambiguous_failure_keeps_its_quota_counted_and_is_claimable_again(world):
    world.polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)] * 2
    report = world.prewarm(requests_for(40))
    assert len(world.polyv.calls) == 2  # one re-send, after counting the 40 files again
    assert report.count(Fate.DEFERRED) == 40  # in doubt, parked until Polyv answers
    assert world.ledger.used[DAY] == 80  # both attempts may have been accepted: over-count
    assert world.ledger.files[DAY][FileRef(vid(0), 1)].state is EntryState.IN_DOUBT
    world.clock.advance(seconds=31)  # the breaker's first opening is over: this request probes
    assert world.prewarm(requests_for(40)).count(Fate.SUBMITTED) == 40
    assert world.ledger.used[DAY] == 120


def test_ambiguous_failure_then_success_counts_both_attempts(world):
    world.polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)]
    report = world.prewarm(requests_for(40))
    assert report.count(Fate.SUBMITTED) == 40
    assert world.ledger.used[DAY] == 80


def test_ambiguous_failure_is_not_resent_without_quota_for_it():
    w = World(limit=50)
    w.polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)]
    report = w.prewarm(requests_for(40))
    assert len(w.polyv.calls) == 1  # 40 more would not fit in 50
    assert report.count(Fate.DEFERRED) == 40  # in doubt, and parked
    assert w.ledger.used[DAY] == 40


def test_a_live_claim_of_another_invocation_is_retry_and_an_expired_one_is_in_doubt(world):
    lease = Lease.until("dead-invocation", world.clock() + timedelta(minutes=2))
    world.ledger.claim(
        DAY, claims_of([(FileRef(vid(1), 1), "m0")]), 2000, lease=lease, now=world.clock()
    )  # then died
    live = world.prewarm(requests_for(1, start=1, origin=Origin("sqs", message_id="m1")))
    assert live.count(Fate.HANDED_BACK) == 1  # never "duplicate": Polyv may not have it
    assert "another invocation" in live.results[0].reason
    assert live.messages_to_retry() == {"m1"}
    world.clock.advance(minutes=2, seconds=1)  # the lease ended with its invocation
    assert world.prewarm(requests_for(1, start=1)).count(Fate.SUBMITTED) == 1
    assert world.ledger.used[DAY] == 2  # counted again: the dead one may have sent it


def test_polyv_quota_spent_marks_the_day_exhausted_and_defers():
    w = World()
    w.polyv.fail_with = [PolyvQuotaSpent("can't submit more than 2000 files one day")]
    report = w.prewarm(requests_for(120))
    assert report.count(Fate.DEFERRED) == 120
    assert DAY in w.ledger.exhausted
    assert len(w.backlog.items) == 120
    assert len(w.polyv.calls) == 1


def test_configuration_error_stops_all_calls(world):
    world.polyv.fail_with = [PolyvConfigurationError("wrong secret")]
    report = world.prewarm(requests_for(250))
    assert len(world.polyv.calls) == 1
    assert report.count(Fate.HANDED_BACK) == 250
    assert "configuration error" in report.stopped_because
    assert world.ledger.used[DAY] == 0


def test_contract_violation_fails_loudly_after_releasing_its_quota(world):
    world.polyv.fail_with = [PolyvContractViolation("too many")]
    with pytest.raises(PolyvContractViolation):
        world.prewarm(requests_for(3))
    assert world.ledger.used[DAY] == 0


def test_ledger_down_sends_nothing(world):
    world.ledger.unavailable = True
    report = world.prewarm(requests_for(10, origin=Origin("sqs", message_id="m")))
    assert world.polyv.calls == []
    assert report.count(Fate.HANDED_BACK) == 10
    assert report.quota is None


def test_backlog_down_hands_deferred_files_back():
    w = World(limit=1)
    w.backlog.unavailable = True
    report = w.prewarm(requests_for(3, origin=Origin("sqs", message_id="m")))
    assert report.count(Fate.SUBMITTED) == 1
    assert report.count(Fate.HANDED_BACK) == 2
    assert report.messages_to_retry() == {"m"}


def test_deadline_stops_new_calls_and_parks_the_rest(world):
    world.configure(**FIFTEEN_SECONDS_A_CALL)
    time_left = world.slow_polyv(seconds_per_call=10, deadline_in=20)  # a call needs 15 s left
    report = world.prewarm(requests_for(200), deadline=time_left)
    assert len(world.polyv.calls) == 1
    assert report.count(Fate.SUBMITTED) == 100
    assert report.count(Fate.DEFERRED) == 100  # they wait for the recovery drain, due at once
    assert len(world.backlog.due(500, now=world.clock())) == 100
    assert "time" in report.stopped_because


def test_dry_run_plans_without_calls_or_quota(world):
    world.prewarm(requests_for(1))
    report = world.prewarm(requests_for(102), dry_run=True)
    assert len(world.polyv.calls) == 1
    assert world.ledger.used == {DAY: 1}
    assert report.count(Fate.PLANNED) == 101
    assert report.count(Fate.DUPLICATE) == 1
    assert sorted({r.call for r in report.results if r.call}) == [1, 2]


def test_every_request_gets_exactly_one_result():
    w = World(limit=120, polyv=FakePolyv(unknown={vid(3)}))
    reqs = requests_for(150) + requests_for(10) + [FileRequest("bad", 1, Origin("direct"))]
    report = w.prewarm(reqs)
    assert len(report.results) == len(reqs)
    assert sorted(map(id, (r.request for r in report.results))) == sorted(map(id, reqs))


# -- the drain ---------------------------------------------------------------------------------


def test_drain_next_day_submits_oldest_first_as_many_as_fit():
    w = World(limit=50, DRAIN_ORDER="oldest", **NO_RESERVE)
    w.prewarm(requests_for(80))  # 50 today, 30 deferred
    w.clock.advance(minutes=1)
    w.prewarm(requests_for(40, start=1000))  # 40 more deferred, later
    assert len(w.backlog.items) == 70
    w.clock.advance(days=1)
    report = w.drain()
    assert report.count(Fate.SUBMITTED) == 50
    sent = w.polyv.accepted_files()[50:]
    assert sent[:30] == [FileRef(vid(i), 1) for i in range(50, 80)]  # the older ones first
    assert len(w.backlog.items) == 20
    assert report.count(Fate.DEFERRED) > 0
    w.clock.advance(days=1)
    assert w.drain().count(Fate.SUBMITTED) == 20
    assert w.backlog.items == {}
    everything = w.polyv.accepted_files()
    assert len(everything) == len(set(everything)) == 120


def test_drain_removes_files_already_submitted_today_without_sending():
    w = World(limit=2)
    w.prewarm(requests_for(4))  # 2 deferred
    w.clock.advance(days=1)
    w.prewarm(requests_for(4)[2:])  # they arrive again on the new day first
    calls = len(w.polyv.calls)
    report = w.drain()
    assert len(w.polyv.calls) == calls
    assert report.count(Fate.DUPLICATE) == 2
    assert w.backlog.items == {}


def test_interrupted_drain_loses_nothing_and_sends_nothing_twice():
    w = World(limit=2000, **NO_RESERVE, **FIFTEEN_SECONDS_A_CALL)
    w.prewarm(requests_for(2500))
    w.clock.advance(days=1)
    first = w.drain(deadline=w.slow_polyv(seconds_per_call=10, deadline_in=44))
    assert first.count(Fate.SUBMITTED) == 300  # calls at 44, 34 and 24 s left; not at 14
    assert first.stopped_because
    w.polyv.on_push = None
    second = w.drain()
    assert second.count(Fate.SUBMITTED) == 200
    assert w.backlog.items == {}
    everything = w.polyv.accepted_files()
    assert len(everything) == len(set(everything)) == 2500


def test_drain_during_an_outage_keeps_the_backlog(world):
    w = World(limit=1)
    w.prewarm(requests_for(3))
    w.clock.advance(days=1)
    w.polyv.fail_with = [PolyvUnavailable("HTTP 502", ambiguous=False)]
    report = w.drain()
    assert report.count(Fate.DEFERRED) == 2  # the one it claimed waits out the outage, one stays
    assert len(w.backlog.items) == 2
    assert sum(d.waiting for d in w.backlog.items.values()) == 1


def test_status_and_quota_answer_from_the_ledger():
    w = World(limit=2)
    w.prewarm([FileRequest(vid(1), br, Origin("sqs", message_id="m9")) for br in (1, 2, 3)])
    status = summary(w.queries.status(vid(1)))
    assert status["days"][DAY]["1"]["state"] == "submitted"
    assert status["days"][DAY]["1"]["taskId"] == "task-1"
    assert set(status["deferred"]) == {"3"}
    quota = summary(w.queries.quota())
    assert quota["used"] == 2
    assert quota["remaining"] == 0
    assert quota["backlog"]["files"] == 1
