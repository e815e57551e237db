"""The use case "what does the ledger say": a day's quota, a video's fates, the backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..domain.model import (
    BR_INDEXES,
    BacklogFigures,
    DeferredFile,
    FileRef,
    QuotaSummary,
    SweepPlan,
    Tier,
    VideoStatus,
)
from ..domain.policy import Policy
from ..domain.ports import Backlog, DayLedger, PolyvBreaker
from ..domain.quotaday import quota_day
from .run import usage


class LedgerQueries:
    def __init__(
        self,
        *,
        ledger: DayLedger,
        backlog: Backlog,
        breaker: PolyvBreaker,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self._ledger = ledger
        self._backlog = backlog
        self._breaker = breaker
        self._policy = policy
        self._clock = clock

    def today(self) -> str:
        return quota_day(self._clock(), self._policy.timezone)

    def quota(self, day: str | None = None) -> QuotaSummary:
        """Used (and of it confirmed by Polyv), the limit and the reserve of a quota day (today by
        default), the backlog, whether Polyv is known to be down, and (today) when the reserve is
        released to the late sweeps."""
        today = self.today()
        view = usage(self._ledger, self._policy, day or today)
        view = view._replace(confirmed=self._ledger.confirmed(view.day))
        figures = self.backlog_figures()
        sweep = None
        if view.day == today:
            now = self._clock()
            release = self._policy.release_time(now)
            sweep = SweepPlan(
                reserve_released_at=release.isoformat(),
                released=now >= release,
                units=0 if view.exhausted else max(0, self._policy.daily_limit - view.used),
                files=sum(figures.tiers.values()),
            )
        return QuotaSummary(view, figures, self._breaker.state(), sweep)

    def backlog_figures(self) -> BacklogFigures:
        return self._backlog.stats()

    def deferred(self, limit: int) -> list[DeferredFile]:
        """Up to ``limit`` files of each tier, oldest first, in the drains' order; then those
        waiting out an outage (the recovery drain's, the earliest due first), then the parked."""
        tiers = [d for tier in Tier for d in self._backlog.oldest(limit, tier=tier)]
        waiting = self._backlog.due(limit, now=self._clock() + timedelta(days=3650))
        return tiers + waiting + self._backlog.parked(limit)

    def status(self, vid: str) -> VideoStatus:
        """What happened to each bitrate of a video, per retained day, and what of it waits."""
        today = datetime.fromisoformat(self.today()).date()
        days = [(today - timedelta(days=n)).isoformat() for n in range(self._policy.retention_days)]
        pending = self._backlog.pending([FileRef(vid, br) for br in BR_INDEXES])
        return VideoStatus(
            vid,
            days=self._ledger.history(vid, days),
            deferred={file.br_index: deferred for file, deferred in pending.items()},
        )
