"""Bisection within budgets (docs/security.md): what one producer's unknown vids can cost in
Polyv calls, and where the files the budget leaves unsplit go (the backlog, never lost)."""

from __future__ import annotations

from polyv_prewarm.config import DEFAULTS
from polyv_prewarm.domain.model import Fate, FileRef, FileRequest, Origin, Tier
from polyv_prewarm.logic.drain import SUSPECT_BISECTION_CALLS, SUSPECT_MAX_REFUSALS
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
    assert {d.tier for d in w.backlog.items.values()} == {Tier.SUSPECT}  # kept apart from clean files
    assert w.ledger.used == {DAY: 0}
    reasons = {r.reason for r in report.results if r.fate is Fate.DEFERRED}
    assert reasons == {
        "in a call Polyv refused (illeagal vid), not isolated within the bisection budget: "
        "a suspect, for the drains"
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


def test_suspects_in_drains_cost_a_bounded_budget_and_are_rejected_after_a_few_refusals():
    bad = {vid(1 + i) for i in range(100)}
    w = World(limit=1, polyv=FakePolyv(unknown=bad))
    w.prewarm(requests_for(101))  # vid(0) sent today; 100 unknown wait in the backlog
    assert len(w.backlog.items) == 100
    w.configure(DAILY_FILE_LIMIT="2000")
    w.clock.advance(days=1)
    w.drain()  # sent as never-sent files: refused, the bisection budget spent, the rest suspects
    assert w.backlog.items
    assert {d.tier for d in w.backlog.items.values()} == {Tier.SUSPECT}
    for _ in range(SUSPECT_MAX_REFUSALS - 1):
        w.clock.advance(days=1)
        before = len(w.polyv.calls)
        w.drain()
        assert len(w.polyv.calls) - before <= 1 + SUSPECT_BISECTION_CALLS  # the suspects' budget
    assert w.backlog.items == {}  # isolated and rejected, or given up after the bound: none forever
    w.clock.advance(days=1)
    assert w.drain().results == []


def test_a_suspect_given_up_says_why():
    bad = {vid(1 + i) for i in range(100)}
    w = World(polyv=FakePolyv(unknown=bad))
    isolated = w.prewarm(requests_for(100, start=1)).count(Fate.REJECTED)  # by the prewarm's bisection
    reasons = []
    for _ in range(SUSPECT_MAX_REFUSALS):
        w.clock.advance(minutes=5)
        reasons += [r.reason for r in w.recover().results if r.fate is Fate.REJECTED]
    assert len(reasons) == 100 - isolated
    assert all(r.endswith("refused in 3 calls with other suspects, never isolated") for r in reasons)
    assert w.backlog.items == {}
