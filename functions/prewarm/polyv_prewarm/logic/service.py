"""The one place that orchestrates: plan -> claim and count -> call Polyv -> record each file's fate.

Every chunk of at most 100 files lives through one claim (the README draws it as a state
diagram), read top to bottom in :meth:`PrewarmService._run_chunk`: the claim counts the files and
leases them to this invocation until its deadline; the calls follow (:mod:`polyv_prewarm.logic.sender`);
the record is written in a ``finally``, so whatever ends the calls (an answer, a fault, the
deadline, an exception nobody expected) every claimed file is recorded as submitted, rejected, in
doubt or handed back. If the process dies before that, the lease ends with the invocation and the
claims are in doubt: claimable again, counted again (the counter over-counts, never under-counts).

The daily drain of the backlog lives in :mod:`polyv_prewarm.logic.drain` and submits through the same
:meth:`PrewarmService.submit`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.model import (
    BacklogFigures,
    DeferredFile,
    Fate,
    FileRef,
    FileRequest,
    FileResult,
    Lease,
    LedgerEntry,
    QuotaSummary,
    QuotaView,
    Report,
    VideoStatus,
    epoch_ms,
)
from ..domain.plan import RequestedFile, build_plan, chunk
from ..domain.ports import Backlog, ClaimResult, DayLedger, PolyvGateway, Settlement, StoreUnavailable
from ..domain.quotaday import quota_day
from .sender import (
    BISECTION_CALLS_PER_CHUNK,
    BISECTION_CALLS_PER_RUN,
    OUT_OF_TIME,
    ChunkOutcome,
    ChunkSender,
)

logger = Logger(service=SERVICE, child=True)

DEFERRED_REASON = "today's Polyv quota is spent: deferred to the next quota day"
#: A lease outlives its invocation's deadline by this much: clocks of two hosts may differ a little.
LEASE_GRACE = timedelta(seconds=30)
#: Without a Lambda deadline (a script, the CLI without one): Lambda's own maximum.
DEFAULT_RUN_TIME = timedelta(minutes=15)
#: A record that fails is tried again this often, while more than RECORD_RESERVE_MS are left.
RECORD_ATTEMPTS = 8
RECORD_RESERVE_MS = 2_000
#: A bitrate Polyv said does not exist may be asked again this long after (its transcoding may
#: still run), or at once by an event that names it (a callback's df, an explicit brIndex).
BITRATE_RETRY_AFTER = timedelta(minutes=30)
#: A deferred file whose drained call Polyv refused with an unknown error this often is parked.
PARK_AFTER_FAILURES = 3

TimeLeft = Callable[[], int] | None


@dataclass
class Run:
    """One invocation's submission (a prewarm, or a whole drain): its quota limit, its deadline,
    the files it must send even if settled today, the report it fills, and whether it stopped."""

    report: Report
    limit: int
    time_left_ms: TimeLeft = None
    forced: Collection[FileRef] = frozenset()
    stopped: str | None = None  # no further Polyv call in this run, and why
    bisection_calls_left: int = BISECTION_CALLS_PER_RUN  # to isolate refused files, all chunks

    def stop(self, reason: str) -> None:
        self.stopped = self.report.stopped_because = reason


@dataclass
class Submitted:
    """What :meth:`PrewarmService.submit` leaves to its caller: the files that wait for quota."""

    deferred: list[RequestedFile] = field(default_factory=list)  # no quota left today
    refused: dict[FileRef, str] = field(default_factory=dict)  # Polyv's unknown errors, per file
    # in a refused call left unsplit by the bisection budget, and why: not sent, not counted
    unisolated: list[tuple[RequestedFile, str]] = field(default_factory=list)


class PrewarmService:
    def __init__(
        self,
        *,
        polyv: PolyvGateway,
        ledger: DayLedger,
        backlog: Backlog,
        daily_limit: int,
        timezone: ZoneInfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_time_per_call_ms: int = 15_000,
        ambiguous_retries: int = 1,
        backoff: Callable[[int], float] = lambda retry: random.uniform(0, min(8.0, 0.5 * 2**retry)),
        sleep: Callable[[float], None] = time.sleep,
        retention_days: int = 35,
        new_owner: Callable[[], str] = lambda: uuid.uuid4().hex,
        manual_reserve: int = 0,
        backlog_max_age: timedelta = timedelta(days=7),
        drain_newest_first: bool = False,
        bisection_calls: tuple[int, int] = (BISECTION_CALLS_PER_CHUNK, BISECTION_CALLS_PER_RUN),
    ) -> None:
        """Only the ports are required; the rest is configuration with a default per parameter
        (``runtime.build_runtime`` passes the deployed values), so this stays one flat list."""
        self.polyv = polyv
        self.ledger = ledger
        self.backlog = backlog
        self.limit = daily_limit
        self.timezone = timezone
        self.clock = clock
        self._min_time_per_call_ms = min_time_per_call_ms
        self._ambiguous_retries = ambiguous_retries
        self._backoff = backoff
        self._sleep = sleep
        self.retention_days = retention_days
        self._new_owner = new_owner
        self.reserve = manual_reserve
        self.backlog_max_age = backlog_max_age
        self.drain_newest_first = drain_newest_first
        self.bisection_calls = bisection_calls  # extra calls to isolate refused files: (chunk, run)

    def today(self) -> str:
        return quota_day(self.clock(), self.timezone)

    def userid(self) -> str:
        return self.polyv.userid()

    # -- the main path --------------------------------------------------------------------------
    def prewarm(
        self,
        requests: Sequence[FileRequest],
        *,
        dry_run: bool = False,
        force: bool = False,
        time_left_ms: TimeLeft = None,
        priority_high: bool = False,
    ) -> Report:
        """``priority_high`` (a person's request): may use the MANUAL_RESERVE of the day's quota,
        which automatic traffic leaves alone."""
        plan = build_plan(requests, self.polyv.userid())
        report = Report(results=list(plan.decided), dry_run=dry_run)
        limit = self.limit if priority_high else self.limit - self.reserve
        if dry_run:
            self._dry_run(plan.unique, report, force=force, limit=limit)
        else:
            forced = frozenset(u.file for u in plan.unique) if force else frozenset()
            run = Run(report, limit, time_left_ms, forced, bisection_calls_left=self.bisection_calls[1])
            submitted = self.submit(plan.unique, run)
            self._defer(submitted.deferred, run)
            for reason, files in _by_reason(submitted.unisolated).items():
                self._defer(files, run, reason=f"{reason}: deferred to the backlog's drain")
        self.finish(report, "prewarm finished")
        return report

    def drain(
        self,
        *,
        time_left_ms: TimeLeft = None,
        slice_size: int = 100,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """The backlog's drain (:class:`polyv_prewarm.logic.drain.BacklogDrain`); ``on_slice`` is
        called after every slice (a progress bar)."""
        from .drain import BacklogDrain  # only the daily schedule and the CLI drain

        return BacklogDrain(self).run(time_left_ms=time_left_ms, slice_size=slice_size, on_slice=on_slice)

    def submit(self, files: Sequence[RequestedFile], run: Run) -> Submitted:
        """Claim, send and record ``files`` chunk by chunk; every file gets exactly one result in
        ``run.report``, except those that find no quota and those a refused call left unisolated
        (both returned, not sent and not counted, for the caller to place)."""
        submitted = Submitted()
        quota_left = True
        for group in chunk(files):
            if run.stopped is not None:
                self._hand_back(group, run.stopped, run.report)
            elif not quota_left:
                submitted.deferred += group
            elif not self.time_for_a_call(run.time_left_ms):
                run.stop(OUT_OF_TIME)
                self._hand_back(group, OUT_OF_TIME, run.report)
            else:
                quota_left = self._run_chunk(group, run, submitted)
        return submitted

    def _run_chunk(self, group: Sequence[RequestedFile], run: Run, submitted: Submitted) -> bool:
        """One chunk: claim -> send -> record, whatever ends the calls. False when the quota is
        spent (Polyv says so, or the claim found no room)."""
        day = self.today()  # the day of each chunk: an invocation may outlive midnight
        lease = Lease.until(self._new_owner(), self.clock() + self._time_left(run) + LEASE_GRACE)
        by_file = {u.file: u for u in group}
        claimed = self._claim(day, by_file, lease, run)
        if claimed is None:
            return True
        submitted.deferred += [by_file[f] for f in claimed.no_room]
        outcome = ChunkOutcome([by_file[f] for f in claimed.granted])
        if outcome.granted:
            try:
                ChunkSender(
                    self.polyv,
                    _Budget(self, day, run),
                    today=self.today,
                    resends=self._ambiguous_retries,
                    bisection_calls=self.bisection_calls[0],
                ).send(outcome)
            finally:  # on every exit, KeyboardInterrupt included; a killed process leaves the lease
                unsent = self._record(day, outcome, lease, run, submitted)
            if outcome.bug is not None:
                raise outcome.bug  # fail the invocation loudly: a defect, not a data or service error
            if outcome.stop is not None:
                return self._after_stop(day, outcome, unsent, run, submitted)
        return not claimed.no_room

    def _claim(
        self, day: str, by_file: dict[FileRef, RequestedFile], lease: Lease, run: Run
    ) -> ClaimResult | None:
        """Claim and count the chunk's files; report those that cannot be claimed now. None when the
        ledger is unavailable: the whole run stops and the chunk is handed back."""
        group = list(by_file.values())
        now = self.clock()
        try:
            claimed = self.ledger.claim(
                day,
                [(u.file, u.request.origin.describe()) for u in group],
                run.limit,
                lease=lease,
                now=now,
                forced=[u.file for u in group if u.file in run.forced],
                explicit=[u.file for u in group if u.request.explicit],
            )
        except StoreUnavailable as exc:
            logger.error("ledger unavailable: sending nothing unaccounted", extra={"error": str(exc)})
            run.stop("quota ledger unavailable")
            self._hand_back(group, "quota ledger unavailable", run.report)
            return None
        for file, entry in {**claimed.known, **claimed.held}.items():
            run.report.results.append(unclaimable(by_file[file], entry, now))
        return claimed

    def _record(
        self, day: str, outcome: ChunkOutcome, lease: Lease, run: Run, submitted: Submitted
    ) -> list[RequestedFile]:
        """Write the chunk's record and report its files; returns the files certainly not sent.
        Files refused but not isolated go to ``submitted.refused`` (a drain keeps them)."""
        retry_after_ms = epoch_ms(self.clock() + BITRATE_RETRY_AFTER)
        record = outcome.close(len(run.report.calls) + 1, retry_after_ms=retry_after_ms)
        self._settle_persistently(day, record.settlement, lease, run.time_left_ms)
        self._carry_over_late_answers(day, outcome)
        run.report.calls += record.calls
        run.report.results += record.results
        submitted.unisolated += record.unisolated
        return record.unsent

    def _after_stop(
        self, day: str, outcome: ChunkOutcome, unsent: list[RequestedFile], run: Run, submitted: Submitted
    ) -> bool:
        """Route a chunk whose calls ended early. False when Polyv says the day's quota is spent."""
        stop = outcome.stop
        assert stop is not None
        if stop.quota_spent:
            self._mark_exhausted(day)
            submitted.deferred += unsent
            return False
        if stop.whole_run:
            run.stop(stop.reason)
        else:
            submitted.refused.update({u.file: stop.reason for u in unsent})
        return True

    def _settle_persistently(
        self, day: str, settlement: Settlement, lease: Lease, time_left_ms: TimeLeft
    ) -> None:
        """Write the record, trying again while the invocation has time: an unrecorded submission
        would be in doubt once its lease ends, and a redelivery would send it again."""
        if not settlement:
            return
        error = ""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                self.ledger.settle(day, settlement, lease=lease, now=self.clock())
                return
            except StoreUnavailable as exc:
                error = str(exc)
                pause = self._backoff(attempt)
                if time_left_ms is not None and time_left_ms() - 1000 * pause < RECORD_RESERVE_MS:
                    break  # the invocation must end in time; its claims' lease does the rest
                logger.warning("could not record outcomes yet: trying again", extra={"attempt": attempt + 1})
                self._sleep(pause)
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                break
        # The claims stay leased until the deadline, then are in doubt: counted, claimable again.
        # Files Polyv accepted keep their fate (handing them back would only send them again).
        logger.error(
            "could not record outcomes in the ledger: the claims will be in doubt",
            extra={"error": error, "files": len(settlement.submitted) + len(settlement.rejected)},
        )

    def _carry_over_late_answers(self, day: str, outcome: ChunkOutcome) -> None:
        """The quota day of a submission is the day of Polyv's answer: a call that straddled
        midnight is counted in the new day too (the old day keeps its count: over, never under)."""
        late: dict[str, dict[FileRef, str]] = {}
        for file, answered in outcome.answered_day.items():
            if answered != day:
                late.setdefault(answered, {})[file] = outcome.task_ids[file]
        if not late:
            return
        origins = {u.file: u.request.origin.describe() for u in outcome.granted}
        for answered, files in late.items():
            try:
                self.ledger.carry_over(answered, files, origins, now=self.clock())
                logger.info(
                    "a call straddled midnight: counted in the new quota day",
                    extra={"day": answered, "files": len(files)},
                )
            except Exception as exc:
                logger.error(
                    "could not count a call that straddled midnight", extra={"error": str(exc)[:200]}
                )

    # -- what finds no quota, and what is not sent at all ---------------------------------------
    def _dry_run(
        self, requested: Sequence[RequestedFile], report: Report, *, force: bool, limit: int
    ) -> None:
        day = self.today()
        try:
            entries = self.ledger.lookup(day, [u.file for u in requested])
            room = self.ledger.usage(day, limit).remaining
        except StoreUnavailable:
            entries, room = {}, limit
        now = self.clock()
        to_send: list[RequestedFile] = []
        for wanted in requested:
            entry = entries.get(wanted.file)
            if entry is not None and not entry.claimable(now, force=force, explicit=wanted.request.explicit):
                report.results.append(unclaimable(wanted, entry, now))
            elif len(to_send) < room:
                to_send.append(wanted)
            else:
                report.results.append(result(wanted, Fate.DEFERRED, DEFERRED_REASON))
        for call_no, group in enumerate(chunk(to_send), 1):
            report.results += [FileResult(u.request, Fate.PLANNED, file=u.file, call=call_no) for u in group]

    def _defer(self, requested: Sequence[RequestedFile], run: Run, *, reason: str = DEFERRED_REASON) -> None:
        """Store files that found no quota today, except those that turn out to be handled today
        already (duplicate) or held by another invocation (handed back): each gets one fate."""
        if not requested:
            return
        waiting = self._not_handled_today([u for u in requested if u.file not in run.forced], run.report)
        waiting += [u for u in requested if u.file in run.forced]
        if not waiting:
            return
        stored = 0
        try:
            for force in (False, True):  # a forced file keeps its force in the backlog
                files = [
                    (u.file, u.request.origin.describe()) for u in waiting if (u.file in run.forced) is force
                ]
                if files:
                    stored += self.backlog.defer(files, now=self.clock(), force=force)
        except StoreUnavailable as exc:
            logger.error("backlog unavailable: handing deferred files back", extra={"error": str(exc)})
            self._hand_back(waiting, "backlog unavailable", run.report)
            return
        logger.info("deferred to the next quota day", extra={"files": len(waiting), "new_in_backlog": stored})
        run.report.results += [result(u, Fate.DEFERRED, reason) for u in waiting]

    def _not_handled_today(self, requested: Sequence[RequestedFile], report: Report) -> list[RequestedFile]:
        if not requested:
            return []
        try:
            entries = self.ledger.lookup(self.today(), [u.file for u in requested])
        except StoreUnavailable:
            return list(requested)  # defer them all: the drain checks the ledger again before sending
        now = self.clock()
        waiting = []
        for wanted in requested:
            entry = entries.get(wanted.file)
            if entry is not None and not entry.claimable(now, explicit=wanted.request.explicit):
                report.results.append(unclaimable(wanted, entry, now))
            else:
                waiting.append(wanted)
        return waiting

    @staticmethod
    def _hand_back(group: Sequence[RequestedFile], reason: str, report: Report) -> None:
        report.results += [result(u, Fate.HANDED_BACK, reason) for u in group]

    def _mark_exhausted(self, day: str) -> None:
        logger.warning("Polyv says today's quota is spent: marking the day exhausted", extra={"day": day})
        try:
            self.ledger.mark_exhausted(day, self.limit)
        except StoreUnavailable as exc:
            logger.error("could not mark the day exhausted", extra={"error": str(exc)})

    # -- time -----------------------------------------------------------------------------------
    def _time_left(self, run: Run) -> timedelta:
        return DEFAULT_RUN_TIME if run.time_left_ms is None else timedelta(milliseconds=run.time_left_ms())

    def time_for_a_call(self, time_left_ms: TimeLeft) -> bool:
        """Whether the invocation has time for one more Polyv call, its retries included."""
        return time_left_ms is None or time_left_ms() >= self._min_time_per_call_ms

    # -- queries --------------------------------------------------------------------------------
    def quota(self, day: str | None = None) -> QuotaSummary:
        return QuotaSummary(self._usage(day or self.today()), self.backlog_figures())

    def backlog_figures(self) -> BacklogFigures:
        files, oldest = self.backlog.stats()
        return BacklogFigures(files, oldest)

    def deferred(self, limit: int) -> list[DeferredFile]:
        """The oldest ``limit`` files waiting in the backlog, then the parked ones."""
        return self.backlog.oldest(limit) + self.backlog.parked(limit)

    def status(self, vid: str) -> VideoStatus:
        today = datetime.fromisoformat(self.today()).date()
        days = [(today - timedelta(days=n)).isoformat() for n in range(self.retention_days)]
        pending = self.backlog.pending([FileRef(vid, br) for br in (1, 2, 3)])
        return VideoStatus(
            vid,
            days=self.ledger.history(vid, days),
            deferred={file.br_index: deferred for file, deferred in pending.items()},
        )

    def _usage(self, day: str) -> QuotaView:
        return self.ledger.usage(day, self.limit)._replace(reserve=self.reserve)

    def finish(self, report: Report, message: str) -> None:
        """Add the day's quota figures to the report, then log its rejections and its summary."""
        day = self.today()
        try:
            report.quota = self._usage(day)
        except StoreUnavailable:
            logger.warning("ledger unreadable: summary has no quota figures")
        for fate, what in ((Fate.REJECTED, "files rejected"), (Fate.DUPLICATE, "duplicate files")):
            _log_tally(what, [r for r in report.results if r.fate is fate])
        logger.info(
            message,
            extra={
                "day": day,
                "dry_run": report.dry_run,
                "counts": report.counts(),
                "calls": len(report.calls),
                "stopped_because": report.stopped_because,
            },
        )


class _Budget:
    """A chunk's :class:`~polyv_prewarm.logic.sender.CallBudget`: the run's deadline, and the day's
    counter for re-sending a call of unknown outcome (after a back-off)."""

    def __init__(self, service: PrewarmService, day: str, run: Run) -> None:
        self._service = service
        self._day = day
        self._run = run

    def time_for_a_call(self) -> bool:
        return self._service.time_for_a_call(self._run.time_left_ms)

    def count_again(self, files: int, resend: int) -> bool:
        self._service._sleep(self._service._backoff(resend))
        return self._service.ledger.reserve_extra(self._day, files, self._run.limit)

    def take_bisection_call(self) -> bool:
        if self._run.bisection_calls_left <= 0:
            return False
        self._run.bisection_calls_left -= 1
        return True


#: What one aggregated log line names: its most common reasons, and a few files as examples.
TALLY_REASONS, TALLY_EXAMPLES = 10, 5


def _log_tally(message: str, results: Sequence[FileResult]) -> None:
    """One line for a whole fate (an invocation may reject or skip thousands of files): how many,
    by reason, and a few files. Each value is cut short (an invalid vid is shown as sent)."""
    if not results:
        return
    by_reason = Counter(r.reason or "" for r in results).most_common(TALLY_REASONS)
    log = logger.warning if results[0].fate is Fate.REJECTED else logger.info
    log(
        message,
        extra={
            "count": len(results),
            "by_reason": dict(by_reason),
            "examples": [r.to_summary() for r in results[:TALLY_EXAMPLES]],
        },
    )


def _by_reason(files: Sequence[tuple[RequestedFile, str]]) -> dict[str, list[RequestedFile]]:
    grouped: dict[str, list[RequestedFile]] = {}
    for requested, reason in files:
        grouped.setdefault(reason, []).append(requested)
    return grouped


def result(requested: RequestedFile, fate: Fate, reason: str) -> FileResult:
    return FileResult(requested.request, fate, file=requested.file, reason=reason)


def unclaimable(requested: RequestedFile, entry: LedgerEntry, now: datetime) -> FileResult:
    """A file this run may not claim: another invocation's live claim is handed back (its
    message comes again), anything else was handled today (a duplicate)."""
    fate = Fate.HANDED_BACK if entry.held(now) else Fate.DUPLICATE
    return result(requested, fate, entry.describe())
