"""Every spare unit spent (docs/ledger.md, "Every spare unit spent"): the day's count holds units
on calls in doubt that Polyv may never have taken; the late sweeps ask Polyv beyond the count for
them, in calls halved after each refusal for the daily limit, at no risk (Polyv refuses such a
call whole), never-sent files first, in doubt last."""

from __future__ import annotations

from datetime import timedelta

from polyv_prewarm.domain.model import FileRef, Tier
from polyv_prewarm.domain.ports import PolyvQuotaSpent, PolyvUnavailable
from tests.helpers import DAY, World, requests_for

LOST = PolyvUnavailable("no answer from Polyv after sending: ReadTimeout", ambiguous=True)


def day_of_lost_calls(polyv_left: int) -> World:
    """Limit 100: 60 files whose call is lost (in doubt, counted; Polyv took none), then 90 more:
    40 accepted, 50 deferred. Polyv has ``polyv_left`` units left of its own count then."""
    w = World(limit=100, MANUAL_RESERVE="0")
    w.polyv.fail_with = [LOST, LOST]  # the call and its re-send, if the day lets it re-send
    w.prewarm(requests_for(60))
    w.polyv.fail_with = []
    w.clock.advance(minutes=1)  # a lost answer opened Polyv's breaker for 30 s: the next call probes
    w.prewarm(requests_for(90, start=60))
    w.clock.advance(minutes=5)
    w.recover()  # the recovery drain: the lost call's files join the resends (no surplus for them)
    assert w.ledger.used[DAY] == 100
    assert w.ledger.confirmed(DAY) == 40
    w.polyv.quota_left = polyv_left
    w.clock.now = w.clock.now.replace(day=28, hour=15, minute=50)  # 23:50 in Shanghai: a late sweep
    return w


def test_a_sweep_asks_polyv_for_the_units_calls_in_doubt_hold_never_sent_files_first():
    w = day_of_lost_calls(polyv_left=60)
    w.drain(sweep=True)
    accepted = [f for call in w.polyv.accepted[1:] for f in call]  # after the day's first 40
    assert len(accepted) == 60  # every unit Polyv had left
    never_sent = {FileRef(r.vid, r.br_index) for r in requests_for(50, start=100)}
    assert never_sent <= set(accepted)  # the 50 never-sent ones first...
    assert len(set(accepted) - never_sent) == 10  # ...then 10 of those in doubt
    resends_left = [d for d in w.backlog.items.values() if d.tier is Tier.RESEND]
    assert len(resends_left) == 50
    assert w.polyv.quota_left == 0


def test_when_polyv_took_the_calls_in_doubt_the_sweep_finds_out_in_a_few_refused_calls():
    w = day_of_lost_calls(polyv_left=7)  # Polyv took most of what we thought lost
    before = len(w.polyv.calls)
    w.drain(sweep=True)
    assert w.polyv.quota_left == 0  # the 7 units found and spent
    refused = len(w.polyv.calls) - before - (len(w.polyv.accepted) - 1)
    assert refused <= 8  # 50, 25, 12, 6 refused... halved to what fits, then one of 1
    assert DAY in w.ledger.exhausted
    w.clock.advance(minutes=9)
    calls = len(w.polyv.calls)
    w.drain(sweep=True)  # the day is spent: the next sweep asks nothing
    assert len(w.polyv.calls) == calls


def test_a_refusal_for_the_daily_limit_gives_its_units_back():
    w = World(limit=10, MANUAL_RESERVE="0")
    w.polyv.fail_with = [PolyvQuotaSpent("can't submit more than 2000 files one day")]
    w.prewarm(requests_for(5))
    assert w.ledger.used[DAY] == 0  # Polyv refuses such a call whole: nothing spent
    assert DAY in w.ledger.exhausted


def test_before_the_sweeps_nothing_is_asked_beyond_the_count():
    w = day_of_lost_calls(polyv_left=60)
    w.clock.now = w.clock.now - timedelta(hours=2)  # 21:50: the morning-style drain only
    calls = len(w.polyv.calls)
    w.drain()
    assert len(w.polyv.calls) == calls
