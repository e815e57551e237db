"""The one place that orchestrates: plan -> reserve quota -> call Polyv -> record each file's fate."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from . import SERVICE
from .model import CallRecord, Fate, FileRef, FileRequest, FileResult, QuotaView, Report
from .plan import Claim, build_plan
from .ports import (
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvFilesRefused,
    PolyvGateway,
    PolyvQuotaSpent,
    PolyvUnavailable,
    QuotaStore,
    QuotaStoreUnavailable,
)
from .quotaday import quota_day

logger = Logger(service=SERVICE, child=True)

OVER_QUOTA_REASON = "today's Polyv quota is spent"


class _ChunkSender:
    """Sends one reserved chunk.

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


class PrewarmService:
    def __init__(
        self,
        *,
        polyv: PolyvGateway,
        quota: QuotaStore,
        daily_limit: int,
        timezone: ZoneInfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_time_per_call_ms: int = 15_000,
        ambiguous_retries: int = 1,
        backoff: Callable[[int], float] = lambda retry: random.uniform(0, min(8.0, 0.5 * 2**retry)),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._polyv = polyv
        self._quota = quota
        self._limit = daily_limit
        self._tz = timezone
        self._clock = clock
        self._min_time_per_call_ms = min_time_per_call_ms
        self._ambiguous_retries = ambiguous_retries
        self._backoff = backoff
        self._sleep = sleep

    def prewarm(
        self,
        requests: Sequence[FileRequest],
        *,
        dry_run: bool = False,
        time_left_ms: Callable[[], int] | None = None,
    ) -> Report:
        plan = build_plan(requests, self._polyv.userid())
        report = Report(results=list(plan.decided), dry_run=dry_run)
        day = quota_day(self._clock(), self._tz)
        chunks = plan.chunks()

        if dry_run:
            for call_no, group in enumerate(chunks, 1):
                report.results += [
                    FileResult(c.request, Fate.PLANNED, file=c.file, call=call_no) for c in group
                ]
        else:
            self._send_all(day, chunks, report, time_left_ms)

        try:
            report.quota = QuotaView(day=day, used=self._quota.used(day), limit=self._limit)
        except QuotaStoreUnavailable:
            logger.warning("quota store unreadable: summary has no quota figures")
        for result in report.results:
            if result.fate is Fate.REJECTED:
                logger.warning(
                    "file rejected",
                    extra={
                        "vid": str(result.request.vid)[:64],
                        "reason": result.reason,
                        **result.request.origin.log_keys(),
                    },
                )
        logger.info(
            "prewarm finished",
            extra={
                "day": day,
                "dry_run": dry_run,
                "counts": report.counts(),
                "calls": len(report.calls),
                "stopped_because": report.stopped_because,
            },
        )
        return report

    def _send_all(
        self,
        day: str,
        chunks: list[list[Claim]],
        report: Report,
        time_left_ms: Callable[[], int] | None,
    ) -> None:
        def record_call(call: CallRecord) -> int:
            report.calls.append(call)
            return len(report.calls)

        def leave(claims: Sequence[Claim], fate: Fate, reason: str) -> None:
            report.results += [FileResult(c.request, fate, file=c.file, reason=reason) for c in claims]

        quota_left = True
        for group in chunks:
            if report.stopped_because is not None:
                leave(group, Fate.RETRY, report.stopped_because)
                continue
            if not quota_left:
                leave(group, Fate.OVER_QUOTA, OVER_QUOTA_REASON)
                continue
            if not self._time_for_a_call(time_left_ms):
                report.stopped_because = "too little time left in this invocation for another call"
                leave(group, Fate.RETRY, report.stopped_because)
                continue
            try:
                granted = self._quota.reserve(day, len(group), self._limit)
            except QuotaStoreUnavailable as exc:
                logger.error(
                    "quota store unavailable: sending nothing unaccounted", extra={"error": str(exc)}
                )
                report.stopped_because = "quota store unavailable"
                leave(group, Fate.RETRY, report.stopped_because)
                continue
            if granted < len(group):
                quota_left = False
                leave(group[granted:], Fate.OVER_QUOTA, OVER_QUOTA_REASON)
            if granted and not self._send_reserved(day, group[:granted], report, record_call, time_left_ms):
                quota_left = False

    def _time_for_a_call(self, time_left_ms: Callable[[], int] | None) -> bool:
        return time_left_ms is None or time_left_ms() >= self._min_time_per_call_ms

    def _reserve_exactly(self, day: str, count: int) -> bool:
        try:
            granted = self._quota.reserve(day, count, self._limit)
            if granted < count:
                self._quota.release(day, granted)
        except QuotaStoreUnavailable as exc:
            logger.error("quota store unavailable: not re-sending", extra={"error": str(exc)})
            return False
        return granted == count

    def _send_reserved(
        self,
        day: str,
        group: Sequence[Claim],
        report: Report,
        record_call: Callable[[CallRecord], int],
        time_left_ms: Callable[[], int] | None,
    ) -> bool:
        """Send a chunk whose quota is reserved. False when Polyv says the day's quota is spent."""

        def may_retry(retry: int) -> bool:
            if not self._time_for_a_call(time_left_ms):
                return False
            self._sleep(self._backoff(retry))
            return True

        sender = _ChunkSender(
            self._polyv,
            record_call,
            reserve_more=lambda count: self._reserve_exactly(day, count),
            may_retry=may_retry,
            retries=self._ambiguous_retries,
        )
        leftover_fate, leftover_reason = Fate.RETRY, ""
        bug: PolyvContractViolation | None = None
        try:
            sender.send(group)
        except PolyvQuotaSpent:
            logger.warning("Polyv says today's quota is spent: marking the day exhausted", extra={"day": day})
            self._mark_exhausted(day)
            leftover_fate, leftover_reason = Fate.OVER_QUOTA, OVER_QUOTA_REASON
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

        for claim in group:
            if claim.file in sender.submitted:
                task_id, call_no = sender.submitted[claim.file]
                report.results.append(
                    FileResult(claim.request, Fate.SUBMITTED, file=claim.file, task_id=task_id, call=call_no)
                )
            elif claim.file in sender.rejected:
                report.results.append(
                    FileResult(
                        claim.request, Fate.REJECTED, file=claim.file, reason=sender.rejected[claim.file]
                    )
                )
            else:
                report.results.append(
                    FileResult(claim.request, leftover_fate, file=claim.file, reason=leftover_reason)
                )
        # Quota for files Polyv certainly did not take goes back; files in doubt stay counted.
        self._release(day, sender.unused_quota(len(group)))
        if bug is not None:
            raise bug  # fail the invocation loudly: this is a defect, not a data or service error
        return leftover_fate is not Fate.OVER_QUOTA

    def _release(self, day: str, count: int) -> None:
        try:
            self._quota.release(day, count)
        except QuotaStoreUnavailable as exc:
            # Over-counting is safe; the day's count is only too high until it resets.
            logger.error("could not release unused quota", extra={"count": count, "error": str(exc)})

    def _mark_exhausted(self, day: str) -> None:
        try:
            self._quota.mark_exhausted(day, self._limit)
        except QuotaStoreUnavailable as exc:
            logger.error("could not mark the day exhausted", extra={"error": str(exc)})
