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

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.breaker import BreakerState
from ..domain.claims import in_doubt
from ..domain.model import (
    BacklogFigures,
    DeferredFile,
    Fate,
    FileRef,
    FileRequest,
    LedgerEntry,
    Origin,
    QuotaView,
    Report,
    Tier,
)
from ..domain.outlook import DayOutlook
from ..domain.plan import MAX_FILES_PER_CALL, RequestedFile
from ..domain.policy import Deadline, Policy
from ..domain.ports import Backlog, DayLedger, PolyvBreaker, StoreUnavailable
from ..domain.quotaday import quota_day
from .run import (
    IN_DOUBT_REASON,
    SUSPECT_REASON,
    Leftovers,
    Resends,
    Run,
    Submits,
    finish,
    new_run,
    result,
    usage,
)
from .sender import OUT_OF_TIME

logger = Logger(service=SERVICE, child=True)

STILL_DEFERRED_REASON = "today's Polyv quota is spent: stays in the backlog"
DONE = (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE)  # leave the backlog
#: A deferred file whose drained call Polyv refused with an unknown error this often is parked.
PARK_AFTER_FAILURES = 3
#: A suspect refused this often in calls with other suspects, never isolated, is rejected with its
#: reason (docs/ledger.md, "Suspects"): at one slice a drain, the oldest 100 suspects are given
#: up after three drains (15 minutes of recovery drains), having been tried in three calls and
#: split within SUSPECT_BISECTION_CALLS each time.
SUSPECT_MAX_REFUSALS = 3
#: What a drain spends on the suspect tier, whatever else it does: one slice of this many files,
#: and this many bisection calls (at most 1 + 8 Polyv calls a drain, ~108 an hour of recovery
#: drains, far below Polyv's 1,500 requests per 10 s). Clean tiers are drained first.
SUSPECT_SLICE, SUSPECT_BISECTION_CALLS = 100, 8


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
        sweep: bool = False,
        deadline: Deadline | None = None,
        slice_size: int = 100,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """The morning drain: expire, then the never-sent files, then the held-back definitions
        from what yesterday's main definitions say today will not need. A late sweep
        (``sweep``, from RESERVE_RELEASE_AT on): every tier, the reserve included, backfill and
        resends only beyond what fresh traffic is expected to need until midnight. Slice by slice,
        until the quota, the backlog or the time runs out; ``on_slice`` after every slice."""
        policy = self._policy
        now = self._clock()
        run = self._new_run(now, deadline, Resends.NEVER)
        if not sweep:
            self._expire(run.report)
            run.report.day_closed = self._day_closed(now)
        for tier, limit in self._tier_limits(run, now, sweep=sweep):
            run.resends = Resends.ALWAYS if tier is Tier.RESEND else Resends.NEVER
            if not self._drain_tier(tier, limit, run, slice_size, on_slice):
                break
        if sweep and run.stopped is None:
            self._ask_beyond_the_count(run, on_slice)
        message = "late sweep finished" if sweep else "drain finished"
        finish(run.report, message, ledger=self._ledger, policy=policy, now=self._clock())
        run.report.backlog = self._figures()
        return run.report

    def _new_run(self, now: datetime, deadline: Deadline | None, resends: Resends) -> Run:
        """A drain's run: automatic traffic's limit (the reserve until its release), no priority."""
        limit = self._policy.limit(priority_high=False, now=now)
        return new_run(self._policy, deadline or Deadline.default(now), limit=limit, resends=resends)

    def _tier_limits(self, run: Run, now: datetime, *, sweep: bool) -> list[tuple[Tier, int]]:
        """Each tier this drain spends, with the count of the day's counter it may claim up to."""
        if not sweep:
            expected = self._outlook(quota_day(now - timedelta(days=1), self._policy.timezone)).first_rank
            later = max(0, run.limit - expected)
            return [(Tier.NORMAL, run.limit), (Tier.LATER, later), (Tier.SUSPECT, later)]
        today = self._outlook(quota_day(now, self._policy.timezone))
        # whole files: at the day's last sweep, less than one expected file holds nothing back
        margin = math.floor(today.expected_rest(now, self._policy.day_ends(now), asking=0))
        fresh_first = max(0, run.limit - margin)
        return [
            (Tier.NORMAL, run.limit),
            (Tier.LATER, run.limit),
            (Tier.SUSPECT, run.limit),  # never sent (a refused call costs nothing), on its budget
            (Tier.BACKFILL, fresh_first),
            (Tier.RESEND, fresh_first),
        ]

    def _ask_beyond_the_count(self, run: Run, on_slice: Callable[[Report], None] | None) -> None:
        """The day's count is at the limit but Polyv has confirmed fewer files (the rest are
        calls in doubt, which Polyv may never have taken): ask Polyv itself for what the count
        holds back, at no risk, since Polyv refuses a call over its daily limit whole and charges
        nothing. Backlog files in its order (never-sent first, in doubt last), calls of at most
        ``limit - confirmed`` files, halved after each refusal for the daily limit, until a call
        of one file is refused: at most log2(100) + 1 refused calls a day, then the day is
        marked spent (docs/ledger.md, "Every spare unit spent")."""
        size = MAX_FILES_PER_CALL
        run.beyond_count = True
        try:
            while run.stopped is None and self._submit.time_for_a_call(run):
                view = usage(self._ledger, self._policy, self._submit.today())
                if view.exhausted or view.remaining > 0:
                    return
                room = view.limit - self._ledger.confirmed(view.day)  # what Polyv may have left, at most
                if room <= 0:
                    return
                batch, tier = self._never_sent_first(min(size, room))
                if not batch:
                    return
                run.polyv_spent = False
                run.resends = Resends.ALWAYS if tier is Tier.RESEND else Resends.NEVER
                beyond, first = view.used + len(batch), len(run.report.results)
                self._drain_slice(batch, run, limit=beyond, urgent_limit=beyond, resend=tier is Tier.RESEND)
                if on_slice is not None:
                    on_slice(run.report)
                moved = any(r.fate in DONE for r in run.report.results[first:])
                if not run.polyv_spent and not moved:
                    return  # held by another invocation, or in doubt: the next sweep asks again
                if run.polyv_spent:
                    if len(batch) == 1:
                        self._submit.mark_exhausted(view.day)
                        return
                    size = max(1, len(batch) // 2)
        except StoreUnavailable as exc:
            logger.warning("could not ask beyond the count", extra={"error": str(exc)})
        finally:
            run.beyond_count = False

    def _never_sent_first(self, size: int) -> tuple[list[DeferredFile], Tier]:
        """The first ``size`` drainable files of the backlog's tiers in their order, suspects
        aside (they have a budget of their own): never-sent files first, in doubt last."""
        for tier in (Tier.NORMAL, Tier.LATER, Tier.BACKFILL, Tier.RESEND):
            batch = (
                self._backlog.newest(size, tier=tier)
                if self._policy.drain_newest_first
                else self._backlog.oldest(size, tier=tier)
            )
            if batch:
                return batch, tier
        return [], Tier.RESEND

    def _outlook(self, day: str) -> DayOutlook:
        try:
            return self._ledger.outlook(day)
        except StoreUnavailable as exc:
            logger.warning("day's counter unreadable: taking its rate as nil", extra={"error": str(exc)})
            return DayOutlook()

    def _day_closed(self, now: datetime) -> QuotaView | None:
        """The quota day that just ended, as it ended (for QuotaUnused)."""
        try:
            day = quota_day(now - timedelta(days=1), self._policy.timezone)
            return usage(self._ledger, self._policy, day)._replace(confirmed=self._ledger.confirmed(day))
        except StoreUnavailable:
            return None

    def _drain_tier(
        self,
        tier: Tier,
        limit: int,
        run: Run,
        slice_size: int,
        on_slice: Callable[[Report], None] | None,
    ) -> bool:
        """Drain one tier up to ``limit``; False when the quota (or the run) is done."""
        if tier is Tier.SUSPECT:
            return self._drain_suspects(run, limit, on_slice)
        cursor: DeferredFile | None = None
        while run.stopped is None:
            batch = self._next_slice(run, slice_size, cursor, tier)
            if not batch:
                return run.stopped is None
            cursor = batch[-1]
            quota_left = self._drain_slice(batch, run, limit=limit, resend=tier is Tier.RESEND)
            if on_slice is not None:
                on_slice(run.report)
            if not quota_left:
                return False
        return False

    def _drain_suspects(self, run: Run, limit: int, on_slice: Callable[[Report], None] | None = None) -> bool:
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
        if not batch or not self._submit.time_for_a_call(run):
            return run.stopped is None
        budget = run.bisection_calls_left
        run.bisection_calls_left = min(budget, SUSPECT_BISECTION_CALLS)
        spent_before = run.bisection_calls_left
        try:
            quota_left = self._drain_slice(batch, run, limit=limit)
        finally:
            run.bisection_calls_left = budget - (spent_before - run.bisection_calls_left)
        if on_slice is not None:
            on_slice(run.report)
        return quota_left

    def _next_slice(self, run: Run, size: int, cursor: DeferredFile | None, tier: Tier) -> list[DeferredFile]:
        """The next files of ``tier`` in the drain order after ``cursor``; none when the run must stop."""
        if not self._submit.time_for_a_call(run):
            run.stop(OUT_OF_TIME)
            return []
        try:
            if self._policy.drain_newest_first:
                return self._backlog.newest(size, after=cursor, tier=tier)
            return self._backlog.oldest(size, after=cursor, tier=tier)
        except StoreUnavailable as exc:
            run.stop(f"backlog unavailable: {exc}")
            return []

    def recover(self, *, deadline: Deadline | None = None, slice_size: int = 100) -> Report:
        """The recovery drain (a schedule every few minutes): send the files waiting out an outage
        or a deadline, once their time has come and Polyv's breaker lets a run call. Cheap when
        there is nothing to do: one read of the breaker, one query of the due files. Waiting
        files in doubt are re-sent only from the day's surplus, else they join the resend tier."""
        now = self._clock()
        run = self._new_run(now, deadline, Resends.FROM_SURPLUS)
        report = run.report
        try:
            state = self._breaker.state()
        except StoreUnavailable as exc:
            run.stop(f"Polyv's breaker unreadable: {exc}")
            return report
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
            if not self._drain_slice(batch, run, limit=run.limit, waiting=True):
                break
        if run.stopped is None:  # isolation goes on through the day, one bounded slice a drain
            self._drain_suspects(run, run.limit)
        if report.results:
            finish(
                report, "recovery drain finished", ledger=self._ledger, policy=self._policy, now=self._clock()
            )
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

    def _drain_slice(
        self,
        batch: Sequence[DeferredFile],
        run: Run,
        *,
        limit: int,
        waiting: bool = False,
        resend: bool = False,
        urgent_limit: int | None = None,
    ) -> bool:
        """Submit one slice (its priority files within the whole limit or ``urgent_limit``, the
        rest within ``limit``)
        and update the backlog; False when the quota is spent, or the run stopped. Files in doubt
        (unless this is a resend) are re-sent only from the day's surplus by a run that may
        (the recovery drain's), else they move to the resend tier."""
        first = len(run.report.results)
        by_file = {d.file: d for d in batch}
        forced = frozenset(d.file for d in batch if d.force)
        wanted, doubtful = self._not_sent_since_deferral(batch, run.report, resend=resend)
        leftovers = self._submit_slice(
            wanted, by_file, run, forced=forced, limit=limit, resend=resend, urgent_limit=urgent_limit
        )
        doubtful += [by_file[u.file] for u in leftovers.in_doubt]
        leftovers.in_doubt = []
        if doubtful and run.resends is Resends.FROM_SURPLUS:
            surplus = self._submit.surplus(run, asking=0)
            if surplus is not None and surplus >= len(doubtful):
                again = [as_request(d) for d in doubtful]
                leftovers.extend(
                    self._submit_slice(again, by_file, run, forced=forced, limit=limit, resend=True)
                )
                doubtful = []
        doubtful += [by_file[u.file] for u in leftovers.answered_in_doubt]  # to the resends, not now
        run.report.results += [result(u, Fate.DEFERRED, STILL_DEFERRED_REASON) for u in leftovers.no_quota]
        self._place_suspects(leftovers, by_file, run)
        run.report.results += [result(as_request(d), Fate.DEFERRED, IN_DOUBT_REASON) for d in doubtful]
        if leftovers.parked or leftovers.parked_in_doubt:
            why = f"{run.stopped}: waits in the backlog"
            parked = leftovers.parked + leftovers.parked_in_doubt
            run.report.results += [result(u, Fate.DEFERRED, why) for u in parked]
        done = [r.file for r in run.report.results[first:] if r.file and r.fate in DONE]
        self._update_backlog(done, leftovers, by_file, run, waiting=waiting, doubtful=doubtful)
        return not leftovers.no_quota and run.stopped is None

    def _place_suspects(self, leftovers: Leftovers, by_file: dict[FileRef, DeferredFile], run: Run) -> None:
        """Files of a refused call the bisection budget left unsplit: to the suspect tier, one
        more refusal each; rejected with their reason once they reach SUSPECT_MAX_REFUSALS. Files
        of a suspect message not sent at all: to the suspect tier, no refusal counted."""
        unisolated = [(by_file[u.file], u, why) for u, why in leftovers.unisolated if u.file in by_file]
        apart = [by_file[u.file] for u in leftovers.apart if u.file in by_file]
        counts: dict[FileRef, int] = {}
        try:
            if unisolated:
                counts = self._backlog.count_refusals([d for d, _, _ in unisolated], unisolated[0][2])
            moved = [d for d, _, _ in unisolated if d.tier is not Tier.SUSPECT and counts.get(d.file, 1)]
            moved += [d for d in apart if d.tier is not Tier.SUSPECT]
            self._backlog.move(moved, Tier.SUSPECT)
        except StoreUnavailable as exc:
            logger.error("could not count the suspects' refusals", extra={"error": str(exc)})
        for _, requested, why in unisolated:
            refusals = counts.get(requested.file, 0)
            if refusals >= SUSPECT_MAX_REFUSALS:
                reason = f"{why}: refused in {refusals} calls with other suspects, never isolated"
                run.report.results.append(result(requested, Fate.REJECTED, reason))
            else:
                run.report.results.append(result(requested, Fate.DEFERRED, f"{why}: a suspect"))
        run.report.results += [result(u, Fate.DEFERRED, SUSPECT_REASON) for u in leftovers.apart]

    def _submit_slice(
        self,
        wanted: Sequence[RequestedFile],
        by_file: dict[FileRef, DeferredFile],
        run: Run,
        *,
        forced: frozenset[FileRef],
        limit: int,
        resend: bool,
        urgent_limit: int | None = None,
    ) -> Leftovers:
        """The priority files within the whole limit (or ``urgent_limit``), then the rest within ``limit``."""
        urgent = [u for u in wanted if by_file[u.file].priority_high]
        leftovers = self._submit.submit(
            urgent, run, forced=forced, limit=urgent_limit or self._policy.daily_limit, resend=resend
        )
        rest = [u for u in wanted if not by_file[u.file].priority_high]
        leftovers.extend(self._submit.submit(rest, run, forced=forced, limit=limit, resend=resend))
        return leftovers

    def _update_backlog(
        self,
        done: list[FileRef],
        leftovers: Leftovers,
        by_file: dict[FileRef, DeferredFile],
        run: Run,
        *,
        waiting: bool,
        doubtful: Sequence[DeferredFile],
    ) -> None:
        """Remove the files that are done; count a failure for those Polyv refused (parking the
        ones that failed too often); the files a stopped run parked wait out the outage (or wait
        on, from the recovery drain); waiting files that found no quota today join the daily
        backlog; files found in doubt join the resends."""
        try:
            self._backlog.remove(done)
            if doubtful:
                self._backlog.move(doubtful, Tier.RESEND)
            if leftovers.parked_in_doubt:
                self._backlog.move([by_file[u.file] for u in leftovers.parked_in_doubt], Tier.RESEND)
            stopped = [by_file[u.file] for u in leftovers.parked]
            stopped += [by_file[u.file]._replace(tier=Tier.RESEND) for u in leftovers.parked_in_doubt]
            if stopped and run.retry_at is not None:
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
        """Drop deferred files older than BACKLOG_MAX_AGE_DAYS (backfilled ones: older than
        BACKFILL_MAX_AGE_DAYS), oldest first: a prewarm is worth most before viewers arrive, and
        little a week later. Each gets the fate ``expired``."""
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
                result(as_request(d), Fate.EXPIRED, f"deferred at {d.deferred_at}, {reason}") for d in batch
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

    def _not_sent_since_deferral(
        self, batch: Sequence[DeferredFile], report: Report, *, resend: bool
    ) -> tuple[list[RequestedFile], list[DeferredFile]]:
        """The slice's files, less those another path submitted on an earlier day after they were
        deferred (today's submissions are the claim's to find), and less those whose call of an
        earlier day may have reached Polyv (in doubt: unless this is a resend, they move to the
        resend tier; returned second). Forced files are sent whatever happened since."""
        wanted = [as_request(d) for d in batch]
        try:
            sent, doubtful = self._since_deferral(batch)
        except StoreUnavailable:
            return wanted, []  # the claim still stops what was sent today
        for requested in wanted:
            if requested.file in sent:
                reason = f"submitted since it was deferred (taskId {sent[requested.file].task_id})"
                report.results.append(result(requested, Fate.DUPLICATE, reason))
        if resend:
            doubtful = set()
        else:  # the resend tier's files are in doubt by what put them there
            doubtful |= {d.file for d in batch if d.tier is Tier.RESEND}
        by_file = {d.file: d for d in batch}
        moved = [by_file[f] for f in doubtful if f not in sent]
        return [u for u in wanted if u.file not in sent and u.file not in doubtful], moved

    def _since_deferral(
        self, batch: Sequence[DeferredFile]
    ) -> tuple[dict[FileRef, LedgerEntry], set[FileRef]]:
        """Files of ``batch`` submitted after their deferral, on a retained day before today; and
        those whose latest entry since then is in doubt (a call that may have reached Polyv)."""
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

    def _figures(self) -> BacklogFigures | None:
        try:
            return self._backlog.stats()
        except StoreUnavailable as exc:
            logger.warning(
                "backlog unreadable: the drain's summary has no backlog figures", extra={"error": str(exc)}
            )
            return None


def as_request(deferred: DeferredFile) -> RequestedFile:
    """A deferred file as the drain's request, with the message it first came in."""
    origin = Origin("backlog", message_id=deferred.origin or None)
    return RequestedFile(deferred.file, FileRequest(deferred.file.vid, deferred.file.br_index, origin))
