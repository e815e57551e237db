"""The quota planner: what a day's units may be spent on, and when. Every quota rule is here, as
a named pure function with a table of cases in ``tests/unit/test_quota_plan.py``; a change of
quota policy touches this module and that table.

Polyv's quota is a day's; a unit not spent by midnight is gone, and a unit spent on a file that
matters less is missing for one that matters more. Two kinds of files may wait for what is left:
a video's other definitions (those outside ``PRIORITY_BR_INDEXES``) and files in doubt (their
call may have reached Polyv). They are claimed at once only from the *surplus*: the room left
today after this request's first-rank files and after what the rest of the day's first-rank files
are expected to need. The expectation is today's own rate, from the day's first fresh first-rank
claim until now (an hour at least), carried on to midnight: a pipeline's day starts when its
uploads start, and most days taper off towards the night, so the rate so far over-states what
the evening needs. That errs on the side of the main definitions; what it holds back is spent the
same evening by the late sweeps, when the reserve is released and nothing is left to protect.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import Enum
from typing import NamedTuple

from .model import Tier

#: A rate is never read from less than this much of the day (the first request is an hour's).
RATE_WINDOW_AT_LEAST = timedelta(hours=1)
DAY = timedelta(days=1)


def at_rate(count: float, seen_over: timedelta, carried_over: timedelta) -> float:
    """The one rate formula: ``count`` files seen over ``seen_over`` (an hour at least), carried
    on over ``carried_over``."""
    window = max(RATE_WINDOW_AT_LEAST, seen_over)
    return count / window.total_seconds() * max(timedelta(0), carried_over).total_seconds()


class DayOutlook(NamedTuple):
    """A quota day's counter as the claims left it: files counted, and of them the fresh
    traffic's first-rank files (main definitions, explicit ones) since the first of them."""

    used: int = 0
    first_rank: int = 0
    first_rank_since: datetime | None = None

    def expected_rest(self, now: datetime, day_ends: datetime, *, asking: int) -> float:
        """First-rank files expected from ``now`` to ``day_ends`` at today's rate; ``asking``: this
        request's own first-rank files (the day's first request's rate, when none came before)."""
        if self.first_rank > 0 and self.first_rank_since is not None:
            return at_rate(self.first_rank, now - self.first_rank_since, day_ends - now)
        return at_rate(asking, RATE_WINDOW_AT_LEAST, day_ends - now)

    def surplus(self, limit: int, now: datetime, day_ends: datetime, *, asking: int) -> int:
        """Units no first-rank file of today is expected to need: ``limit`` less what is used,
        less ``asking``, less the rest of the day's expectation (never below zero)."""
        expected = self.expected_rest(now, day_ends, asking=asking)
        return max(0, math.floor(limit - self.used - asking - expected))


def claim_limit(daily_limit: int, reserve: int, *, priority_high: bool, reserve_released: bool) -> int:
    """What a request may claim within: the whole limit for a person's priority request, and for
    everything once the day's reserve is released; else the limit less the reserve."""
    if priority_high or reserve_released:
        return daily_limit
    return daily_limit - reserve


def covers(surplus: int | None, files: int) -> bool:
    """Whether the surplus may be spent on ``files`` more (None: the counter is unreadable, and a
    day that cannot be read is taken as tight)."""
    return surplus is not None and surplus >= files


class Resends(Enum):
    """When a run may spend quota on files in doubt (their call may have reached Polyv): never
    while never-sent files wait for it. The one switch: the claims of a run that resends
    (``ALWAYS``, or a re-send from the surplus) claim files in doubt."""

    NEVER = "a drain of never-sent files: what it finds in doubt moves to the resend tier"
    FROM_SURPLUS = "fresh traffic: from quota no first-rank file of today is expected to need"
    ALWAYS = "the resend tier's own drain, reached after every never-sent file"


def may_resend(resends: Resends, surplus: int | None, files: int) -> bool:
    """Whether ``files`` in doubt may be claimed again now (counted again)."""
    if resends is Resends.ALWAYS:
        return True
    return resends is Resends.FROM_SURPLUS and covers(surplus, files)


def holds_back(*, later: int, surplus: int | None, taken_as_asked: bool) -> bool:
    """Whether a request's ``later`` files (a video's other definitions) wait in the backlog: only
    on a tight day, when the surplus cannot take them all; a forced request or a person's priority
    request is taken as asked."""
    return later > 0 and not taken_as_asked and not covers(surplus, later)


#: The order in which the backlog's tiers are spent (and asked beyond the count), suspects aside.
NEVER_SENT_FIRST = (Tier.NORMAL, Tier.LATER, Tier.BACKFILL, Tier.RESEND)


def drain_limits(limit: int, *, yesterday_first_rank: int) -> list[tuple[Tier, int]]:
    """The morning drain's tiers, each with the count of the day's counter it may claim up to:
    never-sent files to the limit; held-back definitions and suspects only up to what yesterday's
    first-rank traffic says today will not need."""
    later = max(0, limit - yesterday_first_rank)
    return [(Tier.NORMAL, limit), (Tier.LATER, later), (Tier.SUSPECT, later)]


def sweep_limits(limit: int, today: DayOutlook, now: datetime, day_ends: datetime) -> list[tuple[Tier, int]]:
    """A late sweep's tiers: every never-sent one to the limit (suspects on their own budget: a
    refused call costs nothing), backfill and resends only beyond what fresh traffic is expected
    to need until midnight (whole files: at the last sweep, less than one expected file holds
    nothing back)."""
    margin = math.floor(today.expected_rest(now, day_ends, asking=0))
    fresh_first = max(0, limit - margin)
    return [
        (Tier.NORMAL, limit),
        (Tier.LATER, limit),
        (Tier.SUSPECT, limit),
        (Tier.BACKFILL, fresh_first),
        (Tier.RESEND, fresh_first),
    ]


def spare_per_day(
    daily_limit: int, *, today: DayOutlook, yesterday: DayOutlook, since_day_start: timedelta
) -> int:
    """The units a day leaves for a backfill: the limit less fresh traffic's day (its first-rank
    files; the counter's total would count the backfill itself), at today's rate once an hour of
    the day has passed, else yesterday's whole day."""
    if since_day_start >= RATE_WINDOW_AT_LEAST:
        fresh = at_rate(today.first_rank, since_day_start, DAY)
    else:
        fresh = yesterday.first_rank
    return max(0, daily_limit - math.ceil(fresh))


def beyond_the_count(*, limit: int, confirmed: int, size: int) -> int:
    """The size of a call asking Polyv beyond the day's count (the late sweeps, when only calls in
    doubt hold the count at the limit): at most what Polyv may have left (the limit less what it
    confirmed), and at most ``size``, which halves after each refusal for the daily limit."""
    return max(0, min(size, limit - confirmed))
