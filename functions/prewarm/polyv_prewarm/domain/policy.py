"""What the logic decides by, and an invocation's deadline. No defaults here: every value comes
from ``config.Settings`` (the one place defaults live), in production and in the tests alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo


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

    def limit(self, *, priority_high: bool) -> int:
        """What a request may claim within: the whole limit for a person's priority request, the
        limit less the manual reserve for everything automatic."""
        return self.daily_limit if priority_high else self.daily_limit - self.manual_reserve


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
