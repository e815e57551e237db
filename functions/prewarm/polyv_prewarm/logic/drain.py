"""The use case "drain the backlog": deferred files are submitted as the new day's quota allows.

The morning drain first expires what waited too long (:mod:`.expiry`), then reads the backlog
tier by tier, slice by slice in the drain order (newest or oldest first), each slice submitted
and placed by :mod:`.slices`, within the tier's limit (``domain/quota.drain_limits``). A late
sweep (from RESERVE_RELEASE_AT on) spends every tier, the reserve included, backfill and resends
only beyond what fresh traffic is expected to need until midnight (``domain/quota.sweep_limits``),
then asks Polyv itself beyond the day's count when only calls in doubt hold it at the limit. A
file leaves the backlog once it was submitted or rejected (now, or by any path since it was
deferred). Files that cannot move now (held by another invocation, refused with an unknown error
or left unisolated by the bisection budget) are passed by (the cursor moves on), so they never
block the rest; a file refused in ``PARK_AFTER_FAILURES`` drains is parked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.model import DeferredFile, QuotaView, Report, Stopped, Tier
from ..domain.placement import Caller
from ..domain.plan import MAX_FILES_PER_CALL
from ..domain.policy import Deadline, Policy
from ..domain.ports import Backlog, DayLedger, StoreUnavailable
from ..domain.quota import NEVER_SENT_FIRST, DayOutlook, Resends, beyond_the_count, drain_limits, sweep_limits
from ..domain.quotaday import quota_day
from .placement import DONE, PARK_AFTER_FAILURES, SUSPECT_MAX_REFUSALS
from .run import Expires, Run, figures, finish, mark_exhausted, new_run, usage
from .sender import OUT_OF_TIME
from .slices import SUSPECT_BISECTION_CALLS, SUSPECT_SLICE, DrainSlices

logger = Logger(service=SERVICE, child=True)

__all__ = [
    "PARK_AFTER_FAILURES",
    "SUSPECT_BISECTION_CALLS",
    "SUSPECT_MAX_REFUSALS",
    "SUSPECT_SLICE",
    "DrainBacklog",
]


class DrainBacklog:
    def __init__(
        self,
        *,
        slices: DrainSlices,
        expiry: Expires,
        ledger: DayLedger,
        backlog: Backlog,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self._slices = slices
        self._expiry = expiry
        self._ledger = ledger
        self._backlog = backlog
        self._policy = policy
        self._clock = clock

    def run(
        self,
        *,
        sweep: bool = False,
        deadline: Deadline | None = None,
        slice_size: int = 100,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """The morning drain: expire, then the never-sent files, then the held-back definitions
        from what yesterday's main definitions say today will not need. A late sweep
        (``sweep``, from RESERVE_RELEASE_AT on): every tier, the reserve included, backfill and
        resends only beyond what fresh traffic is expected to need until midnight. Slice by slice,
        until the quota, the backlog or the time runs out; ``on_slice`` after every slice."""
        policy = self._policy
        now = self._clock()
        limit = policy.limit(priority_high=False, now=now)
        run = new_run(policy, deadline or Deadline.default(now), limit=limit, resends=Resends.NEVER)
        if not sweep:
            self._expiry.expire(run.report)
            run.report.day_closed = self._day_closed(now)
        for tier, tier_limit in self._tier_limits(run, now, sweep=sweep):
            run.resends = Resends.ALWAYS if tier is Tier.RESEND else Resends.NEVER
            if not self._drain_tier(tier, tier_limit, run, slice_size, on_slice):
                break
        if sweep and run.stopped is None:
            self._ask_beyond_the_count(run, on_slice)
        message = "late sweep finished" if sweep else "drain finished"
        finish(run.report, message, ledger=self._ledger, policy=policy, now=self._clock())
        run.report.backlog = figures(self._backlog)
        return run.report

    def _tier_limits(self, run: Run, now: datetime, *, sweep: bool) -> list[tuple[Tier, int]]:
        """Each tier this drain spends, with the count of the day's counter it may claim up to."""
        timezone = self._policy.timezone
        if not sweep:
            yesterday = self._outlook(quota_day(now - timedelta(days=1), timezone))
            return drain_limits(run.limit, yesterday_first_rank=yesterday.first_rank)
        today = self._outlook(quota_day(now, timezone))
        return sweep_limits(run.limit, today, now, self._policy.day_ends(now))

    def _drain_tier(
        self, tier: Tier, limit: int, run: Run, slice_size: int, on_slice: Callable[[Report], None] | None
    ) -> bool:
        """Drain one tier up to ``limit``; False when the quota (or the run) is done."""
        if tier is Tier.SUSPECT:
            quota_left = self._slices.drain_suspects(run, Caller.DRAIN, limit)
            if on_slice is not None:
                on_slice(run.report)
            return quota_left
        cursor: DeferredFile | None = None
        while run.stopped is None:
            batch = self._next_slice(run, slice_size, cursor, tier)
            if not batch:
                return run.stopped is None
            cursor = batch[-1]
            quota_left = self._slices.drain(batch, run, Caller.DRAIN, limit=limit)
            if on_slice is not None:
                on_slice(run.report)
            if not quota_left:
                return False
        return False

    def _next_slice(self, run: Run, size: int, cursor: DeferredFile | None, tier: Tier) -> list[DeferredFile]:
        """The next files of ``tier`` in the drain order after ``cursor``; none when the run must stop."""
        if not run.time_for_a_call(self._clock()):
            run.stop(OUT_OF_TIME, Stopped.DEADLINE)
            return []
        try:
            return self._slice_of(tier, size, cursor)
        except StoreUnavailable as exc:
            run.stop(f"backlog unavailable: {exc}", Stopped.STORE)
            return []

    def _slice_of(self, tier: Tier, size: int, cursor: DeferredFile | None = None) -> list[DeferredFile]:
        if self._policy.drain_newest_first:
            return self._backlog.newest(size, after=cursor, tier=tier)
        return self._backlog.oldest(size, after=cursor, tier=tier)

    def _ask_beyond_the_count(self, run: Run, on_slice: Callable[[Report], None] | None) -> None:
        """The day's count is at the limit but Polyv has confirmed fewer files (the rest are
        calls in doubt, which Polyv may never have taken): ask Polyv itself for what the count
        holds back, at no risk, since Polyv refuses a call over its daily limit whole and charges
        nothing. Backlog files in its order (never-sent first, in doubt last), calls of at most
        ``limit - confirmed`` files, halved after each refusal for the daily limit, until a call
        of one file is refused: at most log2(100) + 1 refused calls a day, then the day is
        marked spent (docs/ledger.md, "Every spare unit spent")."""
        size = MAX_FILES_PER_CALL
        run.beyond_count = True
        try:
            while run.stopped is None and run.time_for_a_call(self._clock()):
                view = usage(self._ledger, self._policy, quota_day(self._clock(), self._policy.timezone))
                if view.exhausted or view.remaining > 0:
                    return
                room = beyond_the_count(
                    limit=view.limit, confirmed=self._ledger.confirmed(view.day), size=size
                )
                batch, tier = self._never_sent_first(room)
                if not batch:
                    return
                run.polyv_spent = False
                run.resends = Resends.ALWAYS if tier is Tier.RESEND else Resends.NEVER
                beyond, first = view.used + len(batch), len(run.report.results)
                self._slices.drain(batch, run, Caller.DRAIN, limit=beyond, urgent_limit=beyond)
                if on_slice is not None:
                    on_slice(run.report)
                moved = any(r.fate in DONE for r in run.report.results[first:])
                if not run.polyv_spent and not moved:
                    return  # held by another invocation, or in doubt: the next sweep asks again
                if run.polyv_spent:
                    if len(batch) == 1:
                        mark_exhausted(self._ledger, self._policy, view.day)
                        return
                    size = max(1, len(batch) // 2)
        except StoreUnavailable as exc:
            logger.warning("could not ask beyond the count", extra={"error": str(exc)})
        finally:
            run.beyond_count = False

    def _never_sent_first(self, size: int) -> tuple[list[DeferredFile], Tier]:
        """The first ``size`` drainable files of the backlog's tiers in their order, suspects
        aside (they have a budget of their own): never-sent files first, in doubt last."""
        if size <= 0:
            return [], Tier.RESEND
        for tier in NEVER_SENT_FIRST:
            if batch := self._slice_of(tier, size):
                return batch, tier
        return [], Tier.RESEND

    def _outlook(self, day: str) -> DayOutlook:
        try:
            return self._ledger.outlook(day)
        except StoreUnavailable as exc:
            logger.warning("day's counter unreadable: taking its rate as nil", extra={"error": str(exc)})
            return DayOutlook()

    def _day_closed(self, now: datetime) -> QuotaView | None:
        """The quota day that just ended, as it ended (for QuotaUnused)."""
        try:
            day = quota_day(now - timedelta(days=1), self._policy.timezone)
            return usage(self._ledger, self._policy, day)._replace(confirmed=self._ledger.confirmed(day))
        except StoreUnavailable:
            return None
