"""Where a file goes (``domain/placement.py``): one table, disposition x caller, read here row by
row, and held whole: every disposition has a row for every caller that can meet it."""

from __future__ import annotations

import pytest

from polyv_prewarm.domain.model import Fate, Tier
from polyv_prewarm.domain.placement import PLACEMENTS, Action, Caller, Disposition, placement

P, D, R = Caller.PREWARM, Caller.DRAIN, Caller.RECOVERY


@pytest.mark.parametrize(
    ("disposition", "caller", "fate", "action", "tier"),
    [
        (Disposition.SUBMITTED, P, Fate.SUBMITTED, Action.NONE, None),
        (Disposition.SUBMITTED, D, Fate.SUBMITTED, Action.REMOVE, None),
        (Disposition.KNOWN, R, Fate.DUPLICATE, Action.REMOVE, None),
        (Disposition.HELD, D, Fate.HANDED_BACK, Action.KEEP, None),  # another invocation's: not done
        (Disposition.REFUSED, P, Fate.HANDED_BACK, Action.NONE, None),  # its message comes again
        (Disposition.REFUSED, D, Fate.HANDED_BACK, Action.COUNT_FAILURE, None),
        (Disposition.NO_ROOM, P, Fate.DEFERRED, Action.DEFER, Tier.NORMAL),
        (Disposition.NO_ROOM, D, Fate.DEFERRED, Action.KEEP, None),
        (Disposition.NO_ROOM, R, Fate.DEFERRED, Action.TO_DAILY, None),  # no longer waiting
        (Disposition.HELD_BACK, P, Fate.DEFERRED, Action.DEFER, Tier.LATER),
        (Disposition.FOUND_IN_DOUBT, P, Fate.DEFERRED, Action.DEFER, Tier.RESEND),
        (Disposition.ANSWERED_IN_DOUBT, R, Fate.DEFERRED, Action.MOVE, Tier.RESEND),
        (Disposition.UNISOLATED, P, Fate.DEFERRED, Action.DEFER, Tier.SUSPECT),
        (Disposition.UNISOLATED, D, Fate.DEFERRED, Action.COUNT_REFUSAL, Tier.SUSPECT),
        (Disposition.APART, R, Fate.DEFERRED, Action.MOVE, Tier.SUSPECT),
        (Disposition.PARKED, P, Fate.DEFERRED, Action.DEFER_WAITING, Tier.NORMAL),
        (Disposition.PARKED, R, Fate.DEFERRED, Action.WAIT, None),  # waits on, in its own tier
        (Disposition.PARKED_IN_DOUBT, D, Fate.DEFERRED, Action.WAIT, Tier.RESEND),
    ],
)
def test_rows(disposition, caller, fate, action, tier):
    row = placement(disposition, caller)
    assert (row.fate, row.action, row.tier) == (fate, action, tier)


def test_every_disposition_has_a_row_for_every_caller_but_a_held_back_one_for_a_drain():
    missing = {(d, c) for d in Disposition for c in Caller} - set(PLACEMENTS)
    assert missing == {
        (Disposition.HELD_BACK, D),
        (Disposition.HELD_BACK, R),
    }  # only fresh traffic holds back


def test_a_fresh_file_that_is_not_sent_is_deferred_or_its_message_comes_again():
    for disposition in Disposition:
        row = placement(disposition, P)
        assert (row.action is Action.NONE) == (row.fate is not Fate.DEFERRED), disposition
        assert row.action in (Action.NONE, Action.DEFER, Action.DEFER_WAITING)


def test_a_drained_file_leaves_the_backlog_only_when_it_is_done():
    for (disposition, caller), row in PLACEMENTS.items():
        if caller is not P:
            done = row.fate in (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE)
            assert (row.action is Action.REMOVE) == done, disposition
