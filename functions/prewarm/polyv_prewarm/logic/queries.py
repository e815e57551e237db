"""The use case "what does the ledger say": a day's quota, a video's fates, the backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..domain.model import BR_INDEXES, BacklogFigures, DeferredFile, FileRef, QuotaSummary, VideoStatus
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
        """Used, the limit and the reserve of a quota day (today by default), the backlog, and
        whether Polyv is known to be down."""
        return QuotaSummary(
            usage(self._ledger, self._policy, day or self.today()),
            self.backlog_figures(),
            self._breaker.state(),
        )

    def backlog_figures(self) -> BacklogFigures:
        return BacklogFigures(*self._backlog.stats())

    def deferred(self, limit: int) -> list[DeferredFile]:
        """The oldest ``limit`` files for the daily drain, then those waiting out an outage (the
        recovery drain's, the earliest due first), then the parked ones."""
        waiting = self._backlog.due(limit, now=self._clock() + timedelta(days=3650))
        return self._backlog.oldest(limit) + waiting + self._backlog.parked(limit)

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
