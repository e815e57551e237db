"""One chunk's life: claim -> send -> settle -> carry-over, whatever ends the calls.

Every chunk of at most 100 files lives through one claim (docs/ledger.md draws it as a state
diagram), read top to bottom in :meth:`ChunkLife.live`: the claim counts the files and leases
them to this invocation until its deadline; the calls follow (:mod:`.sender`); the record is
written in a ``finally``, so whatever ends the calls (an answer, a fault, the deadline, an
exception nobody expected) every claimed file is recorded as submitted, rejected, in doubt or
handed back. If the process dies before that, the lease ends with the invocation and the claims
are in doubt: claimable again, counted again (the counter over-counts, never under-counts).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import FileClaim
from ..domain.model import FileRef, Lease, Stopped, epoch_ms
from ..domain.placement import Disposition, Placed
from ..domain.policy import Policy
from ..domain.ports import ClaimResult, DayLedger, PolyvBreaker, PolyvGateway, Settlement, StoreUnavailable
from ..domain.quota import Resends
from ..domain.quotaday import quota_day
from .run import Gate, Run, mark_exhausted, may_resend_now, unclaimable
from .sender import NOT_ENDED, ChunkOutcome, ChunkSender

logger = Logger(service=SERVICE, child=True)

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


class Ports(NamedTuple):
    """What a submission works with: the ports, the policy, the clock, and how to wait between
    tries of a record or a re-send (the Polyv client's back-off)."""

    polyv: PolyvGateway
    ledger: DayLedger
    breaker: PolyvBreaker
    policy: Policy
    clock: Callable[[], datetime]
    backoff: Callable[[int], float]
    sleep: Callable[[float], None] = time.sleep
    new_owner: Callable[[], str] = lambda: uuid.uuid4().hex

    def today(self) -> str:
        return quota_day(self.clock(), self.policy.timezone)


class ChunkBudget:
    """A chunk's :class:`~.sender.CallBudget`: the run's deadline and bisection budget, and the
    day's counter for re-sending a call of unknown outcome (after a back-off), which it may only
    when the run's resends allow (``domain/quota.may_resend``)."""

    def __init__(self, ports: Ports, day: str, run: Run, limit: int) -> None:
        self._ports = ports
        self._day = day
        self._run = run
        self._limit = limit

    def time_for_a_call(self) -> bool:
        return self._run.time_for_a_call(self._ports.clock())

    def count_again(self, files: int, attempt: int) -> bool:
        ports, run = self._ports, self._run
        if not may_resend_now(ports.ledger, ports.policy, run, ports.clock(), files):
            return False  # never-sent files need the day's quota more
        ports.sleep(ports.backoff(attempt))
        return ports.ledger.reserve_extra(self._day, files, self._limit)

    def take_bisection_call(self) -> bool:
        return self._run.take_bisection_call()


class ChunkLife:
    """One chunk of a run, from its claim to its record (:meth:`live`)."""

    def __init__(self, ports: Ports, run: Run, limit: int) -> None:
        self._ports = ports
        self._run = run
        self._limit = limit

    def live(self, group: Sequence[FileClaim], placed: list[Placed]) -> After:
        """Claim -> send -> record, whatever ends the calls; every file's disposition to ``placed``."""
        ports, run = self._ports, self._run
        day = ports.today()  # the day of each chunk: an invocation may outlive midnight
        lease = Lease.until(ports.new_owner(), run.deadline.at + LEASE_GRACE)
        by_file = {c.file: c for c in group}
        claimed = self._claim(day, by_file, lease, placed)
        if claimed is None:
            return After.STOPPED
        after = After.NO_QUOTA if claimed.no_room else After.GO_ON
        if not claimed.granted:
            return after
        sender = ChunkSender(
            ports.polyv,
            ChunkBudget(ports, day, run, self._limit),
            [by_file[f] for f in claimed.granted],
            today=ports.today,
            bisection_calls=ports.policy.bisection_calls_per_chunk,
        )
        try:
            sender.send()
        finally:  # on every exit, KeyboardInterrupt included; a killed process leaves the lease
            outcome = sender.outcome
            placed += self._record(day, outcome, lease)
        self._tell_the_breaker(outcome)
        if outcome.bug is not None:
            raise outcome.bug  # fail the invocation loudly: a defect, not a data or service error
        if outcome.stop is not None:
            return self._after_stop(day, outcome)
        return after

    def _claim(
        self, day: str, by_file: dict[FileRef, FileClaim], lease: Lease, placed: list[Placed]
    ) -> ClaimResult | None:
        """Claim and count the chunk's files; place those that cannot be claimed now. None when
        the ledger is unavailable: the whole run stops and the chunk is handed back."""
        run, now = self._run, self._ports.clock()
        claims = list(by_file.values())
        if run.resends is Resends.ALWAYS:
            claims = [c.resent() for c in claims]
        try:
            claimed = self._ports.ledger.claim(day, claims, self._limit, lease=lease, now=now)
        except StoreUnavailable as exc:
            logger.error("ledger unavailable: sending nothing unaccounted", extra={"error": str(exc)})
            run.stop("quota ledger unavailable", Stopped.STORE)
            placed += [Placed(c, Disposition.HANDED_BACK, "quota ledger unavailable") for c in claims]
            return None
        placed += [unclaimable(by_file[f], e, now) for f, e in {**claimed.known, **claimed.held}.items()]
        placed += [Placed(by_file[f], Disposition.NO_ROOM) for f in claimed.no_room]
        placed += [Placed(by_file[f], Disposition.FOUND_IN_DOUBT) for f in claimed.in_doubt]
        if any(c.rule.resend for c in claims):
            run.report.resent_in_doubt += len(claimed.granted)
        return claimed

    def _record(self, day: str, outcome: ChunkOutcome, lease: Lease) -> list[Placed]:
        """Write the chunk's record; returns its files' dispositions."""
        run, clock = self._run, self._ports.clock
        record = outcome.close(
            len(run.report.calls) + 1, retry_after_ms=epoch_ms(clock() + BITRATE_RETRY_AFTER)
        )
        self._settle_persistently(day, record.settlement, lease)
        self._carry_over_late_answers(day, outcome)
        run.report.calls += record.calls
        run.report.refused_by_polyv |= outcome.rejected.keys() - outcome.refused_for_now
        refused = outcome.rejected.keys() | outcome.unisolated.keys()
        run.suspects |= {c.request.origin for c in outcome.granted if c.file in refused}
        return record.placed

    def _after_stop(self, day: str, outcome: ChunkOutcome) -> After:
        """What a chunk whose calls ended early leaves for the rest of the run."""
        stop, run, clock = outcome.stop, self._run, self._ports.clock
        assert stop is not None
        if stop.quota_spent:
            run.polyv_spent = True
            if not run.beyond_count:  # asking beyond the count, the caller decides when to end
                mark_exhausted(self._ports.ledger, self._ports.policy, day)
            return After.NO_QUOTA
        if stop.park:
            state = None
            if stop.polyv_down:
                try:
                    state = self._ports.breaker.state()
                except StoreUnavailable:
                    state = None
            run.stop(stop.reason, stop.kind, park_until=state.retry_at(clock()) if state else clock())
            return After.STOPPED
        if stop.whole_run:
            run.stop(stop.reason, stop.kind)
            return After.STOPPED
        return After.GO_ON

    def _tell_the_breaker(self, outcome: ChunkOutcome) -> None:
        """A call found Polyv down: open (or keep open) the breaker. A probe that Polyv answered,
        whatever it answered: close it."""
        run, breaker = self._run, self._ports.breaker
        down = outcome.stop is not None and outcome.stop.polyv_down
        answered = bool(outcome.accepted or outcome.rejected or outcome.unisolated) or (
            outcome.stop is not None and outcome.stop is not NOT_ENDED and not outcome.stop.park
        )
        try:
            if down:
                now = self._ports.clock()
                state = breaker.failed(now=now)
                run.report.polyv_down_since = state.down_since
                run.report.polyv_down_minutes = state.down_for(now).total_seconds() / 60
            elif run.gate is Gate.PROBE and answered:
                breaker.recovered()
                run.gate = Gate.CLOSED
                logger.info("Polyv answers again: breaker closed")
        except StoreUnavailable as exc:
            logger.warning("could not update Polyv's breaker", extra={"error": str(exc)})

    def _settle_persistently(self, day: str, settlement: Settlement, lease: Lease) -> None:
        """Write the record, trying again while the invocation has time: an unrecorded submission
        would be in doubt once its lease ends, and a redelivery would send it again."""
        if not settlement:
            return
        ports, deadline = self._ports, self._run.deadline
        error = ""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                ports.ledger.settle(day, settlement, lease=lease, now=ports.clock())
                return
            except StoreUnavailable as exc:
                error = str(exc)
                pause = ports.backoff(attempt)
                if deadline.left(ports.clock()) - timedelta(seconds=pause) < RECORD_RESERVE:
                    break  # the invocation must end in time; its claims' lease does the rest
                logger.warning("could not record outcomes yet: trying again", extra={"attempt": attempt + 1})
                ports.sleep(pause)
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                break
        # The claims stay leased until the deadline, then are in doubt: counted, claimable again.
        # Files Polyv accepted keep their fate (handing them back would only send them again).
        logger.error(
            "could not record outcomes in the ledger: the claims will be in doubt",
            extra={"error": error, "files": settlement.answered()},
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
        origins = {c.file: c.origin for c in outcome.granted}
        for answered, files in late.items():
            try:
                self._ports.ledger.carry_over(answered, files, origins, now=self._ports.clock())
                logger.info(
                    "a call straddled midnight: counted in the new quota day",
                    extra={"day": answered, "files": len(files)},
                )
            except Exception as exc:
                logger.error(
                    "could not count a call that straddled midnight", extra={"error": str(exc)[:200]}
                )
