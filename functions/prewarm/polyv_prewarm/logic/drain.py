"""The use case "drain the backlog": deferred files are submitted as the new day's quota allows.

First, files older than BACKLOG_MAX_AGE_DAYS expire. Then the backlog is read slice by slice in
the drain order (newest or oldest first), each slice submitted through the submission use case
(the :class:`~.run.Submits` interface: claim -> send -> record) within the day's limit less the
manual reserve. A file leaves the backlog once it was submitted or rejected (now, or by any path
since it was deferred). Files that cannot move now (held by another invocation, refused with an
unknown error or left unisolated by the bisection budget) are passed by (the cursor moves on), so
they never block the rest; a file refused in ``PARK_AFTER_FAILURES`` drains is parked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.breaker import BreakerState
from ..domain.model import (
    BacklogFigures,
    DeferredFile,
    Fate,
    FileRef,
    FileRequest,
    LedgerEntry,
    Origin,
    Report,
)
from ..domain.plan import RequestedFile
from ..domain.policy import Deadline, Policy
from ..domain.ports import Backlog, DayLedger, PolyvBreaker, StoreUnavailable
from ..domain.quotaday import quota_day
from .run import Leftovers, Run, Submits, finish, new_run, result
from .sender import OUT_OF_TIME

logger = Logger(service=SERVICE, child=True)

STILL_DEFERRED_REASON = "today's Polyv quota is spent: stays in the backlog"
DONE = (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE)  # leave the backlog
#: A deferred file whose drained call Polyv refused with an unknown error this often is parked.
PARK_AFTER_FAILURES = 3


class DrainBacklog:
    def __init__(
        self,
        *,
        submit: Submits,
        ledger: DayLedger,
        backlog: Backlog,
        breaker: PolyvBreaker,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self._submit = submit
        self._ledger = ledger
        self._backlog = backlog
        self._breaker = breaker
        self._policy = policy
        self._clock = clock

    def run(
        self,
        *,
        deadline: Deadline | None = None,
        slice_size: int = 100,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """Expire, then drain slice by slice until the day's quota, the backlog or the time runs
        out; ``on_slice`` is called after every slice (a progress bar)."""
        policy = self._policy
        limit = policy.limit(priority_high=False)
        run = new_run(policy, deadline or Deadline.default(self._clock()), limit=limit)
        self._expire(run.report)
        cursor: DeferredFile | None = None
        while run.stopped is None:
            batch = self._next_slice(run, slice_size, cursor)
            if not batch:
                break
            cursor = batch[-1]
            quota_left = self._drain_slice(batch, run)
            if on_slice is not None:
                on_slice(run.report)
            if not quota_left:
                break
        finish(run.report, "drain finished", ledger=self._ledger, policy=policy, now=self._clock())
        run.report.backlog = self._figures()
        return run.report

    def _next_slice(self, run: Run, size: int, cursor: DeferredFile | None) -> list[DeferredFile]:
        """The next files in the drain order after ``cursor``; none when the run must stop."""
        if not self._submit.time_for_a_call(run):
            run.stop(OUT_OF_TIME)
            return []
        try:
            if self._policy.drain_newest_first:
                return self._backlog.newest(size, after=cursor)
            return self._backlog.oldest(size, after=cursor)
        except StoreUnavailable as exc:
            run.stop(f"backlog unavailable: {exc}")
            return []

    def recover(self, *, deadline: Deadline | None = None, slice_size: int = 100) -> Report:
        """The recovery drain (a schedule every few minutes): send the files waiting out an outage
        or a deadline, once their time has come and Polyv's breaker lets a run call. Cheap when
        there is nothing to do: one read of the breaker, one query of the due files."""
        policy = self._policy
        run = new_run(
            policy, deadline or Deadline.default(self._clock()), limit=policy.limit(priority_high=False)
        )
        report = run.report
        try:
            state = self._breaker.state()
        except StoreUnavailable as exc:
            run.stop(f"Polyv's breaker unreadable: {exc}")
            return report
        now = self._clock()
        report.breaker = state
        report.polyv_down_minutes = state.down_for(now).total_seconds() / 60
        if state.waiting(now):  # Polyv is known to be down, and it is not time to probe it yet
            report.polyv_down_since = state.down_since
            return report
        cursor: DeferredFile | None = None
        while run.stopped is None and self._submit.time_for_a_call(run):
            try:
                batch = self._backlog.due(slice_size, now=now, after=cursor)
            except StoreUnavailable as exc:
                run.stop(f"backlog unavailable: {exc}")
                break
            if not batch:
                if cursor is None and state.open:
                    self._nothing_waits_on_polyv(state)
                break
            cursor = batch[-1]  # files held by another invocation stay due: passed by, not looped on
            if not self._drain_slice(batch, run, waiting=True):
                break
        if report.results:
            finish(report, "recovery drain finished", ledger=self._ledger, policy=policy, now=self._clock())
            report.backlog = self._figures()
        return report

    def _nothing_waits_on_polyv(self, state: BreakerState) -> None:
        """An open breaker that no file waits on (they were sent another way): close it, unless a
        call failed since it was read. Open, it would report Polyv down for as long as no traffic
        came to probe it; closed, the next call finds out, and opens it again if Polyv is down."""
        try:
            self._breaker.recovered(unless_failed_since=state)
        except StoreUnavailable as exc:
            logger.warning("could not close Polyv's breaker", extra={"error": str(exc)})
            return
        logger.info("no file waits on Polyv: breaker closed; the next call finds out")

    def _drain_slice(self, batch: Sequence[DeferredFile], run: Run, *, waiting: bool = False) -> bool:
        """Submit one slice (its priority files within the whole limit, the rest within the run's)
        and update the backlog; False when today's quota is spent, or the run stopped."""
        first = len(run.report.results)
        wanted = self._not_sent_since_deferral(batch, run.report)
        forced = frozenset(d.file for d in batch if d.force)
        by_file = {d.file: d for d in batch}
        urgent = [u for u in wanted if by_file[u.file].priority_high]
        leftovers = self._submit.submit(urgent, run, forced=forced, limit=self._policy.daily_limit)
        more = self._submit.submit(
            [u for u in wanted if not by_file[u.file].priority_high], run, forced=forced
        )
        for name in ("no_quota", "parked"):
            getattr(leftovers, name).extend(getattr(more, name))
        leftovers.refused.update(more.refused)
        leftovers.unisolated += more.unisolated
        run.report.results += [result(u, Fate.DEFERRED, STILL_DEFERRED_REASON) for u in leftovers.no_quota]
        # refused in a call the bisection budget left unsplit: they stay, and count a failed drain
        run.report.results += [result(u, Fate.DEFERRED, why) for u, why in leftovers.unisolated]
        if leftovers.parked:
            why = f"{run.stopped}: waits in the backlog"
            run.report.results += [result(u, Fate.DEFERRED, why) for u in leftovers.parked]
        done = [r.file for r in run.report.results[first:] if r.file and r.fate in DONE]
        self._update_backlog(done, leftovers, by_file, run, waiting=waiting)
        return not leftovers.no_quota and run.stopped is None

    def _update_backlog(
        self,
        done: list[FileRef],
        leftovers: Leftovers,
        by_file: dict[FileRef, DeferredFile],
        run: Run,
        *,
        waiting: bool,
    ) -> None:
        """Remove the files that are done; count a failure for those Polyv refused (parking the
        ones that failed too often); the files a stopped run parked wait out the outage (or wait
        on, from the recovery drain); waiting files that found no quota today join the daily
        backlog."""
        try:
            self._backlog.remove(done)
            if leftovers.parked and run.retry_at is not None:
                stopped = [by_file[u.file] for u in leftovers.parked]
                self._backlog.wait(stopped, retry_at=run.retry_at, reason=str(run.stopped)[:200])
            if waiting and leftovers.no_quota:
                self._backlog.to_daily([by_file[u.file] for u in leftovers.no_quota])
            if leftovers.refused:
                error = next(iter(leftovers.refused.values()))
                failed = [by_file[f] for f in leftovers.refused if f in by_file]
                parked = self._backlog.record_failure(failed, error, park_after=PARK_AFTER_FAILURES)
                if parked:
                    logger.error(
                        "parked backlog files that Polyv refused in several drains",
                        extra={"files": [f.key for f in parked[:20]], "count": len(parked), "error": error},
                    )
        except StoreUnavailable as exc:
            # They stay in the backlog; the ledger knows they are done, so the next drain skips
            # them as duplicates and removes them then.
            logger.error("could not update the backlog after a drained slice", extra={"error": str(exc)})

    def _expire(self, report: Report) -> None:
        """Drop deferred files older than BACKLOG_MAX_AGE_DAYS, oldest first: a prewarm is worth
        most before viewers arrive, and little a week later. Each gets the fate ``expired``."""
        max_age = self._policy.backlog_max_age
        cutoff = (self._clock() - max_age).isoformat()
        while True:
            try:
                batch = [d for d in self._backlog.oldest(100) if d.deferred_at < cutoff]
                if not batch:
                    return
                self._backlog.remove([d.file for d in batch])
            except StoreUnavailable as exc:
                logger.error("could not expire old backlog files", extra={"error": str(exc)})
                return
            reason = f"more than {max_age.days} days ago"
            report.results += [
                result(as_request(d), Fate.EXPIRED, f"deferred at {d.deferred_at}, {reason}") for d in batch
            ]
            logger.warning(
                "expired backlog files",
                extra={"files": [d.file.key for d in batch[:20]], "count": len(batch), "cutoff": cutoff},
            )

    def _not_sent_since_deferral(self, batch: Sequence[DeferredFile], report: Report) -> list[RequestedFile]:
        """The slice's files, less those another path submitted on an earlier day after they were
        deferred (today's submissions are the claim's to find). Forced files are sent whatever
        happened since."""
        wanted = [as_request(d) for d in batch]
        try:
            sent = self._sent_since(batch)
        except StoreUnavailable:
            return wanted  # the claim still stops what was sent today
        for requested in wanted:
            if requested.file in sent:
                reason = f"submitted since it was deferred (taskId {sent[requested.file].task_id})"
                report.results.append(result(requested, Fate.DUPLICATE, reason))
        return [u for u in wanted if u.file not in sent]

    def _sent_since(self, batch: Sequence[DeferredFile]) -> dict[FileRef, LedgerEntry]:
        """Files of ``batch`` submitted after their deferral, on a retained day before today."""
        today = date.fromisoformat(self._submit.today())
        oldest = today - timedelta(days=self._policy.retention_days)
        days: dict[str, list[FileRef]] = {}
        for deferred in (d for d in batch if not d.force):
            deferred_day = quota_day(datetime.fromisoformat(deferred.deferred_at), self._policy.timezone)
            since = max(date.fromisoformat(deferred_day), oldest)
            for n in range((today - since).days):
                days.setdefault((since + timedelta(days=n)).isoformat(), []).append(deferred.file)
        deferred_at = {d.file: d.deferred_at for d in batch}
        sent: dict[FileRef, LedgerEntry] = {}
        for day, files in sorted(days.items()):
            for file, entry in self._ledger.lookup(day, files).items():
                if entry.task_id and entry.at > deferred_at[file] and file not in sent:
                    sent[file] = entry
        return sent

    def _figures(self) -> BacklogFigures | None:
        try:
            return BacklogFigures(*self._backlog.stats())
        except StoreUnavailable as exc:
            logger.warning(
                "backlog unreadable: the drain's summary has no backlog figures", extra={"error": str(exc)}
            )
            return None


def as_request(deferred: DeferredFile) -> RequestedFile:
    """A deferred file as the drain's request, with the message it first came in."""
    origin = Origin("backlog", message_id=deferred.origin or None)
    return RequestedFile(deferred.file, FileRequest(deferred.file.vid, deferred.file.br_index, origin))
