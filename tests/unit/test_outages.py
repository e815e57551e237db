"""Outages against in-memory fakes: Polyv's breaker (its rules and the probe), what parked files
keep, and how the handler moves the messages it cannot finish (tests/integration/test_outages.py
runs the same over hours on the local stack)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polyv_prewarm import handler
from polyv_prewarm.domain.breaker import (
    OPEN_AT_MOST,
    OPEN_FIRST,
    PROBE_LEASE,
    BreakerState,
    epoch_ms,
    opening,
)
from polyv_prewarm.domain.claims import FORCE
from polyv_prewarm.domain.model import Fate, FileRef, FileRequest, Origin, Tier
from polyv_prewarm.domain.ports import PolyvUnavailable, QueueUnavailable
from polyv_prewarm.lambda_context import LocalLambdaContext
from polyv_prewarm.summaries import summary
from tests.helpers import DAY, START, World, requests_for, sqs_event, vid

DOWN = PolyvUnavailable("HTTP 503", ambiguous=False)


@pytest.mark.parametrize(
    ("failures", "open_for"),
    [
        (1, OPEN_FIRST),
        (2, 2 * OPEN_FIRST),
        (3, 4 * OPEN_FIRST),
        (4, 8 * OPEN_FIRST),
        (5, OPEN_AT_MOST),
        (60, OPEN_AT_MOST),
    ],
)
def test_the_breaker_opens_longer_after_each_failure_up_to_five_minutes(failures, open_for):
    assert opening(failures) == min(open_for, OPEN_AT_MOST)


def test_an_open_breaker_waits_until_its_time_then_lets_a_probe_go():
    now = START
    state = BreakerState(now.isoformat(), epoch_ms(now + OPEN_FIRST), 1)
    assert (state.open, state.waiting(now)) == (True, True)
    assert state.retry_at(now) == now + OPEN_FIRST
    later = now + OPEN_FIRST + timedelta(seconds=1)
    assert not state.waiting(later)
    assert state.retry_at(later) == later
    assert state.down_for(later) == OPEN_FIRST + timedelta(seconds=1)
    assert summary(BreakerState()) == {"available": True}
    # a run killed between failed()'s two writes leaves no "down until": not waiting, a probe may go
    assert not BreakerState(now.isoformat(), None, 1).waiting(now)


def test_one_probe_at_a_time_and_a_dead_probe_frees_the_right_after_its_lease():
    w = World()
    w.breaker.failed(now=w.clock())
    w.clock.advance(seconds=31)
    assert w.breaker.try_probe("a", now=w.clock())
    assert not w.breaker.try_probe("b", now=w.clock())  # a holds it
    w.clock.advance(seconds=PROBE_LEASE.total_seconds() + 1)  # a died without an answer
    assert w.breaker.try_probe("b", now=w.clock())


def test_runs_while_the_breaker_is_open_call_nothing_and_the_probe_that_fails_opens_it_longer():
    w = World()
    w.polyv.fail_with = [DOWN]
    w.prewarm(requests_for(3))
    assert w.breaker.current.failures == 1
    w.prewarm(requests_for(3, start=10))  # open: parked at once, without a call
    assert len(w.polyv.calls) == 1
    w.clock.advance(seconds=31)
    w.polyv.fail_with = [DOWN]
    probed = w.recover()  # the probe: one call, refused again
    assert len(w.polyv.calls) == 2
    assert probed.count(Fate.DEFERRED) == 6
    assert w.breaker.current.failures == 2
    assert w.breaker.current.waiting(w.clock() + timedelta(seconds=59))  # open for 60 s now
    assert len(w.backlog.items) == 6


def test_parked_files_keep_their_origin_force_and_priority_and_are_sent_with_them():
    w = World(limit=10, MANUAL_RESERVE="5")
    origin = Origin("sqs", message_id="m-1")
    w.prewarm([FileRequest(vid(1), 1, origin)])  # sent today: only a forced request sends it again
    w.prewarm(requests_for(4, start=20))  # the automatic share of the day (10 - 5 reserved) spent
    w.polyv.fail_with = [DOWN]
    w.prewarm([FileRequest(vid(1), 1, origin)], rule=FORCE, priority_high=True)
    (parked,) = w.backlog.items.values()
    assert (parked.origin, parked.force, parked.priority_high, parked.waiting) == ("m-1", True, True, True)
    assert "Polyv unavailable" in (parked.wait_reason or "")
    w.clock.advance(seconds=31)
    report = w.recover()
    assert report.count(Fate.SUBMITTED) == 1  # forced past "submitted today", within the reserve
    assert w.polyv.accepted_files().count(FileRef(vid(1), 1)) == 2
    assert w.backlog.items == {}


def test_a_file_parked_and_also_redelivered_is_sent_once():
    w = World()
    w.polyv.fail_with = [DOWN]
    w.prewarm(requests_for(4, origin=Origin("sqs", message_id="m-1")))
    w.clock.advance(seconds=31)
    redelivered = w.prewarm(requests_for(4, origin=Origin("sqs", message_id="m-1")))  # it probes: sent
    assert redelivered.count(Fate.SUBMITTED) == 4
    recovered = w.recover()
    assert recovered.count(Fate.SUBMITTED) == 0  # the waiting copies are done already
    assert sorted(w.polyv.accepted_files()) == sorted(FileRef(vid(i), 1) for i in range(4))
    assert w.backlog.items == {}
    assert w.ledger.used[DAY] == 4


def test_a_parked_file_counts_on_the_day_it_is_finally_sent():
    w = World()
    w.clock.advance(hours=22, minutes=59)  # 23:59 in Shanghai
    w.polyv.fail_with = [DOWN]
    w.prewarm(requests_for(2))
    assert w.ledger.used.get(DAY, 0) == 0
    w.clock.advance(minutes=2)  # the next quota day
    w.recover()
    assert w.ledger.used.get(DAY, 0) == 0
    assert w.ledger.used["2026-11-29"] == 2


def test_a_parked_file_that_finds_no_quota_moves_to_the_next_days_drain():
    w = World(limit=2, MANUAL_RESERVE="0")
    w.polyv.fail_with = [DOWN]
    w.prewarm(requests_for(3))
    w.clock.advance(seconds=31)
    report = w.recover()
    assert report.count(Fate.SUBMITTED) == 2
    (left,) = w.backlog.items.values()
    assert not left.waiting  # the daily drain's now, not the recovery drain's


def test_an_open_breaker_no_file_waits_on_is_closed_by_the_recovery_drain():
    w = World()
    w.polyv.fail_with = [DOWN]
    w.prewarm(requests_for(1))
    w.backlog.items.clear()  # sent another way, or removed by an operator
    w.clock.advance(seconds=31)
    w.recover()
    assert not w.breaker.current.open
    assert len(w.polyv.calls) == 1  # no call was needed to find that out


def test_the_recovery_drain_leaves_a_breaker_that_failed_again_since_it_was_read():
    w = World()
    seen = w.breaker.failed(now=w.clock())
    w.breaker.failed(now=w.clock())
    w.breaker.recovered(unless_failed_since=seen)
    assert w.breaker.current.failures == 2


# -- the handler: what it does to the messages it cannot finish ---------------------------------
class FakeMessages:
    queue_name = "polyv-prewarm-PrewarmQueue"

    def __init__(self) -> None:
        self.dead: list[tuple[str, str]] = []
        self.delays: list[tuple[str, int]] = []
        self.unavailable = False

    def dead_letter(self, body, *, reason, message_id, receive_count):
        if self.unavailable:
            raise QueueUnavailable("dead-letter queue: InternalError")
        self.dead.append((message_id, reason))

    def delay(self, receipt_handle, seconds):
        self.delays.append((receipt_handle, seconds))


@pytest.fixture
def lambda_world(monkeypatch: pytest.MonkeyPatch):
    w = World(limit=20, MANUAL_RESERVE="0")
    messages = FakeMessages()
    w.serve_the_handler(monkeypatch, messages)
    return w, messages


def invoke(event):
    return handler.lambda_handler(event, LocalLambdaContext())


def with_receives(event, *counts):
    for record, count in zip(event["Records"], counts, strict=True):
        record["attributes"]["ApproximateReceiveCount"] = str(count)
    return event


def test_a_poison_message_goes_to_the_dead_letter_queue_at_once_and_its_batch_succeeds(lambda_world):
    w, messages = lambda_world
    answer = invoke(sqs_event({"vid": vid(1), "brIndex": 1}, "not json at all", ids=["a", "b"]))
    assert answer == {"batchItemFailures": []}
    assert [m for m, _ in messages.dead] == ["b"]
    assert "neither JSON" in messages.dead[0][1]
    assert w.polyv.accepted_files() == [FileRef(vid(1), 1)]


def test_a_poison_message_the_dead_letter_queue_refuses_fails_alone_as_before(lambda_world):
    _, messages = lambda_world
    messages.unavailable = True
    answer = invoke(sqs_event({"vid": vid(1), "brIndex": 1}, "not json at all", ids=["a", "b"]))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "b"}]}


@pytest.mark.parametrize(
    ("receives", "seconds"), [(1, 60), (2, 120), (3, 240), (4, 480), (5, 900), (99, 900)]
)
def test_handed_back_messages_come_again_later_and_later(lambda_world, receives, seconds):
    w, messages = lambda_world
    w.ledger.unavailable = True  # nowhere to wait: the message itself is handed back
    answer = invoke(with_receives(sqs_event({"vid": vid(1), "brIndex": 1}, ids=["a"]), receives))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert messages.delays == [("rh-0", seconds)]


def test_a_day_of_handed_back_receives_fits_in_the_templates_max_receive_count():
    from cfnlint.decode import cfn_yaml

    from tests.test_template import TEMPLATE

    queue = cfn_yaml.load(str(TEMPLATE))["Resources"]["PrewarmQueue"]["Properties"]
    receives = queue["RedrivePolicy"]["maxReceiveCount"]
    assert sum(handler.visibility_after(n) for n in range(1, receives)) >= 24 * 3600


def test_while_polyv_is_down_messages_succeed_and_their_files_wait(lambda_world):
    w, messages = lambda_world
    w.polyv.fail_with = [DOWN]
    answer = invoke(sqs_event({"vids": [vid(1), vid(2)], "brIndexes": [1]}, ids=["a"]))
    assert answer == {"batchItemFailures": []}
    assert messages.delays == []
    assert {d.file for d in w.backlog.items.values()} == {FileRef(vid(1), 1), FileRef(vid(2), 1)}
    w.clock.advance(seconds=31)
    assert invoke({"action": "recover", "source": "schedule"})["counts"] == {"submitted": 2}


def test_a_hand_written_sqs_record_without_attributes_is_read_with_sqs_defaults(lambda_world):
    """Real SQS always sends ``attributes``; a person's test event often does not: receive count 1,
    and a record without a receipt handle or source is not delayed (nothing to delay)."""
    w, messages = lambda_world
    event = sqs_event({"vid": vid(1), "brIndex": 1}, "not json at all", ids=["a", "b"])
    for record in event["Records"]:
        del record["attributes"]
    w.ledger.unavailable = True  # "a" is handed back (its back-off reads the receive count)
    assert invoke(event) == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert messages.delays == [("rh-0", handler.visibility_after(1))]
    assert [m for m, _ in messages.dead] == ["b"]  # dead-lettered with receive count 1
    bare = sqs_event({"vid": vid(2), "brIndex": 1}, ids=["c"])
    for key in ("attributes", "receiptHandle", "eventSourceARN"):
        del bare["Records"][0][key]
    assert invoke(bare) == {"batchItemFailures": [{"itemIdentifier": "c"}]}
    assert len(messages.delays) == 1  # no receipt handle: nothing to delay, and no KeyError


def test_an_answer_of_unknown_meaning_is_in_doubt_and_neither_opens_the_breaker_nor_parks_the_rest():
    """A 200 without a taskId: Polyv answered, so it is up. That chunk's files are in doubt and
    wait as resends (no re-send now: fresh traffic's day has no surplus for it); the invocation's
    next chunk is sent."""
    w = World(limit=1000, MANUAL_RESERVE="0")
    odd = PolyvUnavailable("Polyv answered success without a taskId", ambiguous=True, answered=True)
    w.polyv.fail_with = [odd]
    report = w.prewarm(requests_for(150))  # two chunks: 100, then 50
    assert not w.breaker.current.open
    assert report.counts() == {"submitted": 50, "deferred": 100}
    waiting = list(w.backlog.items.values())
    assert len(waiting) == 100
    assert {d.tier for d in waiting} == {Tier.RESEND}
    assert not any(d.waiting for d in waiting)  # not parked for the recovery drain
    assert w.ledger.used[DAY] == 150  # in doubt stays counted
    assert len(w.polyv.calls) == 2


def test_a_poison_message_never_delays_its_batchs_good_files_and_is_dead_lettered_once(monkeypatch):
    """5 good files, a message of 1,000 vids Polyv does not know, 5 more good files, one batch:
    every good file is accepted in that invocation (the bad message's files are kept apart once a
    call is refused), the bad ones wait as suspects or are rejected, and the bad message has a
    copy on the DLQ with why; the recovery drains then spend a bounded budget on the suspects."""
    from polyv_prewarm.logic.drain import SUSPECT_BISECTION_CALLS, SUSPECT_MAX_REFUSALS

    w, messages = World(MANUAL_RESERVE="0"), FakeMessages()  # the default limit: 2000
    w.serve_the_handler(monkeypatch, messages)
    bad = [f"e6b23c6f51{0xBAD000 + i:022x}_e" for i in range(1000)]
    w.polyv.unknown = set(bad)
    good = [vid(i) for i in range(10)]
    event = sqs_event(
        {"vids": good[:5], "brIndexes": [1]},
        {"vids": bad, "brIndexes": [1]},
        {"vids": good[5:], "brIndexes": [1]},
        ids=["good-1", "poison", "good-2"],
    )
    assert invoke(event) == {"batchItemFailures": []}
    assert sorted(f.vid for f in w.polyv.accepted_files()) == sorted(good)
    assert [m for m, _ in messages.dead] == ["poison"]
    assert messages.dead[0][1].startswith("every file refused: illeagal vid")
    suspects = list(w.backlog.items.values())
    assert suspects
    assert {d.tier for d in suspects} == {Tier.SUSPECT}
    assert {d.file.vid for d in suspects} <= set(bad)
    calls = []
    for _ in range(12):  # an hour of recovery drains
        w.clock.advance(minutes=5)
        before = len(w.polyv.calls)
        invoke({"action": "recover", "source": "schedule"})
        calls.append(len(w.polyv.calls) - before)
    assert max(calls) <= 1 + SUSPECT_BISECTION_CALLS
    # the oldest slice is given up after SUSPECT_MAX_REFUSALS drains, the next one after it
    assert len(w.backlog.items) <= len(suspects) - 100 * (12 // SUSPECT_MAX_REFUSALS - 1)
    assert [m for m, _ in messages.dead] == ["poison"]  # once
