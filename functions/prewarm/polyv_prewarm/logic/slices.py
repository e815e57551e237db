"""A drained slice: deferred files through the submission, and back into the backlog.

The morning drain, the late sweeps (:mod:`.drain`) and the recovery drain (:mod:`.recovery`)
read the backlog slice by slice and hand each slice here: files another path submitted since
they were deferred leave as duplicates, files whose call of an earlier day may have reached Polyv
are in doubt (sent again only by a run that resends, else to the resend tier), priority files
claim within the whole limit, and every file is placed by the table (``domain/placement.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import ClaimRequest, FileClaim, in_doubt
from ..domain.model import DeferredFile, FileRef, FileRequest, LedgerEntry, Origin, Tier
from ..domain.placement import Caller, Disposition, Placed
from ..domain.policy import Policy
from ..domain.ports import Backlog, DayLedger, StoreUnavailable
from ..domain.quota import Resends
from ..domain.quotaday import quota_day
from .placement import DrainedPlacement
from .run import Run, Submits

logger = Logger(service=SERVICE, child=True)

#: What a drain spends on the suspect tier, whatever else it does: one slice of this many files,
#: and this many bisection calls (at most 1 + 8 Polyv calls a drain, ~108 an hour of recovery
#: drains, far below Polyv's 1,500 requests per 10 s). Clean tiers are drained first.
SUSPECT_SLICE, SUSPECT_BISECTION_CALLS = 100, 8


def claim_of(deferred: DeferredFile) -> FileClaim:
    """A deferred file as the drain's claim, with the message it first came in, its force and
    its explicitness."""
    origin = Origin("backlog", message_id=deferred.origin or None)
    file = deferred.file
    request = FileRequest(file.vid, file.br_index, origin, explicit=deferred.explicit)
    return FileClaim(file, request, ClaimRequest(force=deferred.force, explicit=deferred.explicit))


class DrainSlices:
    def __init__(
        self,
        *,
        submission: Submits,
        ledger: DayLedger,
        backlog: Backlog,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self._submission = submission
        self._ledger = ledger
        self._backlog = backlog
        self._policy = policy
        self._clock = clock

    def drain(
        self,
        batch: Sequence[DeferredFile],
        run: Run,
        caller: Caller,
        *,
        limit: int,
        urgent_limit: int | None = None,
    ) -> bool:
        """Submit one slice (its priority files within the whole limit or ``urgent_limit``, the
        rest within ``limit``) and place its files; False when the quota is spent, or the run
        stopped."""
        by_file = {d.file: d for d in batch}
        placed, wanted = self._not_sent_since_deferral(batch, run)
        run.no_room = False
        placed += self._by_priority(wanted, by_file, run, limit=limit, urgent_limit=urgent_limit)
        placed = self._submission.resend_from_surplus(placed, run)
        DrainedPlacement(self._backlog, caller).place(placed, by_file, run)
        return not run.no_room and run.stopped is None

    def drain_suspects(self, run: Run, caller: Caller, limit: int) -> bool:
        """One slice of the suspect tier, oldest first, with a bisection budget of its own (taken
        from the run's, never more): suspects never delay a clean file, and cost a bounded number
        of calls however many there are."""
        try:
            batch = self._backlog.oldest(SUSPECT_SLICE, tier=Tier.SUSPECT)
        except StoreUnavailable as exc:
            logger.warning("suspect tier unreadable", extra={"error": str(exc)})
            return run.stopped is None
        tried = {r.file for r in run.report.results}  # refused in this very drain: the next one's
        batch = [d for d in batch if d.file not in tried]
        if not batch or not run.time_for_a_call(self._clock()):
            return run.stopped is None
        budget = run.bisection_calls_left
        run.bisection_calls_left = min(budget, SUSPECT_BISECTION_CALLS)
        spent_before = run.bisection_calls_left
        try:
            return self.drain(batch, run, caller, limit=limit)
        finally:
            run.bisection_calls_left = budget - (spent_before - run.bisection_calls_left)

    def _by_priority(
        self,
        wanted: Sequence[FileClaim],
        by_file: dict[FileRef, DeferredFile],
        run: Run,
        *,
        limit: int,
        urgent_limit: int | None,
    ) -> list[Placed]:
        """The priority files within the whole limit (or ``urgent_limit``), then the rest within ``limit``."""
        urgent = [c for c in wanted if by_file[c.file].priority_high]
        rest = [c for c in wanted if not by_file[c.file].priority_high]
        placed = self._submission.submit(urgent, run, limit=urgent_limit or self._policy.daily_limit)
        return placed + self._submission.submit(rest, run, limit=limit)

    def _not_sent_since_deferral(
        self, batch: Sequence[DeferredFile], run: Run
    ) -> tuple[list[Placed], list[FileClaim]]:
        """The slice's files another path submitted on an earlier day after they were deferred
        (today's submissions are the claim's to find): duplicates; those whose call of an earlier
        day may have reached Polyv (and the resend tier's, in doubt by what put them there): found
        in doubt, unless the run resends them. Returns them placed, and the claims to submit.
        Forced files are sent whatever happened since."""
        claims = [claim_of(d) for d in batch]
        try:
            sent, doubtful = self._since_deferral(batch)
        except StoreUnavailable:
            return [], claims  # the claim still stops what was sent today
        if run.resends is Resends.ALWAYS:
            doubtful = set()
        else:
            doubtful |= {d.file for d in batch if d.tier is Tier.RESEND}
        placed = [
            Placed(c, Disposition.KNOWN, f"submitted since it was deferred (taskId {sent[c.file].task_id})")
            for c in claims
            if c.file in sent
        ]
        placed += [
            Placed(c, Disposition.FOUND_IN_DOUBT) for c in claims if c.file in doubtful and c.file not in sent
        ]
        return placed, [c for c in claims if c.file not in sent and c.file not in doubtful]

    def _since_deferral(
        self, batch: Sequence[DeferredFile]
    ) -> tuple[dict[FileRef, LedgerEntry], set[FileRef]]:
        """Files of ``batch`` submitted after their deferral, on a retained day before today; and
        those whose latest entry since then is in doubt (a call that may have reached Polyv)."""
        timezone = self._policy.timezone
        today = date.fromisoformat(quota_day(self._clock(), timezone))
        oldest = today - timedelta(days=self._policy.retention_days)
        days: dict[str, list[FileRef]] = {}
        for deferred in (d for d in batch if not d.force):
            deferred_day = quota_day(datetime.fromisoformat(deferred.deferred_at), timezone)
            since = max(date.fromisoformat(deferred_day), oldest)
            for n in range((today - since).days):
                days.setdefault((since + timedelta(days=n)).isoformat(), []).append(deferred.file)
        deferred_at = {d.file: d.deferred_at for d in batch}
        sent: dict[FileRef, LedgerEntry] = {}
        doubtful: set[FileRef] = set()
        now = self._clock()
        for day, files in sorted(days.items()):
            for file, entry in self._ledger.lookup(day, files).items():
                if entry.at <= deferred_at[file] or file in sent:
                    continue
                if entry.task_id:
                    sent[file] = entry
                    doubtful.discard(file)
                elif in_doubt(entry, now):
                    doubtful.add(file)
        return sent, doubtful
