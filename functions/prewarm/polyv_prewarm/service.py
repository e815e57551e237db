"""The one place that orchestrates: plan -> claim and count -> call Polyv -> record each file's fate,
and the daily drain of the backlog."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from . import SERVICE
from .model import (
    CallRecord,
    DeferredFile,
    EntryState,
    Fate,
    FileRef,
    FileRequest,
    FileResult,
    LedgerEntry,
    Origin,
    Report,
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
TimeLeft = Callable[[], int] | None


class _ChunkSender:
    """Sends one claimed chunk.

    * When Polyv refuses it because of some files, isolates them by bisection: one bad file
      among n costs at most about 2*log2(n) extra calls.
    * When a call's outcome is unknown (Polyv may have accepted it), re-sends it only after
      counting its files again (``reserve_more``): the counter may over-count, never under-count.
    """

    def __init__(
        self,
        polyv: PolyvGateway,
        on_call: Callable[[CallRecord], int],
        *,
        reserve_more: Callable[[int], bool],
        may_retry: Callable[[int], bool],
        retries: int,
    ) -> None:
        self._polyv = polyv
        self._on_call = on_call
        self._reserve_more = reserve_more
        self._may_retry = may_retry
        self._retries = retries
        self.submitted: dict[FileRef, tuple[str, int]] = {}  # file -> (taskId, call number)
        self.rejected: dict[FileRef, str] = {}
        self.doubtful: set[FileRef] = set()  # files of a call whose outcome is unknown
        self.in_doubt = 0  # file-attempts that may have been accepted (ambiguous failures)
        self.extra_reserved = 0  # quota counted again for re-sending calls in doubt

    def unused_quota(self, reserved: int) -> int:
        """Of ``reserved`` (plus what was counted again), the files Polyv certainly did not take."""
        return reserved + self.extra_reserved - len(self.submitted) - self.in_doubt

    def send(self, group: Sequence[Claim]) -> None:
        refusal = self._try(group)
        if refusal is not None:
            self._isolate(group, refusal)

    def _try(self, group: Sequence[Claim]) -> str | None:
        """Push ``group``; None on success, else Polyv's reason for refusing it."""
        files = [c.file for c in group]
        retry = 0
        while True:
            try:
                task_id = self._polyv.push(files)
                break
            except PolyvFilesRefused as exc:
                return exc.polyv_message
            except PolyvUnavailable as exc:
                if not exc.ambiguous:
                    raise
                self.in_doubt += len(group)
                self.doubtful.update(files)
                if retry >= self._retries or not self._may_retry(retry) or not self._reserve_more(len(group)):
                    raise
                self.extra_reserved += len(group)
                retry += 1
                logger.warning(
                    "Polyv call outcome unknown: counted its files again and re-sending",
                    extra={"files": len(group), "error": str(exc), "retry": retry},
                )
        call_no = self._on_call(CallRecord(task_id=task_id, files=len(group)))
        logger.info(
            "Polyv accepted a call",
            extra={
                "task_id": task_id,
                "files": len(group),
                "message_ids": sorted({m for c in group if (m := c.request.origin.message_id)}),
                "s3_keys": sorted({k for c in group if (k := c.request.origin.s3_key)})[:10],
            },
        )
        for claim in group:
            self.submitted[claim.file] = (task_id, call_no)
            self.doubtful.discard(claim.file)
        return None

    def _isolate(self, group: Sequence[Claim], refusal: str) -> None:
        """``group`` is known to be refused with ``refusal``: find its bad files."""
        if len(group) == 1:
            self.rejected[group[0].file] = refusal
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


@dataclass(slots=True)
class _Outcome:
    deferred: list[Claim] = field(default_factory=list)  # no quota left today
    known: dict[FileRef, LedgerEntry] = field(default_factory=dict)  # handled earlier today


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

    def today(self) -> str:
        return quota_day(self._clock(), self._tz)

    # -- the main path --------------------------------------------------------------------------
    def prewarm(
        self,
        requests: Sequence[FileRequest],
        *,
        dry_run: bool = False,
        force: bool = False,
        time_left_ms: TimeLeft = None,
    ) -> Report:
        plan = build_plan(requests, self._polyv.userid())
        report = Report(results=list(plan.decided), dry_run=dry_run)
        day = self.today()
        if dry_run:
            self._dry_run(day, plan.unique, report, force)
        else:
            outcome = self._submit(day, plan.unique, report, time_left_ms, force=force)
            self._defer(outcome.deferred, report)
        self._finish(day, report, "prewarm finished")
        return report

    def _dry_run(self, day: str, claims: Sequence[Claim], report: Report, force: bool) -> None:
        try:
            entries = self._ledger.entries(day)
            room = self._ledger.usage(day, self._limit).remaining
        except StoreUnavailable:
            entries, room = {}, self._limit
        now = self._clock()
        to_send: list[Claim] = []
        for claim in claims:
            entry = entries.get(claim.file)
            if entry is not None and not force and not entry.reclaimable(now):
                report.results.append(
                    FileResult(claim.request, Fate.DUPLICATE, file=claim.file, reason=entry.describe())
                )
            elif len(to_send) < room:
                to_send.append(claim)
            else:
                report.results.append(
                    FileResult(claim.request, Fate.DEFERRED, file=claim.file, reason=DEFERRED_REASON)
                )
        for call_no, group in enumerate(chunk(to_send), 1):
            report.results += [FileResult(c.request, Fate.PLANNED, file=c.file, call=call_no) for c in group]

    def _defer(self, claims: Sequence[Claim], report: Report) -> None:
        if not claims:
            return
        try:
            stored = self._backlog.defer(
                [(c.file, c.request.origin.describe()) for c in claims], now=self._clock()
            )
        except StoreUnavailable as exc:
            logger.error("backlog unavailable: handing deferred files back", extra={"error": str(exc)})
            report.results += [
                FileResult(c.request, Fate.RETRY, file=c.file, reason="backlog unavailable") for c in claims
            ]
            return
        logger.info("deferred to the next quota day", extra={"files": len(claims), "new_in_backlog": stored})
        report.results += [
            FileResult(c.request, Fate.DEFERRED, file=c.file, reason=DEFERRED_REASON) for c in claims
        ]

    # -- the daily drain ------------------------------------------------------------------------
    def drain(
        self,
        *,
        time_left_ms: TimeLeft = None,
        slice_size: int = 100,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """Submit deferred files oldest first, as many as today's quota allows. A file leaves the
        backlog only once it was submitted or rejected (now or earlier today). ``on_slice`` is
        called after every slice (a progress bar)."""
        report = Report()
        day = self.today()
        while report.stopped_because is None:
            if not self._time_for_a_call(time_left_ms):
                report.stopped_because = "too little time left in this invocation for another call"
                break
            try:
                batch = self._backlog.oldest(slice_size)
            except StoreUnavailable as exc:
                report.stopped_because = f"backlog unavailable: {exc}"
                break
            if not batch:
                break
            claims = [
                Claim(
                    d.file,
                    FileRequest(d.file.vid, d.file.br_index, Origin("backlog", message_id=d.origin or None)),
                )
                for d in batch
            ]
            first = len(report.results)
            outcome = self._submit(day, claims, report, time_left_ms, force=False)
            done = [
                r.file for r in report.results[first:] if r.file and r.fate in (Fate.SUBMITTED, Fate.REJECTED)
            ]
            done += [
                f for f, e in outcome.known.items() if e.state in (EntryState.SUBMITTED, EntryState.REJECTED)
            ]
            try:
                self._backlog.remove(done)
            except StoreUnavailable as exc:
                # They stay in the backlog; the ledger knows they are done, so the next drain
                # today skips them as duplicates and removes them then.
                logger.error("could not remove drained files from the backlog", extra={"error": str(exc)})
            report.results += [
                FileResult(c.request, Fate.DEFERRED, file=c.file, reason=STILL_DEFERRED_REASON)
                for c in outcome.deferred
            ]
            if on_slice is not None:
                on_slice(report)
            if outcome.deferred or not done:
                break  # no quota left, or nothing in this slice could move: try again next time
        self._finish(day, report, "drain finished")
        return report

    # -- queries --------------------------------------------------------------------------------
    def quota(self, day: str | None = None) -> dict[str, Any]:
        view = self._ledger.usage(day or self.today(), self._limit)
        size, oldest = self._backlog.stats()
        return {**view.to_summary(), "backlog": {"files": size, "oldestDeferredAt": oldest}}

    def deferred(self, limit: int) -> list[DeferredFile]:
        """The oldest ``limit`` files waiting in the backlog."""
        return self._backlog.oldest(limit)

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
            "deferred": {
                str(f.br_index): {"deferredAt": d.deferred_at, "origin": d.origin}
                for f, d in sorted(pending.items())
            },
        }

    # -- shared machinery -----------------------------------------------------------------------
    def _submit(
        self, day: str, claims: Sequence[Claim], report: Report, time_left_ms: TimeLeft, *, force: bool
    ) -> _Outcome:
        outcome = _Outcome()
        quota_left = True

        def record_call(call: CallRecord) -> int:
            report.calls.append(call)
            return len(report.calls)

        def leave(group: Sequence[Claim], reason: str) -> None:
            report.results += [FileResult(c.request, Fate.RETRY, file=c.file, reason=reason) for c in group]

        for group in chunk(claims):
            if report.stopped_because is not None:
                leave(group, report.stopped_because)
                continue
            if not quota_left:
                outcome.deferred += group
                continue
            if not self._time_for_a_call(time_left_ms):
                report.stopped_because = "too little time left in this invocation for another call"
                leave(group, report.stopped_because)
                continue
            by_file = {c.file: c for c in group}
            try:
                claimed = self._ledger.claim(
                    day,
                    [(c.file, c.request.origin.describe()) for c in group],
                    self._limit,
                    now=self._clock(),
                    force=force,
                )
            except StoreUnavailable as exc:
                logger.error("ledger unavailable: sending nothing unaccounted", extra={"error": str(exc)})
                report.stopped_because = "quota ledger unavailable"
                leave(group, report.stopped_because)
                continue
            for file, entry in claimed.known.items():
                report.results.append(
                    FileResult(by_file[file].request, Fate.DUPLICATE, file=file, reason=entry.describe())
                )
            outcome.known.update(claimed.known)
            if claimed.no_room:
                quota_left = False
                outcome.deferred += [by_file[f] for f in claimed.no_room]
            granted = [by_file[f] for f in claimed.granted]
            settlement, spent, bug = self._send(day, granted, report, record_call, time_left_ms)
            settlement.duplicates = list(claimed.known)
            settlement.origins = {c.file: c.request.origin.describe() for c in group}
            if spent:
                quota_left = False
                outcome.deferred += [c for c in granted if c.file in settlement.handed_back]
            self._settle(day, settlement)
            if bug is not None:
                raise bug  # fail the invocation loudly: a defect, not a data or service error
        if outcome.deferred and not force:
            self._drop_known(day, outcome)
        return outcome

    def _drop_known(self, day: str, outcome: _Outcome) -> None:
        """Files left unclaimed for lack of quota may have been handled earlier today."""
        try:
            entries = self._ledger.entries(day)
        except StoreUnavailable:
            return  # defer them all: the drain checks the ledger again before sending
        now = self._clock()
        still = []
        for claim in outcome.deferred:
            entry = entries.get(claim.file)
            if entry is not None and not entry.reclaimable(now):
                outcome.known[claim.file] = entry
            else:
                still.append(claim)
        outcome.deferred = still

    def _send(
        self,
        day: str,
        granted: Sequence[Claim],
        report: Report,
        record_call: Callable[[CallRecord], int],
        time_left_ms: TimeLeft,
    ) -> tuple[Settlement, bool, PolyvContractViolation | None]:
        """Send claimed files. Returns what to record, whether Polyv says the quota is spent, and
        the contract violation to raise once the ledger is settled."""
        settlement = Settlement()
        if not granted:
            return settlement, False, None

        def may_retry(retry: int) -> bool:
            if not self._time_for_a_call(time_left_ms):
                return False
            self._sleep(self._backoff(retry))
            return True

        sender = _ChunkSender(
            self._polyv,
            record_call,
            reserve_more=lambda count: self._ledger.reserve_extra(day, count, self._limit),
            may_retry=may_retry,
            retries=self._ambiguous_retries,
        )
        spent, bug, leftover_reason = False, None, ""
        try:
            sender.send(granted)
        except PolyvQuotaSpent:
            logger.warning("Polyv says today's quota is spent: marking the day exhausted", extra={"day": day})
            self._mark_exhausted(day)
            spent, leftover_reason = True, "Polyv says today's quota is spent"
        except PolyvConfigurationError as exc:
            logger.error("configuration error: stopping all Polyv calls", extra={"error": str(exc)})
            leftover_reason = report.stopped_because = f"configuration error: {exc}"
        except PolyvContractViolation as exc:
            logger.critical("BUG: Polyv says a call broke its limits", extra={"error": str(exc)})
            leftover_reason = report.stopped_because = f"bug: {exc}"
            bug = exc
        except PolyvUnavailable as exc:
            logger.warning("Polyv unavailable: handing work back", extra={"error": str(exc)})
            leftover_reason = report.stopped_because = f"Polyv unavailable: {exc}"

        for claim in granted:
            file = claim.file
            if file in sender.submitted:
                task_id, call_no = sender.submitted[file]
                settlement.submitted[file] = task_id
                report.results.append(
                    FileResult(claim.request, Fate.SUBMITTED, file=file, task_id=task_id, call=call_no)
                )
            elif file in sender.rejected:
                settlement.rejected[file] = sender.rejected[file]
                report.results.append(
                    FileResult(claim.request, Fate.REJECTED, file=file, reason=sender.rejected[file])
                )
            elif file in sender.doubtful:
                settlement.in_doubt.add(file)
                report.results.append(
                    FileResult(claim.request, Fate.RETRY, file=file, reason=leftover_reason)
                )
            else:
                settlement.handed_back[file] = leftover_reason
                if not spent:  # spent: the caller defers these instead
                    report.results.append(
                        FileResult(claim.request, Fate.RETRY, file=file, reason=leftover_reason)
                    )
        # Quota for files Polyv certainly did not take goes back; files in doubt stay counted.
        # A day Polyv says is spent stays at its limit.
        settlement.release = 0 if spent else sender.unused_quota(len(granted))
        return settlement, spent, bug

    def _settle(self, day: str, settlement: Settlement) -> None:
        if not settlement and not settlement.release:
            return
        try:
            self._ledger.settle(day, settlement, now=self._clock())
        except StoreUnavailable as exc:
            # The claims stay "claimed": counted (over-count is safe), re-claimable once stale.
            logger.error("could not record outcomes in the ledger", extra={"error": str(exc)})

    def _mark_exhausted(self, day: str) -> None:
        try:
            self._ledger.mark_exhausted(day, self._limit)
        except StoreUnavailable as exc:
            logger.error("could not mark the day exhausted", extra={"error": str(exc)})

    def _time_for_a_call(self, time_left_ms: TimeLeft) -> bool:
        return time_left_ms is None or time_left_ms() >= self._min_time_per_call_ms

    def _finish(self, day: str, report: Report, message: str) -> None:
        try:
            report.quota = self._ledger.usage(day, self._limit)
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
