"""Bisection within budgets (docs/security.md): what one producer's unknown vids can cost in
Polyv calls, and where the files the budget leaves unsplit go (the backlog, never lost)."""

from __future__ import annotations

from polyv_prewarm.config import DEFAULTS
from polyv_prewarm.domain.model import EntryState, Fate, FileRef, FileRequest, Origin
from polyv_prewarm.logic.drain import PARK_AFTER_FAILURES
from polyv_prewarm.logic.sender import parts_of
from tests.fakes import FakePolyv, vid
from tests.helpers import DAY, World, requests_for

BISECTION_CALLS_PER_CHUNK = int(DEFAULTS["BISECTION_CALLS_PER_CHUNK"])  # what production runs
BISECTION_CALLS_PER_RUN = int(DEFAULTS["BISECTION_CALLS_PER_INVOCATION"])  # what production runs


def unknown_world(unknown: set[str]) -> World:
    return World(polyv=FakePolyv(unknown=unknown))


def test_a_chunk_of_unknown_vids_costs_one_call_and_the_chunk_budget():
    bad = {vid(i) for i in range(100)}
    w = unknown_world(bad)
    report = w.prewarm(requests_for(100))
    assert len(w.polyv.calls) <= 1 + BISECTION_CALLS_PER_CHUNK
    rejected, deferred = report.count(Fate.REJECTED), report.count(Fate.DEFERRED)
    assert rejected + deferred == 100
    assert deferred > 50  # what it could not isolate waits in the backlog, not counted
    assert len(w.backlog.items) == deferred
    assert w.ledger.used == {DAY: 0}
    reasons = {r.reason for r in report.results if r.fate is Fate.DEFERRED}
    assert reasons == {
        "in a call Polyv refused (illeagal vid), not isolated within the bisection budget: "
        "deferred to the backlog's drain"
    }


def test_an_invocation_of_a_thousand_unknown_vids_costs_its_run_budget_at_most():
    bad = {vid(i) for i in range(1000)}
    w = unknown_world(bad)
    report = w.prewarm(requests_for(1000))
    assert len(w.polyv.calls) <= 10 + BISECTION_CALLS_PER_RUN
    assert report.count(Fate.REJECTED) + report.count(Fate.DEFERRED) == 1000
    assert report.count(Fate.HANDED_BACK) == 0  # nothing makes its message come back


def test_a_good_message_sharing_a_chunk_with_a_bad_one_is_told_apart_first():
    bad = {vid(100 + i) for i in range(99)}
    w = unknown_world(bad)
    good = [FileRequest(vid(1), 1, Origin("sqs", message_id="good"))]
    hostile = requests_for(99, origin=Origin("sqs", message_id="hostile"), start=100)
    report = w.prewarm(hostile[:50] + good + hostile[50:])  # the good file mid-chunk
    (sent,) = [r for r in report.results if r.fate is Fate.SUBMITTED]
    assert sent.file == FileRef(vid(1), 1)
    assert len(w.polyv.calls) <= 1 + BISECTION_CALLS_PER_CHUNK


def test_parts_of_cut_at_the_message_boundary_nearest_the_middle():
    from polyv_prewarm.domain.plan import RequestedFile

    def group(*sizes: int) -> list[RequestedFile]:
        out = []
        for m, size in enumerate(sizes):
            for i in range(size):
                request = FileRequest(vid(m * 1000 + i), 1, Origin("sqs", message_id=f"m{m}"))
                out.append(RequestedFile(FileRef(vid(m * 1000 + i), 1), request))
        return out

    assert [len(p) for p in parts_of(group(10, 80, 10))] == [10, 80, 10]
    assert [len(p) for p in parts_of(group(100))] == [50, 50]
    assert [len(p) for p in parts_of(group(1, 99))] == [1, 99]
    assert [len(p) for p in parts_of(group(*[5] * 20))] == [50, 50]  # many messages: halves
    assert [len(p) for p in parts_of(group(*[5] * 9, 55))] == [45, 55]


def test_unisolated_files_in_a_drain_stay_and_are_parked_after_a_few_drains():
    bad = {vid(1 + i) for i in range(100)}
    w = World(limit=1, polyv=FakePolyv(unknown=bad))
    w.prewarm(requests_for(101))  # vid(0) sent today; 100 unknown wait in the backlog
    assert len(w.backlog.items) == 100
    w.configure(DAILY_FILE_LIMIT="2000")
    for _ in range(PARK_AFTER_FAILURES):
        w.clock.advance(days=1)
        before = len(w.polyv.calls)
        w.drain()
        assert len(w.polyv.calls) - before <= 1 + BISECTION_CALLS_PER_CHUNK
    waiting = list(w.backlog.items.values())
    assert waiting  # never dropped unsent...
    assert all(d.parked for d in waiting)  # ...but no longer drained
    assert all(d.failures == PARK_AFTER_FAILURES for d in waiting)
    entries = w.ledger.files[max(w.ledger.files)]
    assert {e.state for f, e in entries.items() if f in {d.file for d in waiting}} == {EntryState.HANDED_BACK}
