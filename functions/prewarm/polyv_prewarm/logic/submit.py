"""The use case "prewarm these files": plan -> claim and count -> call Polyv -> record, chunk by chunk.

Every chunk of at most 100 files lives through one claim (docs/ledger.md draws it as a state
diagram), read top to bottom in :meth:`SubmitFiles._run_chunk`: the claim counts the files and
leases them to this invocation until its deadline; the calls follow (:mod:`.sender`); the record
is written in a ``finally``, so whatever ends the calls (an answer, a fault, the deadline, an
exception nobody expected) every claimed file is recorded as submitted, rejected, in doubt or
handed back. If the process dies before that, the lease ends with the invocation and the claims
are in doubt: claimable again, counted again (the counter over-counts, never under-counts).

The daily drain (:mod:`.drain`) submits through the same :meth:`SubmitFiles.submit`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.breaker import BreakerState
from ..domain.claims import ClaimRequest, Decision, decide
from ..domain.model import Fate, FileRef, FileRequest, FileResult, Lease, LedgerEntry, Report, Tier, epoch_ms
from ..domain.plan import RequestedFile, build_plan, chunk, clean_first
from ..domain.policy import Deadline, Policy
from ..domain.ports import (
    Backlog,
    ClaimResult,
    DayLedger,
    PolyvBreaker,
    PolyvGateway,
    Settlement,
    StoreUnavailable,
)
from ..domain.quotaday import quota_day
from .run import (
    IN_DOUBT_REASON,
    SUSPECT_REASON,
    Gate,
    Leftovers,
    Resends,
    Run,
    finish,
    new_run,
    result,
    unclaimable,
)
from .sender import NOT_ENDED, OUT_OF_TIME, ChunkOutcome, ChunkSender

logger = Logger(service=SERVICE, child=True)

DEFERRED_REASON = "today's Polyv quota is spent: deferred to the next quota day"
HELD_BACK_REASON = "a tight day: held back for the main definitions, sent by the late sweep or a later drain"
#: A lease outlives its invocation's deadline by this much: clocks of two hosts may differ a little.
LEASE_GRACE = timedelta(seconds=30)
#: A record that fails is tried again this often, while more than RECORD_RESERVE are left.
RECORD_ATTEMPTS = 8
RECORD_RESERVE = timedelta(seconds=2)
#: A bitrate Polyv said does not exist may be asked again this long after (its transcoding may
#: still run), or at once by an event that names it (a callback's df, an explicit brIndex).
BITRATE_RETRY_AFTER = timedelta(minutes=30)


class After(Enum):
    """What a chunk leaves for the rest of its run."""

    GO_ON = "the next chunk may be claimed"
    NO_QUOTA = "the day's quota is spent: the rest finds no room"
    STOPPED = "the run stopped calling Polyv (run.stopped says why)"


class SubmitFiles:
    def __init__(
        self,
        *,
        polyv: PolyvGateway,
        ledger: DayLedger,
        backlog: Backlog,
        breaker: PolyvBreaker,
        policy: Policy,
        clock: Callable[[], datetime],
        backoff: Callable[[int], float],
        sleep: Callable[[float], None] = time.sleep,
        new_owner: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        """The ports, the policy (from ``config.Settings``), the clock, and how to wait between
        tries of a record or a re-send (the Polyv client's back-off)."""
        self.polyv = polyv
        self.ledger = ledger
        self.backlog = backlog
        self.breaker = breaker
        self.policy = policy
        self.clock = clock
        self._backoff = backoff
        self._sleep = sleep
        self._new_owner = new_owner

    def today(self) -> str:
        return quota_day(self.clock(), self.policy.timezone)

    def userid(self) -> str:
        return self.polyv.userid()

    def deadline(self, remaining_ms: float | None) -> Deadline:
        """An invocation's deadline from the time it has left (Lambda's), or the longest one."""
        now = self.clock()
        return Deadline.default(now) if remaining_ms is None else Deadline.after(now, remaining_ms)

    # -- the main path --------------------------------------------------------------------------
    def prewarm(
        self,
        requests: Sequence[FileRequest],
        *,
        dry_run: bool = False,
        force: bool = False,
        deadline: Deadline | None = None,
        priority_high: bool = False,
    ) -> Report:
        """``priority_high`` (a person's request): may use the MANUAL_RESERVE of the day's quota,
        which automatic traffic leaves alone. On a tight day, a video's other definitions wait in
        the backlog for what its main definitions leave (``domain/outlook.py``)."""
        plan = build_plan(requests, self.polyv.userid())
        limit = self.policy.limit(priority_high=priority_high, now=self.clock())
        run = new_run(self.policy, deadline or self.deadline(None), limit=limit)
        run.report.results += plan.decided
        run.report.dry_run = dry_run
        if dry_run:
            self._dry_run(plan.unique, run.report, force=force, limit=limit)
        else:
            forced = frozenset(u.file for u in plan.unique) if force else frozenset()
            place = Placing(run.report, forced, priority_high)
            now_first, later = self._by_rank(plan.unique, run, taken_as_asked=force or priority_high)
            fresh_first_rank = [u.file for u in now_first if self._first_rank(u)]
            leftovers = self.submit(now_first, run, forced=forced, first_rank=fresh_first_rank)
            self._defer(leftovers.no_quota, place)
            self._defer(later, place, reason=HELD_BACK_REASON, tier=Tier.LATER)
            self._resend_or_defer(leftovers.in_doubt, run, place)
            self._defer(leftovers.answered_in_doubt, place, reason=IN_DOUBT_REASON, tier=Tier.RESEND)
            self._defer_suspects(leftovers, place)
            self._park(leftovers, run, place)
        finish(run.report, "prewarm finished", ledger=self.ledger, policy=self.policy, now=self.clock())
        return run.report

    def _first_rank(self, wanted: RequestedFile) -> bool:
        return self.policy.first_rank(wanted.file.br_index, explicit=wanted.request.explicit)

    def _by_rank(
        self, files: Sequence[RequestedFile], run: Run, *, taken_as_asked: bool
    ) -> tuple[list[RequestedFile], list[RequestedFile]]:
        """What to claim now, and the other definitions to hold back: only on a tight day, when
        the surplus cannot take them all (a forced or a person's priority request: all now)."""
        first = [u for u in files if self._first_rank(u)]
        later = [u for u in files if not self._first_rank(u)]
        if not later or taken_as_asked:
            return list(files), []
        surplus = self.surplus(run, asking=len(first))
        if surplus is not None and surplus >= len(later):
            return list(files), []
        logger.info(
            "a tight day: holding a video's other definitions back for its main ones",
            extra={"main": len(first), "held_back": len(later), "surplus": surplus},
        )
        return first, later

    def surplus(self, run: Run, *, asking: int) -> int | None:
        """Units of the run's limit no first-rank file of today is expected to need, ``asking``
        more first-rank files included (``domain/outlook.py``); None when the counter is unreadable."""
        now = self.clock()
        try:
            outlook = self.ledger.outlook(quota_day(now, self.policy.timezone))
        except StoreUnavailable as exc:
            logger.warning("day's counter unreadable: taking the day as tight", extra={"error": str(exc)})
            return None
        return outlook.surplus(run.limit, now, self.policy.day_ends(now), asking=asking)

    def _resend_or_defer(self, in_doubt: Sequence[RequestedFile], run: Run, place: Placing) -> None:
        """Files the claim found in doubt (their call may have reached Polyv): re-sent now only
        from the day's surplus, else they wait as resends, after every never-sent file."""
        if not in_doubt:
            return
        surplus = self.surplus(run, asking=0) if run.resends is Resends.FROM_SURPLUS else None
        if run.resends is Resends.ALWAYS or (surplus is not None and surplus >= len(in_doubt)):
            more = self.submit(in_doubt, run, forced=place.forced, resend=True)
            self._defer(
                more.no_quota + more.answered_in_doubt, place, reason=IN_DOUBT_REASON, tier=Tier.RESEND
            )
            self._defer_suspects(more, place)
            self._park(more, run, place)
            return
        self._defer(in_doubt, place, reason=IN_DOUBT_REASON, tier=Tier.RESEND)

    def _defer_suspects(self, leftovers: Leftovers, place: Placing) -> None:
        """Files of refused calls left unsplit, and the files of their messages not sent apart: to
        the suspect tier, whose drains isolate them on a budget of their own."""
        for reason, files in _by_reason(leftovers.unisolated).items():
            self._defer(files, place, reason=f"{reason}: a suspect, for the drains", tier=Tier.SUSPECT)
        self._defer(leftovers.apart, place, reason=SUSPECT_REASON, tier=Tier.SUSPECT)

    def _park(self, leftovers: Leftovers, run: Run, place: Placing) -> None:
        """What a stopped run did not send waits in the backlog for the recovery drain (files in
        doubt as resends)."""
        if not (leftovers.parked or leftovers.parked_in_doubt):
            return
        retry_at = run.retry_at or self.clock()
        why = f"{run.stopped}: waits in the backlog, sent again from {retry_at:%H:%M:%S} UTC"
        self._defer(leftovers.parked, place, reason=why, retry_at=retry_at)
        self._defer(leftovers.parked_in_doubt, place, reason=why, retry_at=retry_at, tier=Tier.RESEND)

    def submit(
        self,
        files: Sequence[RequestedFile],
        run: Run,
        *,
        forced: Collection[FileRef] = (),
        limit: int | None = None,
        resend: bool = False,
        first_rank: Collection[FileRef] = (),
    ) -> Leftovers:
        """Claim, send and record ``files`` chunk by chunk; every file gets exactly one result in
        ``run.report``, except the :class:`~.run.Leftovers` (not sent, not counted, or in doubt),
        which the caller places. ``forced`` files are sent even if they were settled today;
        ``limit``: claim within it rather than the run's (a priority file in a drain); ``resend``:
        files in doubt are claimed too; ``first_rank``: fresh first-rank files (the day's rate)."""
        leftovers = Leftovers()
        after = After.GO_ON
        claims = _Claims(forced, frozenset(first_rank), resend)  # once: a set of the whole request
        if files and run.gate is Gate.UNASKED:
            self._ask_the_breaker(run)
        for group, suspect in clean_first(files, run.suspects):
            if suspect and (run.parking or after is After.NO_QUOTA or run.bisection_calls_left <= 0):
                leftovers.apart += group  # no call: the suspect tier
            elif run.parking:
                leftovers.parked += group
            elif run.stopped is not None:
                _hand_back(group, run.stopped, run.report)
            elif after is After.NO_QUOTA:
                leftovers.no_quota += group
            elif not self.time_for_a_call(run):
                run.stop(OUT_OF_TIME, park_until=self.clock())
                leftovers.parked += group
            else:
                after = self._run_chunk(group, run, claims, leftovers, limit or run.limit)
        return leftovers

    def _ask_the_breaker(self, run: Run) -> None:
        """Polyv known to be down: park at once (nothing is claimed, nothing is called), unless
        this run wins the one probe. A breaker that cannot be read is taken as closed (the claim
        then meets the same store, and stops the run if it is down)."""
        now = self.clock()
        try:
            state = self.breaker.state()
            if not state.open:
                run.gate = Gate.CLOSED
                return
            if not state.waiting(now) and self.breaker.try_probe(self._new_owner(), now=now):
                run.gate = Gate.PROBE
                logger.info("Polyv was down: probing with this run's first call")
                return
        except StoreUnavailable as exc:
            logger.warning("Polyv's breaker unreadable: calling Polyv", extra={"error": str(exc)})
            run.gate = Gate.CLOSED
            return
        since = state.down_since or now.isoformat()
        run.gate = Gate.CLOSED
        run.stop(f"Polyv unavailable since {since[:19]}Z", park_until=state.retry_at(now))
        run.report.polyv_down_since = since
        run.report.polyv_down_minutes = state.down_for(now).total_seconds() / 60

    def time_for_a_call(self, run: Run) -> bool:
        """Whether the run has time for one more Polyv call, its attempts included."""
        return run.deadline.left(self.clock()) >= self.policy.min_time_per_call

    def _wait_before_resend(self, resend: int) -> None:
        self._sleep(self._backoff(resend))

    # -- one chunk ------------------------------------------------------------------------------
    def _run_chunk(
        self,
        group: Sequence[RequestedFile],
        run: Run,
        claims: _Claims,
        leftovers: Leftovers,
        limit: int,
    ) -> After:
        """One chunk: claim -> send -> record, whatever ends the calls."""
        day = self.today()  # the day of each chunk: an invocation may outlive midnight
        lease = Lease.until(self._new_owner(), run.deadline.at + LEASE_GRACE)
        by_file = {u.file: u for u in group}
        claimed = self._claim(day, by_file, lease, run, claims, limit)
        if claimed is None:
            return After.STOPPED
        leftovers.no_quota += [by_file[f] for f in claimed.no_room]
        leftovers.in_doubt += [by_file[f] for f in claimed.in_doubt]
        if claims.resend:
            run.report.resent_in_doubt += len(claimed.granted)
        if not claimed.granted:
            return After.NO_QUOTA if claimed.no_room else After.GO_ON
        budget = _Budget(
            self.ledger,
            day,
            run,
            limit,
            fits=lambda: self.time_for_a_call(run),
            wait=self._wait_before_resend,
            may_resend=lambda files: self._may_resend_now(run, files),
        )
        sender = ChunkSender(
            self.polyv,
            budget,
            [by_file[f] for f in claimed.granted],
            today=self.today,
            bisection_calls=self.policy.bisection_calls_per_chunk,
        )
        try:
            sender.send()
        finally:  # on every exit, KeyboardInterrupt included; a killed process leaves the lease
            outcome = sender.outcome
            unsent = self._record(day, outcome, lease, run, leftovers)
        self._tell_the_breaker(outcome, run)
        if outcome.bug is not None:
            raise outcome.bug  # fail the invocation loudly: a defect, not a data or service error
        if outcome.stop is not None:
            return self._after_stop(day, outcome, unsent, run, leftovers)
        return After.NO_QUOTA if claimed.no_room else After.GO_ON

    def _tell_the_breaker(self, outcome: ChunkOutcome, run: Run) -> None:
        """A call found Polyv down: open (or keep open) the breaker. A probe that Polyv answered,
        whatever it answered: close it."""
        down = outcome.stop is not None and outcome.stop.polyv_down
        answered = bool(outcome.accepted or outcome.rejected or outcome.unisolated) or (
            outcome.stop is not None and outcome.stop is not NOT_ENDED and not outcome.stop.park
        )
        try:
            if down:
                now = self.clock()
                state = self.breaker.failed(now=now)
                run.report.polyv_down_since = state.down_since
                run.report.polyv_down_minutes = state.down_for(now).total_seconds() / 60
            elif run.gate is Gate.PROBE and answered:
                self.breaker.recovered()
                run.gate = Gate.CLOSED
                logger.info("Polyv answers again: breaker closed")
        except StoreUnavailable as exc:
            logger.warning("could not update Polyv's breaker", extra={"error": str(exc)})

    def _may_resend_now(self, run: Run, files: int) -> bool:
        """Whether a call of unknown outcome may be sent again in this run (counted again)."""
        if run.resends is Resends.ALWAYS:
            return True
        if run.resends is Resends.NEVER:
            return False
        surplus = self.surplus(run, asking=0)
        return surplus is not None and surplus >= files

    def _claim(
        self,
        day: str,
        by_file: dict[FileRef, RequestedFile],
        lease: Lease,
        run: Run,
        claims: _Claims,
        limit: int,
    ) -> ClaimResult | None:
        """Claim and count the chunk's files; report those that cannot be claimed now. None when the
        ledger is unavailable: the whole run stops and the chunk is handed back."""
        group = list(by_file.values())
        now = self.clock()
        try:
            claimed = self.ledger.claim(
                day,
                [(u.file, u.request.origin.describe()) for u in group],
                limit,
                lease=lease,
                now=now,
                forced=[u.file for u in group if u.file in claims.forced],
                explicit=[u.file for u in group if u.request.explicit],
                resend=claims.resend,
                first_rank=[u.file for u in group if u.file in claims.first_rank],
            )
        except StoreUnavailable as exc:
            logger.error("ledger unavailable: sending nothing unaccounted", extra={"error": str(exc)})
            run.stop("quota ledger unavailable")
            _hand_back(group, "quota ledger unavailable", run.report)
            return None
        for file, entry in {**claimed.known, **claimed.held}.items():
            run.report.results.append(unclaimable(by_file[file], entry, now))
        return claimed

    def _record(
        self, day: str, outcome: ChunkOutcome, lease: Lease, run: Run, leftovers: Leftovers
    ) -> list[RequestedFile]:
        """Write the chunk's record and report its files; returns the files certainly not sent.
        Files left unisolated go to the leftovers, with why."""
        retry_after_ms = epoch_ms(self.clock() + BITRATE_RETRY_AFTER)
        record = outcome.close(len(run.report.calls) + 1, retry_after_ms=retry_after_ms)
        self._settle_persistently(day, record.settlement, lease, run.deadline)
        self._carry_over_late_answers(day, outcome)
        run.report.calls += record.calls
        run.report.results += record.results
        run.report.refused_by_polyv |= outcome.rejected.keys() - outcome.refused_for_now
        refused = outcome.rejected.keys() | outcome.unisolated.keys()
        run.suspects |= {u.request.origin for u in outcome.granted if u.file in refused}
        leftovers.parked += record.parked
        leftovers.parked_in_doubt += record.parked_in_doubt
        leftovers.answered_in_doubt += record.in_doubt
        leftovers.unisolated += record.unisolated
        return record.unsent

    def _after_stop(
        self, day: str, outcome: ChunkOutcome, unsent: list[RequestedFile], run: Run, leftovers: Leftovers
    ) -> After:
        """Route a chunk whose calls ended early."""
        stop = outcome.stop
        assert stop is not None
        if stop.quota_spent:
            run.polyv_spent = True
            if not run.beyond_count:  # asking beyond the count, the caller decides when to end
                self.mark_exhausted(day)
            leftovers.no_quota += unsent
            return After.NO_QUOTA
        if stop.park:
            state = self._breaker_state() if stop.polyv_down else None
            run.stop(stop.reason, park_until=state.retry_at(self.clock()) if state else self.clock())
            return After.STOPPED
        if stop.whole_run:
            run.stop(stop.reason)
            return After.STOPPED
        if not stop.answered_in_doubt:  # an answer of unknown meaning is no refusal of the files
            leftovers.refused.update({u.file: stop.reason for u in unsent})
        return After.GO_ON

    def _settle_persistently(
        self, day: str, settlement: Settlement, lease: Lease, deadline: Deadline
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
                if deadline.left(self.clock()) - timedelta(seconds=pause) < RECORD_RESERVE:
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
            if (handled := _handled(wanted, entries, now, force=force)) is not None:
                report.results.append(handled)
            elif len(to_send) < room:
                to_send.append(wanted)
            else:
                report.results.append(result(wanted, Fate.DEFERRED, DEFERRED_REASON))
        for call_no, group in enumerate(chunk(to_send), 1):
            report.results += [FileResult(u.request, Fate.PLANNED, file=u.file, call=call_no) for u in group]

    def _defer(
        self,
        requested: Sequence[RequestedFile],
        place: Placing,
        *,
        reason: str = DEFERRED_REASON,
        retry_at: datetime | None = None,
        tier: Tier = Tier.NORMAL,
    ) -> None:
        """Store files that were not sent in the backlog, in ``tier`` (for the drains; or, with
        ``retry_at``, waiting for the recovery drain), except those that turn out to be handled
        today already (duplicate) or held by another invocation (handed back). They keep their
        origin, their force and their priority."""
        if not requested:
            return
        report, forced = place.report, place.forced
        waiting = self._not_handled_today([u for u in requested if u.file not in forced], report)
        waiting += [u for u in requested if u.file in forced]
        if not waiting:
            return
        stored = 0
        try:
            for force in (False, True):  # a forced file keeps its force in the backlog
                files = [
                    (u.file, u.request.origin.describe()) for u in waiting if (u.file in forced) is force
                ]
                if files:
                    stored += self.backlog.defer(
                        files,
                        now=self.clock(),
                        force=force,
                        priority_high=place.priority_high,
                        retry_at=retry_at,
                        reason=reason if retry_at is not None else None,
                        tier=tier,
                    )
        except StoreUnavailable as exc:
            logger.error("backlog unavailable: handing deferred files back", extra={"error": str(exc)})
            _hand_back(waiting, "backlog unavailable", report)
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
        report.results += [result(u, Fate.DEFERRED, reason) for u in waiting]
        if tier is Tier.SUSPECT:
            report.suspects |= {u.file for u in waiting}

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
            if (handled := _handled(wanted, entries, now)) is not None:
                report.results.append(handled)
            else:
                waiting.append(wanted)
        return waiting

    def _breaker_state(self) -> BreakerState | None:
        try:
            return self.breaker.state()
        except StoreUnavailable:
            return None

    def mark_exhausted(self, day: str) -> None:
        logger.warning("Polyv says today's quota is spent: marking the day exhausted", extra={"day": day})
        try:
            self.ledger.mark_exhausted(day, self.policy.daily_limit)
        except StoreUnavailable as exc:
            logger.error("could not mark the day exhausted", extra={"error": str(exc)})


class _Claims(NamedTuple):
    """How a submission's chunks claim: forced files, fresh first-rank ones, and resends."""

    forced: Collection[FileRef]
    first_rank: frozenset[FileRef]
    resend: bool


class Placing(NamedTuple):
    """Where a prewarm's unsent files are placed from: its report, its forced files, its priority."""

    report: Report
    forced: Collection[FileRef]
    priority_high: bool


class _Budget:
    """A chunk's :class:`~.sender.CallBudget`: the run's deadline and bisection budget, and the
    day's counter for re-sending a call of unknown outcome (after a back-off)."""

    def __init__(
        self,
        ledger: DayLedger,
        day: str,
        run: Run,
        limit: int,
        *,
        fits: Callable[[], bool],
        wait: Callable[[int], None],
        may_resend: Callable[[int], bool],
    ) -> None:
        self._ledger = ledger
        self._day = day
        self._run = run
        self._limit = limit
        self._fits = fits
        self._wait = wait
        self._may_resend = may_resend

    def time_for_a_call(self) -> bool:
        return self._fits()

    def count_again(self, files: int, resend: int) -> bool:
        if not self._may_resend(files):  # never-sent files need the day's quota more
            return False
        self._wait(resend)
        return self._ledger.reserve_extra(self._day, files, self._limit)

    def take_bisection_call(self) -> bool:
        return self._run.take_bisection_call()


def _handled(
    wanted: RequestedFile, entries: Mapping[FileRef, LedgerEntry], now: datetime, *, force: bool = False
) -> FileResult | None:
    """The file's result when its ledger entry says it cannot be claimed now (settled today, or
    held by another invocation); None when it may be sent or wait (in doubt included: a resend)."""
    entry = entries.get(wanted.file)
    claim = ClaimRequest(force=force, explicit=wanted.request.explicit, resend=True)
    if entry is not None and decide(entry, now, claim) is not Decision.CLAIM:
        return unclaimable(wanted, entry, now)
    return None


def _hand_back(group: Sequence[RequestedFile], reason: str, report: Report) -> None:
    report.results += [result(u, Fate.HANDED_BACK, reason) for u in group]


def _by_reason(files: Sequence[tuple[RequestedFile, str]]) -> dict[str, list[RequestedFile]]:
    grouped: dict[str, list[RequestedFile]] = {}
    for requested, reason in files:
        grouped.setdefault(reason, []).append(requested)
    return grouped
