"""The use case "expire the backlog": files deferred too long ago are dropped, never sent.

A prewarm is worth most before viewers arrive, and little a week later: deferred files older
than BACKLOG_MAX_AGE_DAYS (backfilled ones: older than BACKFILL_MAX_AGE_DAYS) leave the backlog,
oldest first, each with the fate ``expired``. The morning drain expires before it drains.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.model import Fate, Report, Tier
from ..domain.policy import Policy
from ..domain.ports import Backlog, StoreUnavailable
from .run import result
from .slices import claim_of

logger = Logger(service=SERVICE, child=True)


class ExpireBacklog:
    def __init__(self, *, backlog: Backlog, policy: Policy, clock: Callable[[], datetime]) -> None:
        self._backlog = backlog
        self._policy = policy
        self._clock = clock

    def expire(self, report: Report) -> None:
        for tier in Tier:
            max_age = self._policy.backfill_max_age if tier is Tier.BACKFILL else self._policy.backlog_max_age
            self._expire_tier(tier, max_age, report)

    def _expire_tier(self, tier: Tier, max_age: timedelta, report: Report) -> None:
        cutoff = (self._clock() - max_age).isoformat()
        while True:
            try:
                batch = [d for d in self._backlog.oldest(100, tier=tier) if d.deferred_at < cutoff]
                if not batch:
                    return
                self._backlog.remove([d.file for d in batch])
            except StoreUnavailable as exc:
                logger.error("could not expire old backlog files", extra={"error": str(exc)})
                return
            reason = f"more than {max_age.days} days ago"
            report.results += [
                result(claim_of(d), Fate.EXPIRED, f"deferred at {d.deferred_at}, {reason}") for d in batch
            ]
            logger.warning(
                "expired backlog files",
                extra={
                    "files": [d.file.key for d in batch[:20]],
                    "count": len(batch),
                    "cutoff": cutoff,
                    "tier": tier.value,
                },
            )
