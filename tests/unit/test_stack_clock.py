"""The local stack's clock moves to a set hour, forward only: the demo and the integration tests
tell the same story whatever the hour they run at (one ran at 21:42 in Shanghai, and its faults,
two and a half simulated hours later, fell after midnight on a day the outlook called tight)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.stack import QUOTA_TIMEZONE, DevStack


def _stack_at(local: datetime) -> DevStack:
    stack = DevStack()
    stack.seconds_offset = (local - datetime.now(UTC)).total_seconds()
    return stack


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=QUOTA_TIMEZONE)


@pytest.mark.parametrize(
    ("starts", "next_day", "lands"),
    [
        (_local(10, 9, 59), False, _local(10, 10)),  # later the same day
        (_local(10, 21, 42), False, _local(11, 10)),  # passed today: tomorrow's
        (_local(10, 23, 59), False, _local(11, 10)),
        (_local(10, 0, 5), True, _local(11, 10)),  # a quota day of its own, asked for
        (_local(10, 10, 30), True, _local(11, 10)),
    ],
)
def test_the_clock_moves_forward_to_the_hour(starts, next_day, lands):
    stack = _stack_at(starts)
    landed = stack.move_to_hour(10, next_day=next_day)
    assert landed == lands
    assert abs(stack.now() - lands) < timedelta(seconds=1)
    assert stack.now() > starts  # never back: leases, visibility timeouts and the SQS clock hold


def test_a_day_and_an_hour_moved_by_hand_are_kept():
    stack = _stack_at(_local(10, 22, 0))
    stack.day_offset = 2  # moved by whole days as well: the hour is taken on the stack's own day
    assert stack.move_to_hour(10) == _local(13, 10)
