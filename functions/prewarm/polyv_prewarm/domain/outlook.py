"""Is the quota day tight? What the rest of the day's fresh traffic is expected to need.

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
from typing import NamedTuple

#: The rate is never read from less than this much of the day (the first request is an hour's).
RATE_WINDOW_AT_LEAST = timedelta(hours=1)


class DayOutlook(NamedTuple):
    """A quota day's counter as the claims left it: files counted, and of them the fresh
    traffic's first-rank files (main definitions, explicit ones) since the first of them."""

    used: int = 0
    first_rank: int = 0
    first_rank_since: datetime | None = None

    def expected_rest(self, now: datetime, day_ends: datetime, *, asking: int) -> float:
        """First-rank files expected from ``now`` to ``day_ends`` at today's rate; ``asking``: this
        request's own first-rank files (the day's first request's rate, when none came before)."""
        left = max(timedelta(0), day_ends - now)
        if self.first_rank > 0 and self.first_rank_since is not None:
            window = max(RATE_WINDOW_AT_LEAST, now - self.first_rank_since)
            rate = self.first_rank / window.total_seconds()
        else:
            rate = asking / RATE_WINDOW_AT_LEAST.total_seconds()
        return rate * left.total_seconds()

    def surplus(self, limit: int, now: datetime, day_ends: datetime, *, asking: int) -> int:
        """Units no first-rank file of today is expected to need: ``limit`` less what is used,
        less ``asking``, less the rest of the day's expectation (never below zero)."""
        expected = self.expected_rest(now, day_ends, asking=asking)
        return max(0, math.floor(limit - self.used - asking - expected))
