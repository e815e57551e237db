"""Placing a submission's files: the table of ``domain/placement.py`` applied to the report and
the backlog, for fresh traffic (:class:`FreshPlacement`) and for the drains
(:class:`DrainedPlacement`). Nothing here decides where a file goes; the table does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import Decision, FileClaim, decide
from ..domain.model import DeferredFile, Fate, FileRef, FileResult, LedgerEntry, Tier
from ..domain.placement import Action, Caller, Placed, Placement, placement
from ..domain.ports import Backlog, DayLedger, StoreUnavailable
from .run import Run, result, unclaimable

logger = Logger(service=SERVICE, child=True)

#: Leave the backlog: done.
DONE = (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE)
#: A deferred file whose drained call Polyv refused with an unknown error this often is parked.
PARK_AFTER_FAILURES = 3
#: A suspect refused this often in calls with other suspects, never isolated, is rejected with its
#: reason (docs/ledger.md, "Suspects"): at one slice a drain, the oldest 100 suspects are given
#: up after three drains (15 minutes of recovery drains), having been tried in three calls and
#: split within SUSPECT_BISECTION_CALLS each time.
SUSPECT_MAX_REFUSALS = 3


def stated(
    row: Placement, placed: Placed, stopped: str | None, retry_at: datetime | None = None
) -> str | None:
    """The reason a row states for a file (``stopped``: why its run stopped calling Polyv)."""
    if row.reason is None:
        return None
    when = f"{retry_at:%H:%M:%S}" if retry_at is not None else ""
    return row.reason.format(why=placed.reason or "", stopped=stopped, retry_at=when)


def file_result(placed: Placed, fate: Fate, reason: str | None) -> FileResult:
    claim = placed.claim
    return FileResult(
        claim.request, fate, file=claim.file, reason=reason, task_id=placed.task_id, call=placed.call
    )


class FreshPlacement:
    """A fresh request's files: results, and what was not sent stored in the backlog (each in the
    row's tier, waiting if the row says so), unless the ledger says it was handled today."""

    def __init__(
        self,
        *,
        ledger: DayLedger,
        backlog: Backlog,
        clock: Callable[[], datetime],
        today: Callable[[], str],
        priority_high: bool,
    ) -> None:
        self._ledger = ledger
        self._backlog = backlog
        self._clock = clock
        self._today = today
        self._priority_high = priority_high

    def place(self, placed: Sequence[Placed], run: Run) -> None:
        retry_at = run.retry_at or self._clock()
        deferrals: dict[tuple[Tier, bool, str | None], list[FileClaim]] = {}
        for p in placed:
            row = placement(p.disposition, Caller.PREWARM)
            if row.action is Action.NONE:
                run.report.results.append(fresh_result(p, run.stopped))
                continue
            waiting = row.action is Action.DEFER_WAITING
            reason = stated(row, p, run.stopped, retry_at if waiting else None)
            deferrals.setdefault((row.tier or Tier.NORMAL, waiting, reason), []).append(p.claim)
        for (tier, waiting, reason), claims in deferrals.items():
            self.defer(claims, run, reason=reason or "", tier=tier, retry_at=retry_at if waiting else None)

    def defer(
        self, claims: Sequence[FileClaim], run: Run, *, reason: str, tier: Tier, retry_at: datetime | None
    ) -> None:
        """Store files that were not sent in the backlog, in ``tier`` (for the drains; or, with
        ``retry_at``, waiting for the recovery drain), except those that turn out to be handled
        today already (duplicate) or held by another invocation (handed back). They keep their
        origin, their claim's force and explicitness, and the request's priority."""
        report = run.report
        waiting = self._not_handled_today([c for c in claims if not c.rule.force], run)
        waiting += [c for c in claims if c.rule.force]
        if not waiting:
            return
        try:
            stored = self._backlog.defer(
                waiting,
                now=self._clock(),
                priority_high=self._priority_high,
                retry_at=retry_at,
                reason=reason if retry_at is not None else None,
                tier=tier,
            )
        except StoreUnavailable as exc:
            logger.error("backlog unavailable: handing deferred files back", extra={"error": str(exc)})
            report.results += [result(c, Fate.HANDED_BACK, "backlog unavailable") for c in waiting]
            return
        logger.info(
            "deferred to the backlog",
            extra={
                "files": len(waiting),
                "new_in_backlog": stored,
                "waiting": retry_at is not None,
                "tier": tier.value,
            },
        )
        report.results += [result(c, Fate.DEFERRED, reason) for c in waiting]
        if tier is Tier.SUSPECT:
            report.suspects |= {c.file for c in waiting}

    def _not_handled_today(self, claims: Sequence[FileClaim], run: Run) -> list[FileClaim]:
        if not claims:
            return []
        try:
            entries = self._ledger.lookup(self._today(), [c.file for c in claims])
        except StoreUnavailable:
            return list(claims)  # defer them all: the drain checks the ledger again before sending
        now = self._clock()
        waiting = []
        for claim in claims:
            if (handled := handled_today(claim, entries, now)) is not None:
                run.report.results.append(fresh_result(handled, run.stopped))
            else:
                waiting.append(claim)
        return waiting


def handled_today(claim: FileClaim, entries: Mapping[FileRef, LedgerEntry], now: datetime) -> Placed | None:
    """The file's disposition when its ledger entry says it cannot be claimed now (settled
    today, or held by another invocation); None when it may be sent or wait (in doubt included:
    a resend)."""
    entry = entries.get(claim.file)
    if entry is not None and decide(entry, now, claim.rule._replace(resend=True)) is not Decision.CLAIM:
        return unclaimable(claim, entry, now)
    return None


def _in(deferred: DeferredFile, tier: Tier) -> bool:
    """Already drainable in ``tier``: no move needed."""
    return deferred.tier is tier and not deferred.waiting and not deferred.parked


def fresh_result(placed: Placed, stopped: str | None = None) -> FileResult:
    """The result of a fresh file that is not deferred (its row's action is none)."""
    row = placement(placed.disposition, Caller.PREWARM)
    return file_result(placed, row.fate, stated(row, placed, stopped))


class DrainedPlacement:
    """A drained slice's files: results, and the backlog's actions on the files it holds."""

    def __init__(self, backlog: Backlog, caller: Caller) -> None:
        self._backlog = backlog
        self._caller = caller

    def place(self, placed: Sequence[Placed], by_file: Mapping[FileRef, DeferredFile], run: Run) -> None:
        rows = [(p, placement(p.disposition, self._caller)) for p in placed]
        refusals = self._count_refusals([p for p, row in rows if row.action is Action.COUNT_REFUSAL], by_file)
        moves: dict[Tier, list[DeferredFile]] = {}
        for p, row in rows:
            fate, reason = row.fate, stated(row, p, run.stopped)
            if row.action is Action.COUNT_REFUSAL and refusals.get(p.claim.file, 0) >= SUSPECT_MAX_REFUSALS:
                n = refusals[p.claim.file]
                fate, reason = (
                    Fate.REJECTED,
                    f"{p.reason}: refused in {n} calls with other suspects, never isolated",
                )
            run.report.results.append(file_result(p, fate, reason))
            deferred = by_file[p.claim.file]
            if (
                row.action in (Action.MOVE, Action.WAIT)
                and row.tier is not None
                and not _in(deferred, row.tier)
            ):
                moves.setdefault(row.tier, []).append(deferred)
        self._update(rows, moves, by_file, run)

    def _count_refusals(
        self, unisolated: Sequence[Placed], by_file: Mapping[FileRef, DeferredFile]
    ) -> dict[FileRef, int]:
        """Files of a refused call the bisection budget left unsplit: one more refusal each, and
        to the suspect tier while they are still in the backlog."""
        if not unisolated:
            return {}
        deferred = [by_file[p.claim.file] for p in unisolated]
        try:
            counts = self._backlog.count_refusals(deferred, unisolated[0].reason or "")
            self._backlog.move(
                [d for d in deferred if d.tier is not Tier.SUSPECT and counts.get(d.file, 1)], Tier.SUSPECT
            )
        except StoreUnavailable as exc:
            logger.error("could not count the suspects' refusals", extra={"error": str(exc)})
            return {}
        return counts

    def _update(
        self,
        rows: Sequence[tuple[Placed, Placement]],
        moves: Mapping[Tier, Sequence[DeferredFile]],
        by_file: Mapping[FileRef, DeferredFile],
        run: Run,
    ) -> None:
        """Remove the files that are done; move the others the rows move (to the resends, to the
        suspects); the files a stopped run parked wait out the outage (in their row's tier); waiting
        files that found no quota today join the daily backlog; count a failure for those Polyv
        refused (parking the ones that failed too often)."""
        first = len(run.report.results) - len(rows)
        done = [r.file for r in run.report.results[first:] if r.file and r.fate in DONE]

        def having(action: Action) -> list[DeferredFile]:
            return [
                by_file[p.claim.file]._replace(tier=row.tier or by_file[p.claim.file].tier)
                for p, row in rows
                if row.action is action
            ]

        try:
            self._backlog.remove(done)
            for tier, files in moves.items():
                self._backlog.move(files, tier)
            if (waiting := having(Action.WAIT)) and run.retry_at is not None:
                self._backlog.wait(waiting, retry_at=run.retry_at, reason=str(run.stopped)[:200])
            if to_daily := having(Action.TO_DAILY):
                self._backlog.to_daily(to_daily)
            self._record_failures([p for p, row in rows if row.action is Action.COUNT_FAILURE], by_file)
        except StoreUnavailable as exc:
            # They stay in the backlog; the ledger knows they are done, so the next drain skips
            # them as duplicates and removes them then.
            logger.error("could not update the backlog after a drained slice", extra={"error": str(exc)})

    def _record_failures(self, refused: Sequence[Placed], by_file: Mapping[FileRef, DeferredFile]) -> None:
        if not refused:
            return
        error = refused[0].reason or ""
        parked = self._backlog.record_failure(
            [by_file[p.claim.file] for p in refused], error, park_after=PARK_AFTER_FAILURES
        )
        if parked:
            logger.error(
                "parked backlog files that Polyv refused in several drains",
                extra={"files": [f.key for f in parked[:20]], "count": len(parked), "error": error},
            )
