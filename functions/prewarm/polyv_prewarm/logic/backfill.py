"""The use case "warm an existing catalogue": its files go to the backlog's lowest tier.

A backfill never takes quota from fresh traffic: its tier is spent only by the late sweeps, after
every never-sent and held-back file, and only beyond what the rest of the day's fresh traffic is
expected to need (``logic/drain.py``). It expires by BACKFILL_MAX_AGE_DAYS, not by the backlog's
week. Storing is idempotent: a file the backlog holds already (a backfill run twice, a fresh
deferral) is left as it is. How long it takes is an estimate at today's rate: the units a day
leaves once fresh traffic has taken what it takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.catalogue import Catalogue, read_catalogue
from ..domain.policy import Policy
from ..domain.ports import Backlog, DayLedger
from ..domain.quotaday import quota_day

logger = Logger(service=SERVICE, child=True)

#: Today's traffic is read as a day's once this much of the day has passed; before, yesterday's.
RATE_AFTER = timedelta(hours=1)


class BackfillReport(NamedTuple):
    catalogue: Catalogue
    stored: int  # new in the backlog (0 for a dry run)
    spare_per_day: int  # units a day leaves for the backfill, at today's rate (every account's)
    dry_run: bool
    accounts: tuple[BackfillReport, ...] = ()  # a catalogue of several accounts: each one's part

    @property
    def days(self) -> int | None:
        """Quota days the backfill takes at today's rate (None: fresh traffic takes every unit);
        of several accounts, the slowest account's (each spends its own quota)."""
        if self.accounts:
            days = [a.days for a in self.accounts]
            return None if None in days else max(d or 0 for d in days)
        if not self.catalogue.files:
            return 0
        return math.ceil(len(self.catalogue.files) / self.spare_per_day) if self.spare_per_day else None


class Backfill:
    def __init__(
        self,
        *,
        backlog: Backlog,
        ledger: DayLedger,
        policy: Policy,
        clock: Callable[[], datetime],
        userid: Callable[[], str],
        default_br_indexes: tuple[int, ...],
    ) -> None:
        self._backlog = backlog
        self._ledger = ledger
        self._policy = policy
        self._clock = clock
        self._userid = userid
        self.default_br_indexes = default_br_indexes

    def run(self, lines: Iterable[str], *, source: str, dry_run: bool = False) -> BackfillReport:
        """Read the catalogue (``source``: where it came from, kept as the files' origin), and
        unless ``dry_run`` store its files in the backfill tier."""
        return self.store(read_catalogue(lines, [self._userid()], self.default_br_indexes), source, dry_run)

    def store(self, catalogue: Catalogue, source: str, dry_run: bool) -> BackfillReport:
        """Store the catalogue's files (this account's) in the backfill tier, unless ``dry_run``."""
        stored = 0
        if not dry_run and catalogue.files:
            origin = f"backfill:{source}"[:200]
            stored = self._backlog.add_backfill([(f, origin) for f in catalogue.files], now=self._clock())
            logger.info(
                "backfill stored",
                extra={"files": len(catalogue.files), "new": stored, "refused": len(catalogue.refused)},
            )
        return BackfillReport(catalogue, stored, self._spare_per_day(), dry_run)

    def _spare_per_day(self) -> int:
        """The units a day leaves for the backfill: the limit less fresh traffic's day (its
        first-rank files: with PRIORITY_BR_INDEXES empty, all of it; the counter's total would
        count the backfill itself), read from today so far (once an hour of it has passed) or
        else from yesterday."""
        now = self._clock()
        timezone = self._policy.timezone
        start = self._policy.day_ends(now) - timedelta(days=1)
        elapsed = now - start
        if elapsed >= RATE_AFTER:
            fresh = self._ledger.outlook(quota_day(now, timezone)).first_rank * (timedelta(days=1) / elapsed)
        else:
            fresh = self._ledger.outlook(quota_day(now - timedelta(days=1), timezone)).first_rank
        return max(0, self._policy.daily_limit - math.ceil(fresh))
