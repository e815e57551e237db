"""A poison message on the simulated timeline (devstack/timeline.py: the template's schedules and
the queue's settings), over moto and the Polyv simulator: a batch of good files with a message of
1,000 vids Polyv does not know. The good files are accepted at once, the bad message's files wait
as suspects, each recovery drain spends a bounded number of calls on them, and after the bound
they are rejected with their reason; the bad message is dead-lettered once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.timeline import Timeline
from polyv_prewarm.logic.drain import SUSPECT_BISECTION_CALLS, SUSPECT_MAX_REFUSALS
from tests.helpers import dead_lettered, vid

pytestmark = pytest.mark.integration


def test_a_poison_message_never_delays_a_good_file_and_costs_a_bounded_number_of_calls(stack):
    import app

    timeline = Timeline(stack, app.lambda_handler, step=timedelta(minutes=5))
    recovery = next(s for s in timeline.schedules if s.payload.get("action") == "recover")
    good = [vid(0x5000 + i) for i in range(10)]
    for v in good:
        stack.polyv.add_video(v, (1,))
    bad = [f"{stack.userid}{0xBAD000 + i:022x}_e" for i in range(1000)]  # Polyv knows none
    started = timeline.now()
    (_, poison, _) = timeline.send(
        {"vids": good[:5], "brIndexes": [1]},
        {"vids": bad, "brIndexes": [1]},
        {"vids": good[5:], "brIndexes": [1]},
    )
    timeline.run_until(started + timedelta(seconds=recovery.period))  # one recovery interval
    accepted = {v for task in stack.polyv.tasks() for v, _ in task.files}
    assert accepted == set(good)
    assert set(dead_lettered(stack)) == {poison}
    calls_at = list(stack.polyv.requests_at())
    timeline.run_until(started + timedelta(hours=1))
    later = [t for t in stack.polyv.requests_at() if t > calls_at[-1]]
    drains = 3600 // recovery.period
    assert len(later) <= drains * (1 + SUSPECT_BISECTION_CALLS)  # an hour of recovery drains, bounded
    assert {v for task in stack.polyv.tasks() for v, _ in task.files} == set(good)
    # after SUSPECT_MAX_REFUSALS drains a slice is given up: an hour gives up several slices
    remaining = stack.backlog_keys()
    assert len(remaining) <= 1000 - 100 * (drains // SUSPECT_MAX_REFUSALS - 1)
    assert all(key.rsplit("#", 1)[0] in set(bad) for key in remaining)
    assert set(dead_lettered(stack)) == {poison}  # once
