"""The one place that orchestrates: plan -> claim and count -> call Polyv -> record each file's fate,
and the daily drain of the backlog.

Every chunk of at most 100 files lives through one claim (the README draws it as a state
diagram): the claim counts the files and leases them to this invocation until its deadline; the
calls follow (bisecting refused calls, re-sending calls of unknown outcome after counting them
again, checking the time left before every call); the record is written in a ``finally``, so
whatever ends the calls (an answer, a fault, the deadline, an exception nobody expected) every
claimed file is recorded as submitted, rejected, in doubt or handed back. If the process dies
before that, the lease ends with the invocation and the claims are in doubt: claimable again,
counted again (the counter over-counts, never under-counts).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from . import SERVICE
from .model import (
    CallRecord,
    DeferredFile,
    Fate,
    FileRef,
    FileRequest,
    FileResult,
    Lease,
    LedgerEntry,
    Origin,
    Report,
    epoch_ms,
)
from .plan import Claim, build_plan, chunk
from .ports import (
    Backlog,
    DayLedger,
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvFilesRefused,
    PolyvGateway,
    PolyvQuotaSpent,
    PolyvUnavailable,
    Settlement,
    StoreUnavailable,
)
from .quotaday import quota_day

logger = Logger(service=SERVICE, child=True)

DEFERRED_REASON = "today's Polyv quota is spent: deferred to the next quota day"
STILL_DEFERRED_REASON = "today's Polyv quota is spent: stays in the backlog"
OUT_OF_TIME = "too little time left in this invocation for another call"
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


class _OutOfTime(Exception):
    """No time for another call before the invocation's deadline."""


@dataclass(slots=True)
class _Stop:
    """Why a chunk's calls ended early. ``whole_run``: no further call in this invocation
    (Polyv or the store down, a configuration error); otherwise only this chunk's files failed."""

    reason: str
    whole_run: bool = True
    quota_spent: bool = False


class _ChunkCalls:
    """The Polyv calls of one claimed chunk, and what is known of each file so far.

    * When Polyv refuses a call because of some files, isolates them by bisection: one bad file
      among n costs at most about 2*log2(n) extra calls.
    * When a call's outcome is unknown (Polyv may have accepted it), re-sends it only after
      counting its files again (``reserve_more``): the counter may over-count, never under-count.
    * Before every call, asks ``time_for_a_call``: bisection and re-sends obey the deadline too.

    Its fields are true at every instant, so the record can be written from them whatever
    interrupts the calls: ``in_flight`` holds the files of a call that has not answered.
    """

    def __init__(
        self,
        polyv: PolyvGateway,
        *,
        today: Callable[[], str],
        time_for_a_call: Callable[[], bool],
        reserve_more: Callable[[int], bool],
        before_resend: Callable[[int], None],
        resends: int,
    ) -> None:
        self._polyv = polyv
        self._today = today
        self._time_for_a_call = time_for_a_call
        self._reserve_more = reserve_more
        self._before_resend = before_resend
        self._resends = resends
        self.calls: list[tuple[CallRecord, list[Claim]]] = []  # accepted calls, in order
        self.answered_day: dict[FileRef, str] = {}  # submitted file -> quota day of Polyv's answer
        self.task_ids: dict[FileRef, str] = {}
        self.rejected: dict[FileRef, str] = {}
        self.for_now: set[FileRef] = set()  # rejected for a bitrate that may exist later today
        self.doubtful: set[FileRef] = set()  # in a call whose outcome is unknown
        self._claims: dict[FileRef, Claim] = {}
        self.in_flight: list[FileRef] = []
        self.unknown_outcomes = 0  # file-attempts that may have been accepted
        self.extra_counted = 0  # quota counted again to re-send calls in doubt

    def send(self, group: Sequence[Claim]) -> None:
        self._claims = {c.file: c for c in group}
        refusal = self._try(group)
        if refusal is not None:
            self._isolate(group, refusal)

    def _try(self, group: Sequence[Claim]) -> PolyvFilesRefused | None:
        """Push ``group``; None on success, else Polyv's refusal of it."""
        files = [c.file for c in group]
        resend = 0
        while True:
            if not self._time_for_a_call():
                raise _OutOfTime
            self.in_flight = files
            try:
                task_id = self._polyv.push(files)
            except PolyvFilesRefused as exc:
                self.in_flight = []
                return exc
            except PolyvUnavailable as exc:
                self.in_flight = []
                if not exc.ambiguous:
                    raise
                self._unknown(files)
                if resend >= self._resends or not self._time_for_a_call():
                    raise
                self._before_resend(resend)
                if not self._reserve_more(len(files)):
                    raise
                self.extra_counted += len(files)
                resend += 1
                logger.warning(
                    "Polyv call outcome unknown: counted its files again and re-sending",
                    extra={"files": len(files), "error": str(exc), "resend": resend},
                )
                continue
            except (PolyvQuotaSpent, PolyvConfigurationError, PolyvContractViolation):
                self.in_flight = []  # Polyv answered: it did not take the call
                raise
            # any other exception leaves in_flight set: those files are in doubt
            break
        self.in_flight = []
        call = CallRecord(task_id=task_id, files=len(files))
        self.calls.append((call, list(group)))
        day = self._today()
        for file in files:
            self.task_ids[file] = task_id
            self.answered_day[file] = day
            self.doubtful.discard(file)
        return None

    def _unknown(self, files: Sequence[FileRef]) -> None:
        self.doubtful.update(files)
        self.unknown_outcomes += len(files)

    def _isolate(self, group: Sequence[Claim], refusal: PolyvFilesRefused) -> None:
        """``group`` is known to be refused with ``refusal``: find its bad files."""
        if len(group) == 1:
            self.rejected[group[0].file] = refusal.polyv_message
            if refusal.for_now:
                self.for_now.add(group[0].file)
            return
        half = len(group) // 2
        left, right = group[:half], group[half:]
        left_refusal = self._try(left)
        if left_refusal is None:
            self._isolate(right, refusal)  # left is clean, so right alone caused the refusal
            return
        self._isolate(left, left_refusal)
        right_refusal = self._try(right)
        if right_refusal is not None:
            self._isolate(right, right_refusal)

    def rejected_claims(self) -> list[tuple[Claim, str]]:
        return [(self._claims[f], reason) for f, reason in self.rejected.items()]

    def doubtful_claims(self) -> list[Claim]:
        # an answer to a later attempt (a taskId, a refusal) says more than an unknown outcome
        return [
            c
            for f, c in self._claims.items()
            if f in self.doubtful and f not in self.task_ids and f not in self.rejected
        ]

    def settlement(
        self, granted: Sequence[Claim], leftover: str, *, quota_spent: bool, retry_after_ms: int
    ) -> Settlement:
        """What to record for every granted file, from what is known now."""
        if self.in_flight:  # interrupted while a call was out: it may have been accepted
            self._unknown(self.in_flight)
            self.in_flight = []
        settled = Settlement()
        for claim in granted:
            file = claim.file
            if file in self.task_ids:
                settled.submitted[file] = self.task_ids[file]
            elif file in self.rejected:
                settled.rejected[file] = self.rejected[file]
                if file in self.for_now:
                    settled.retry_after_ms[file] = retry_after_ms
            elif file in self.doubtful:
                settled.in_doubt.add(file)
            else:
                settled.handed_back[file] = leftover
        # Quota of files Polyv certainly did not take goes back; files in doubt stay counted.
        # A day Polyv says is spent stays at its limit.
        if not quota_spent:
            settled.release = len(granted) + self.extra_counted - len(self.task_ids) - self.unknown_outcomes
        return settled


@dataclass(slots=True)
class _Outcome:
    """What became of a run of chunks beyond the per-file results: what waits for quota."""

    deferred: list[Claim] = field(default_factory=list)  # no quota left today
    unknown_refusals: dict[FileRef, str] = field(default_factory=dict)  # Polyv's unknown errors


def _backlog_request(deferred: DeferredFile) -> FileRequest:
    """A deferred file as a request of the drain, with the message it first came in."""
    return FileRequest(
        deferred.file.vid, deferred.file.br_index, Origin("backlog", message_id=deferred.origin or None)
    )


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
    ) -> None:
        self._polyv = polyv
        self._ledger = ledger
        self._backlog = backlog
        self._limit = daily_limit
        self._tz = timezone
        self._clock = clock
        self._min_time_per_call_ms = min_time_per_call_ms
        self._ambiguous_retries = ambiguous_retries
        self._backoff = backoff
        self._sleep = sleep
        self._retention_days = retention_days
        self._new_owner = new_owner
        self._reserve = manual_reserve
        self._max_age = backlog_max_age
        self._newest_first = drain_newest_first

    def today(self) -> str:
        return quota_day(self._clock(), self._tz)

    def userid(self) -> str:
        return self._polyv.userid()

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
        plan = build_plan(requests, self._polyv.userid())
        report = Report(results=list(plan.decided), dry_run=dry_run)
        limit = self._limit if priority_high else self._limit - self._reserve
        if dry_run:
            self._dry_run(self.today(), plan.unique, report, force, limit)
        else:
            forced = {c.file for c in plan.unique} if force else set()
            outcome = self._submit(plan.unique, report, time_left_ms, forced=forced, limit=limit)
            self._defer(outcome.deferred, report, forced=forced)
        self._finish(report, "prewarm finished")
        return report

    def _dry_run(self, day: str, claims: Sequence[Claim], report: Report, force: bool, limit: int) -> None:
        try:
            entries = self._ledger.lookup(day, [c.file for c in claims])
            room = self._ledger.usage(day, limit).remaining
        except StoreUnavailable:
            entries, room = {}, limit
        now = self._clock()
        to_send: list[Claim] = []
        for claim in claims:
            entry = entries.get(claim.file)
            if entry is not None and not entry.claimable(now, force=force, explicit=claim.request.explicit):
                self._report_unclaimable(claim, entry, report, now)
            elif len(to_send) < room:
                to_send.append(claim)
            else:
                report.results.append(
                    FileResult(claim.request, Fate.DEFERRED, file=claim.file, reason=DEFERRED_REASON)
                )
        for call_no, group in enumerate(chunk(to_send), 1):
            report.results += [FileResult(c.request, Fate.PLANNED, file=c.file, call=call_no) for c in group]

    def _defer(self, claims: Sequence[Claim], report: Report, *, forced: Collection[FileRef] = ()) -> None:
        """Store files that found no quota today, except those that turn out to be handled today
        already (duplicate) or held by another invocation (retry): each gets exactly one fate."""
        if not claims:
            return
        waiting = self._not_handled_today([c for c in claims if c.file not in forced], report)
        waiting += [c for c in claims if c.file in forced]
        if not waiting:
            return
        stored = 0
        try:
            for force in (False, True):  # a forced file keeps its force in the backlog
                files = [
                    (c.file, c.request.origin.describe()) for c in waiting if (c.file in forced) is force
                ]
                if files:
                    stored += self._backlog.defer(files, now=self._clock(), force=force)
        except StoreUnavailable as exc:
            logger.error("backlog unavailable: handing deferred files back", extra={"error": str(exc)})
            report.results += [
                FileResult(c.request, Fate.RETRY, file=c.file, reason="backlog unavailable") for c in waiting
            ]
            return
        logger.info("deferred to the next quota day", extra={"files": len(waiting), "new_in_backlog": stored})
        report.results += [
            FileResult(c.request, Fate.DEFERRED, file=c.file, reason=DEFERRED_REASON) for c in waiting
        ]

    def _not_handled_today(self, claims: Sequence[Claim], report: Report) -> list[Claim]:
        if not claims:
            return []
        try:
            entries = self._ledger.lookup(self.today(), [c.file for c in claims])
        except StoreUnavailable:
            return list(claims)  # defer them all: the drain checks the ledger again before sending
        now = self._clock()
        waiting = []
        for claim in claims:
            entry = entries.get(claim.file)
            if entry is not None and not entry.claimable(now, explicit=claim.request.explicit):
                self._report_unclaimable(claim, entry, report, now)
            else:
                waiting.append(claim)
        return waiting

    @staticmethod
    def _report_unclaimable(claim: Claim, entry: LedgerEntry, report: Report, now: datetime) -> None:
        fate = Fate.RETRY if entry.held(now) else Fate.DUPLICATE
        report.results.append(FileResult(claim.request, fate, file=claim.file, reason=entry.describe()))

    # -- the daily drain ------------------------------------------------------------------------
    def drain(
        self,
        *,
        time_left_ms: TimeLeft = None,
        slice_size: int = 100,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """Expire deferred files older than the maximum age, then submit the rest in the drain
        order (newest or oldest first), as many as today's quota (less the manual reserve)
        allows. A file leaves the backlog once it was submitted or rejected (now, or by any path
        since it was deferred).
        Files that cannot move now (held by another invocation, refused with an unknown error)
        are passed by, so they never block the rest; one refused in ``PARK_AFTER_FAILURES``
        drains is parked. ``on_slice`` is called after every slice (a progress bar)."""
        report = Report()
        self._expire_backlog(report)
        cursor: DeferredFile | None = None
        while report.stopped_because is None:
            if not self._time_for_a_call(time_left_ms):
                report.stopped_because = OUT_OF_TIME
                break
            try:
                if self._newest_first:
                    batch = self._backlog.newest(slice_size, after=cursor)
                else:
                    batch = self._backlog.oldest(slice_size, after=cursor)
            except StoreUnavailable as exc:
                report.stopped_because = f"backlog unavailable: {exc}"
                break
            if not batch:
                break
            cursor = batch[-1]
            quota_left = self._drain_slice(batch, report, time_left_ms)
            if on_slice is not None:
                on_slice(report)
            if not quota_left:
                break
        self._finish(report, "drain finished")
        return report

    def _expire_backlog(self, report: Report) -> None:
        """Drop deferred files older than BACKLOG_MAX_AGE_DAYS, oldest first: a prewarm is worth
        most before viewers arrive, and little a week later. Each gets the fate ``expired``."""
        cutoff = (self._clock() - self._max_age).isoformat()
        while True:
            try:
                batch = [d for d in self._backlog.oldest(100) if d.deferred_at < cutoff]
                if not batch:
                    return
                self._backlog.remove([d.file for d in batch])
            except StoreUnavailable as exc:
                logger.error("could not expire old backlog files", extra={"error": str(exc)})
                return
            for deferred in batch:
                reason = f"deferred at {deferred.deferred_at}, more than {self._max_age.days} days ago"
                report.results.append(
                    FileResult(_backlog_request(deferred), Fate.EXPIRED, file=deferred.file, reason=reason)
                )
            logger.warning(
                "expired backlog files",
                extra={"files": [d.file.key for d in batch[:20]], "count": len(batch), "cutoff": cutoff},
            )

    def _drain_slice(self, batch: Sequence[DeferredFile], report: Report, time_left_ms: TimeLeft) -> bool:
        """Drain one slice; False when today's quota is spent."""
        by_file = {d.file: d for d in batch}
        claims = [Claim(d.file, _backlog_request(d)) for d in batch]
        first = len(report.results)
        claims = self._not_sent_since_deferral(claims, by_file, report)
        forced = {d.file for d in batch if d.force}
        outcome = self._submit(claims, report, time_left_ms, forced=forced, limit=self._limit - self._reserve)
        report.results += [
            FileResult(c.request, Fate.DEFERRED, file=c.file, reason=STILL_DEFERRED_REASON)
            for c in outcome.deferred
        ]
        done = [
            r.file
            for r in report.results[first:]
            if r.file and r.fate in (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE)
        ]
        try:
            self._backlog.remove(done)
            if outcome.unknown_refusals:
                error = next(iter(outcome.unknown_refusals.values()))
                failed = [by_file[f] for f in outcome.unknown_refusals if f in by_file]
                parked = self._backlog.record_failure(failed, error, park_after=PARK_AFTER_FAILURES)
                if parked:
                    logger.error(
                        "parked backlog files that Polyv refused in several drains",
                        extra={"files": [f.key for f in parked], "error": error},
                    )
        except StoreUnavailable as exc:
            # They stay in the backlog; the ledger knows they are done, so the next drain skips
            # them as duplicates and removes them then.
            logger.error("could not update the backlog after a drained slice", extra={"error": str(exc)})
        return not outcome.deferred

    def _not_sent_since_deferral(
        self, claims: Sequence[Claim], by_file: dict[FileRef, DeferredFile], report: Report
    ) -> list[Claim]:
        """Drop files another path submitted on an earlier day after they were deferred (today's
        submissions are the claim's to find). Forced files are sent whatever happened since."""
        today = date.fromisoformat(self.today())
        oldest = today - timedelta(days=self._retention_days)
        days: dict[str, list[FileRef]] = {}
        for claim in claims:
            deferred = by_file[claim.file]
            if deferred.force:
                continue
            deferred_day = quota_day(datetime.fromisoformat(deferred.deferred_at), self._tz)
            since = max(date.fromisoformat(deferred_day), oldest)
            for n in range((today - since).days):
                days.setdefault((since + timedelta(days=n)).isoformat(), []).append(claim.file)
        sent: dict[FileRef, LedgerEntry] = {}
        try:
            for day, files in sorted(days.items()):
                for file, entry in self._ledger.lookup(day, files).items():
                    if entry.task_id and entry.at > by_file[file].deferred_at and file not in sent:
                        sent[file] = entry
        except StoreUnavailable:
            return list(claims)  # the claim still stops what was sent today
        for claim in claims:
            if claim.file in sent:
                report.results.append(
                    FileResult(
                        claim.request,
                        Fate.DUPLICATE,
                        file=claim.file,
                        reason=f"submitted since it was deferred (taskId {sent[claim.file].task_id})",
                    )
                )
        return [c for c in claims if c.file not in sent]

    # -- queries --------------------------------------------------------------------------------
    def quota(self, day: str | None = None) -> dict[str, Any]:
        view = self._ledger.usage(day or self.today(), self._limit)
        view.reserve = self._reserve
        size, oldest = self._backlog.stats()
        return {**view.to_summary(), "backlog": {"files": size, "oldestDeferredAt": oldest}}

    def deferred(self, limit: int) -> list[DeferredFile]:
        """The oldest ``limit`` files waiting in the backlog, then the parked ones."""
        return self._backlog.oldest(limit) + self._backlog.parked(limit)

    def status(self, vid: str) -> dict[str, Any]:
        today = datetime.fromisoformat(self.today()).date()
        days = [(today - timedelta(days=n)).isoformat() for n in range(self._retention_days)]
        history = self._ledger.history(vid, days)
        pending = self._backlog.pending([FileRef(vid, br) for br in (1, 2, 3)])
        return {
            "vid": vid,
            "days": {
                day: {str(br): entry.to_summary() for br, entry in sorted(by_br.items())}
                for day, by_br in sorted(history.items(), reverse=True)
            },
            "deferred": {str(f.br_index): d.to_summary() for f, d in sorted(pending.items())},
        }

    # -- shared machinery -----------------------------------------------------------------------
    def _submit(
        self,
        claims: Sequence[Claim],
        report: Report,
        time_left_ms: TimeLeft,
        *,
        forced: Collection[FileRef],
        limit: int,
    ) -> _Outcome:
        """Claim, send and record ``claims`` chunk by chunk; every claim gets exactly one result,
        except those that find no quota (returned in ``deferred`` for the caller to place)."""
        outcome = _Outcome()
        quota_left = True
        for group in chunk(claims):
            if report.stopped_because is not None:
                self._leave(group, report.stopped_because, report)
            elif not quota_left:
                outcome.deferred += group
            elif not self._time_for_a_call(time_left_ms):
                report.stopped_because = OUT_OF_TIME
                self._leave(group, OUT_OF_TIME, report)
            else:
                quota_left = self._claim_and_send(group, report, outcome, time_left_ms, forced, limit)
        return outcome

    def _claim_and_send(
        self,
        group: Sequence[Claim],
        report: Report,
        outcome: _Outcome,
        time_left_ms: TimeLeft,
        forced: Collection[FileRef],
        limit: int,
    ) -> bool:
        """One chunk's claim, calls and record (within ``limit``). False when the quota is spent."""
        day = self.today()  # the day of each chunk: an invocation may outlive midnight
        now = self._clock()
        lease = Lease.until(self._new_owner(), now + self._time_left(time_left_ms) + LEASE_GRACE)
        by_file = {c.file: c for c in group}
        try:
            claimed = self._ledger.claim(
                day,
                [(c.file, c.request.origin.describe()) for c in group],
                limit,
                lease=lease,
                now=now,
                forced=[c.file for c in group if c.file in forced],
                explicit=[c.file for c in group if c.request.explicit],
            )
        except StoreUnavailable as exc:
            logger.error("ledger unavailable: sending nothing unaccounted", extra={"error": str(exc)})
            report.stopped_because = "quota ledger unavailable"
            self._leave(group, report.stopped_because, report)
            return True
        for file, entry in {**claimed.known, **claimed.held}.items():
            self._report_unclaimable(by_file[file], entry, report, now)
        outcome.deferred += [by_file[f] for f in claimed.no_room]
        granted = [by_file[f] for f in claimed.granted]
        stop, unsent = self._send_and_record(day, granted, lease, report, time_left_ms, limit)
        if stop is None:
            return not claimed.no_room
        if stop.quota_spent:
            outcome.deferred += unsent
            return False
        if stop.whole_run:
            report.stopped_because = stop.reason
        else:
            outcome.unknown_refusals.update({c.file: stop.reason for c in unsent})
        return not claimed.no_room

    def _send_and_record(
        self,
        day: str,
        granted: Sequence[Claim],
        lease: Lease,
        report: Report,
        time_left_ms: TimeLeft,
        limit: int,
    ) -> tuple[_Stop | None, list[Claim]]:
        """Send the granted files and, whatever happens, record every one of them. Returns why the
        calls stopped early, if they did, and the files that were certainly not sent."""
        if not granted:
            return None, []
        calls = _ChunkCalls(
            self._polyv,
            today=self.today,
            time_for_a_call=lambda: self._time_for_a_call(time_left_ms),
            reserve_more=lambda count: self._ledger.reserve_extra(day, count, limit),
            before_resend=lambda resend: self._sleep(self._backoff(resend)),
            resends=self._ambiguous_retries,
        )
        stop: _Stop | None = _Stop("the invocation stopped before the calls ended")
        bug: PolyvContractViolation | None = None
        try:
            calls.send(granted)
            stop = None
        except _OutOfTime:
            stop = _Stop(OUT_OF_TIME)
        except PolyvQuotaSpent:
            logger.warning("Polyv says today's quota is spent: marking the day exhausted", extra={"day": day})
            self._mark_exhausted(day)
            stop = _Stop("Polyv says today's quota is spent", whole_run=False, quota_spent=True)
        except PolyvConfigurationError as exc:
            logger.error("configuration error: stopping all Polyv calls", extra={"error": str(exc)})
            stop = _Stop(f"configuration error: {exc}")
        except PolyvContractViolation as exc:
            logger.critical("BUG: Polyv says a call broke its limits", extra={"error": str(exc)})
            stop, bug = _Stop(f"bug: {exc}"), exc
        except PolyvUnavailable as exc:
            if exc.refused:
                logger.warning("Polyv refused a call with an unknown error", extra={"error": str(exc)})
                stop = _Stop(str(exc), whole_run=False)
            else:
                logger.warning("Polyv unavailable: handing work back", extra={"error": str(exc)})
                stop = _Stop(f"Polyv unavailable: {exc}")
        except Exception as exc:
            # Anything else (the store failing while counting a re-send, a defect): the claims must
            # still end. The files of an unanswered call are in doubt, the rest handed back.
            logger.exception("unexpected error while calling Polyv: handing work back")
            stop = _Stop(f"unexpected error: {type(exc).__name__}")
        finally:
            # Runs on every exit, KeyboardInterrupt included; only a killed process skips it,
            # and then the lease ends with the invocation.
            leftover = stop.reason if stop is not None else ""
            settlement = calls.settlement(
                granted,
                leftover,
                quota_spent=bool(stop and stop.quota_spent),
                retry_after_ms=epoch_ms(self._clock() + BITRATE_RETRY_AFTER),
            )
            self._record(day, settlement, lease, granted, calls, time_left_ms)
            unsent = [c for c in granted if c.file in settlement.handed_back]
            self._report_chunk(calls, unsent, leftover, report, quota_spent=bool(stop and stop.quota_spent))
        if bug is not None:
            raise bug  # fail the invocation loudly: a defect, not a data or service error
        return stop, unsent

    def _record(
        self,
        day: str,
        settlement: Settlement,
        lease: Lease,
        granted: Sequence[Claim],
        calls: _ChunkCalls,
        time_left_ms: TimeLeft,
    ) -> None:
        self._settle_persistently(day, settlement, lease, time_left_ms)
        # The quota day of a submission is the day of Polyv's answer: a call that straddled
        # midnight is counted in the new day too (the old day keeps its count: over, never under).
        late: dict[str, dict[FileRef, str]] = {}
        for file, answered in calls.answered_day.items():
            if answered != day:
                late.setdefault(answered, {})[file] = calls.task_ids[file]
        origins = {c.file: c.request.origin.describe() for c in granted}
        for answered, submitted in late.items():
            try:
                self._ledger.carry_over(answered, submitted, origins, now=self._clock())
                logger.info(
                    "a call straddled midnight: counted in the new quota day",
                    extra={"day": answered, "files": len(submitted)},
                )
            except Exception as exc:
                logger.error(
                    "could not count a call that straddled midnight", extra={"error": str(exc)[:200]}
                )

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
                self._ledger.settle(day, settlement, lease=lease, now=self._clock())
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

    def _report_chunk(
        self, calls: _ChunkCalls, unsent: Sequence[Claim], leftover: str, report: Report, *, quota_spent: bool
    ) -> None:
        """One result for every granted file but the unsent ones of a spent day (deferred later)."""
        first_call = len(report.calls) + 1
        for number, (call, group) in enumerate(calls.calls, first_call):
            report.calls.append(call)
            logger.info(
                "Polyv accepted a call",
                extra={
                    "task_id": call.task_id,
                    "files": call.files,
                    "message_ids": sorted({m for c in group if (m := c.request.origin.message_id)}),
                    "s3_keys": sorted({k for c in group if (k := c.request.origin.s3_key)})[:10],
                },
            )
            report.results += [
                FileResult(c.request, Fate.SUBMITTED, file=c.file, task_id=call.task_id, call=number)
                for c in group
            ]
        for claim, reason in calls.rejected_claims():
            report.results.append(FileResult(claim.request, Fate.REJECTED, file=claim.file, reason=reason))
        report.results += [
            FileResult(c.request, Fate.RETRY, file=c.file, reason=leftover) for c in calls.doubtful_claims()
        ]
        if not quota_spent:
            report.results += [
                FileResult(c.request, Fate.RETRY, file=c.file, reason=leftover) for c in unsent
            ]

    @staticmethod
    def _leave(group: Sequence[Claim], reason: str, report: Report) -> None:
        report.results += [FileResult(c.request, Fate.RETRY, file=c.file, reason=reason) for c in group]

    def _mark_exhausted(self, day: str) -> None:
        try:
            self._ledger.mark_exhausted(day, self._limit)
        except StoreUnavailable as exc:
            logger.error("could not mark the day exhausted", extra={"error": str(exc)})

    def _time_left(self, time_left_ms: TimeLeft) -> timedelta:
        return DEFAULT_RUN_TIME if time_left_ms is None else timedelta(milliseconds=time_left_ms())

    def _time_for_a_call(self, time_left_ms: TimeLeft) -> bool:
        return time_left_ms is None or time_left_ms() >= self._min_time_per_call_ms

    def _finish(self, report: Report, message: str) -> None:
        day = self.today()
        try:
            report.quota = self._ledger.usage(day, self._limit)
            report.quota.reserve = self._reserve
        except StoreUnavailable:
            logger.warning("ledger unreadable: summary has no quota figures")
        for result in report.results:
            if result.fate is Fate.REJECTED:
                logger.warning(
                    "file rejected",
                    extra={
                        "vid": str(result.request.vid)[:64],
                        "brIndex": str(result.request.br_index)[:8],
                        "reason": result.reason,
                        **result.request.origin.log_keys(),
                    },
                )
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
