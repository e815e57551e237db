"""The use case "recover": the files waiting out an outage (or a deadline) are sent once their
time has come and Polyv's breaker lets a run call (a schedule every few minutes).

Cheap when there is nothing to do: one read of the breaker, one query of the due files. Waiting
files in doubt are re-sent only from the day's surplus, else they join the resend tier; waiting
files that find no quota today return to the daily drains (``domain/placement.py``). Isolation
of the suspects goes on through the day, one bounded slice a drain.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.breaker import BreakerState
from ..domain.model import DeferredFile, Report, Stopped
from ..domain.placement import Caller
from ..domain.policy import Deadline, Policy
from ..domain.ports import Backlog, DayLedger, PolyvBreaker, StoreUnavailable
from ..domain.quota import Resends
from .run import figures, finish, new_run
from .slices import DrainSlices

logger = Logger(service=SERVICE, child=True)


class RecoverWaiting:
    def __init__(
        self,
        *,
        slices: DrainSlices,
        ledger: DayLedger,
        backlog: Backlog,
        breaker: PolyvBreaker,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self._slices = slices
        self._ledger = ledger
        self._backlog = backlog
        self._breaker = breaker
        self._policy = policy
        self._clock = clock

    def recover(self, *, deadline: Deadline | None = None, slice_size: int = 100) -> Report:
        now = self._clock()
        limit = self._policy.limit(priority_high=False, now=now)
        run = new_run(
            self._policy, deadline or Deadline.default(now), limit=limit, resends=Resends.FROM_SURPLUS
        )
        report = run.report
        try:
            state = self._breaker.state()
        except StoreUnavailable as exc:
            run.stop(f"Polyv's breaker unreadable: {exc}", Stopped.STORE)
            return report
        report.breaker = state
        report.polyv_down_minutes = state.down_for(now).total_seconds() / 60
        if state.waiting(now):  # Polyv is known to be down, and it is not time to probe it yet
            report.polyv_down_since = state.down_since
            return report
        cursor: DeferredFile | None = None
        while run.stopped is None and run.time_for_a_call(self._clock()):
            try:
                batch = self._backlog.due(slice_size, now=now, after=cursor)
            except StoreUnavailable as exc:
                run.stop(f"backlog unavailable: {exc}", Stopped.STORE)
                break
            if not batch:
                if cursor is None and state.open:
                    self._nothing_waits_on_polyv(state)
                break
            cursor = batch[-1]  # files held by another invocation stay due: passed by, not looped on
            if not self._slices.drain(batch, run, Caller.RECOVERY, limit=run.limit):
                break
        if run.stopped is None:
            self._slices.drain_suspects(run, Caller.RECOVERY, run.limit)
        if report.results:
            finish(
                report, "recovery drain finished", ledger=self._ledger, policy=self._policy, now=self._clock()
            )
            report.backlog = figures(self._backlog)
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
