"""What the logic decides by, and an invocation's deadline. No defaults here: every value comes
from ``config.Settings`` (the one place defaults live), in production and in the tests alike."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .plan import RequestedFile
from .quota import claim_limit
from .quotaday import day_end, quota_day


class Policy(NamedTuple):
    daily_limit: int  # files per quota day (Polyv's 2000, or the account's)
    manual_reserve: int  # of the limit, kept for "priority": "high" requests
    timezone: ZoneInfo  # where the quota day resets
    retention_days: int  # days the ledger keeps a day's fates
    backlog_max_age: timedelta  # deferred files older than this expire
    drain_newest_first: bool
    min_time_per_call: timedelta  # one more Polyv call needs this much of the deadline (its attempts)
    bisection_calls_per_chunk: int  # extra calls to isolate the files Polyv refused a call for
    bisection_calls_per_run: int
    reserve_released_at: time  # local time of the quota day from which the reserve is everyone's
    priority_br_indexes: frozenset[int]  # a video's main definitions (empty: every definition alike)
    backfill_max_age: timedelta  # backfilled files older than this expire

    def limit(self, *, priority_high: bool, now: datetime) -> int:
        """What a request may claim within now (``domain/quota.claim_limit``)."""
        released = self.reserve_released(now)
        return claim_limit(
            self.daily_limit, self.manual_reserve, priority_high=priority_high, reserve_released=released
        )

    def release_time(self, now: datetime) -> datetime:
        """When the reserve of ``now``'s quota day is released."""
        day = datetime.fromisoformat(quota_day(now, self.timezone))
        return datetime.combine(day.date(), self.reserve_released_at, tzinfo=self.timezone)

    def reserve_released(self, now: datetime) -> bool:
        return now >= self.release_time(now)

    def day_ends(self, now: datetime) -> datetime:
        return day_end(quota_day(now, self.timezone), self.timezone)

    def first_rank(self, wanted: RequestedFile) -> bool:
        """Whether a file is of a video's first rank: claimed at once however tight the day. An
        explicit bitrate is taken as asked; without priorities every definition is."""
        priorities = self.priority_br_indexes
        return wanted.request.explicit or not priorities or wanted.file.br_index in priorities


#: Without a deadline of its own (a script): Lambda's longest.
DEFAULT_RUN_TIME = timedelta(minutes=15)


class Deadline(NamedTuple):
    """When an invocation must have ended: Lambda's deadline, or the CLI's own."""

    at: datetime

    @classmethod
    def after(cls, now: datetime, milliseconds: float) -> Deadline:
        return cls(now + timedelta(milliseconds=milliseconds))

    @classmethod
    def default(cls, now: datetime) -> Deadline:
        return cls(now + DEFAULT_RUN_TIME)

    def left(self, now: datetime) -> timedelta:
        return self.at - now
