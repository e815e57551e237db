"""The use case "what does the ledger say": a day's quota, a video's fates, the backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..domain.model import BR_INDEXES, BacklogFigures, DeferredFile, FileRef, QuotaSummary, VideoStatus
from ..domain.policy import Policy
from ..domain.ports import Backlog, DayLedger
from ..domain.quotaday import quota_day
from .run import usage


class LedgerQueries:
    def __init__(
        self, *, ledger: DayLedger, backlog: Backlog, policy: Policy, clock: Callable[[], datetime]
    ) -> None:
        self._ledger = ledger
        self._backlog = backlog
        self._policy = policy
        self._clock = clock

    def today(self) -> str:
        return quota_day(self._clock(), self._policy.timezone)

    def quota(self, day: str | None = None) -> QuotaSummary:
        """Used, the limit and the reserve of a quota day (today by default), and the backlog."""
        return QuotaSummary(usage(self._ledger, self._policy, day or self.today()), self.backlog_figures())

    def backlog_figures(self) -> BacklogFigures:
        files, oldest = self._backlog.stats()
        return BacklogFigures(files, oldest)

    def deferred(self, limit: int) -> list[DeferredFile]:
        """The oldest ``limit`` files waiting in the backlog, then the parked ones."""
        return self._backlog.oldest(limit) + self._backlog.parked(limit)

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
