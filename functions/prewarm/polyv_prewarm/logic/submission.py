"""Submitting files: chunk by chunk, clean files first, through the breaker's gate.

The prewarm (:mod:`.prewarm`) and the drains (:mod:`.drain`, :mod:`.recovery`) submit through
:meth:`Submission.submit`; each chunk lives through one claim (:mod:`.chunk`). Every file handed
in comes out with exactly one disposition (``domain/placement.py``), which the caller places.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import FileClaim
from ..domain.model import Stopped
from ..domain.placement import Disposition, Placed
from ..domain.plan import clean_first
from ..domain.ports import StoreUnavailable
from .chunk import After, ChunkLife, Ports
from .run import Gate, Run, may_resend_now
from .sender import OUT_OF_TIME

logger = Logger(service=SERVICE, child=True)


class Submission:
    """The :class:`~.run.Submits` of every use case that sends files."""

    def __init__(self, ports: Ports) -> None:
        self._ports = ports

    def submit(self, files: Sequence[FileClaim], run: Run, *, limit: int | None = None) -> list[Placed]:
        """Claim, send and record ``files`` chunk by chunk within ``limit`` (else the run's: a
        priority file of a drain claims within the whole limit); one disposition a file. A
        suspect's chunk (``domain/plan.clean_first``) is sent only while the run has bisection
        calls left; a stopped run parks (or hands back) the rest."""
        placed: list[Placed] = []
        after = After.GO_ON
        if files and run.gate is Gate.UNASKED:
            self._ask_the_breaker(run)
        for group, suspect in clean_first(files, run.suspects):
            not_now = _not_now(run, after, suspect=suspect)
            if not_now is None and not run.time_for_a_call(self._ports.clock()):
                run.stop(OUT_OF_TIME, Stopped.DEADLINE, park_until=self._ports.clock())
                not_now = Disposition.PARKED
            if not_now is None:
                after = ChunkLife(self._ports, run, limit or run.limit).live(group, placed)
            else:
                reason = run.stopped if not_now is Disposition.HANDED_BACK else None
                placed += [Placed(c, not_now, reason) for c in group]
        if any(p.disposition is Disposition.NO_ROOM for p in placed):
            run.no_room = True
        return placed

    def resend_from_surplus(self, placed: list[Placed], run: Run) -> list[Placed]:
        """Files the claim found in doubt (their call may have reached Polyv) sent again at once,
        counted again, when the run's resends allow it for all of them
        (``domain/quota.may_resend``); else they stay found in doubt, for the resend tier."""
        doubtful = [p.claim for p in placed if p.disposition is Disposition.FOUND_IN_DOUBT]
        if not doubtful:
            return placed
        ports = self._ports
        if not may_resend_now(ports.ledger, ports.policy, run, ports.clock(), len(doubtful)):
            return placed
        again = self.submit([c.resent() for c in doubtful], run)
        kept = [p for p in placed if p.disposition is not Disposition.FOUND_IN_DOUBT]
        # resent and still not sent for want of room: they are still in doubt, for the resend tier
        return kept + [_still_in_doubt(p) for p in again]

    def _ask_the_breaker(self, run: Run) -> None:
        """Polyv known to be down: park at once (nothing is claimed, nothing is called), unless
        this run wins the one probe. A breaker that cannot be read is taken as closed (the claim
        then meets the same store, and stops the run if it is down)."""
        ports = self._ports
        now = ports.clock()
        try:
            state = ports.breaker.state()
            if not state.open:
                run.gate = Gate.CLOSED
                return
            if not state.waiting(now) and ports.breaker.try_probe(ports.new_owner(), now=now):
                run.gate = Gate.PROBE
                logger.info("Polyv was down: probing with this run's first call")
                return
        except StoreUnavailable as exc:
            logger.warning("Polyv's breaker unreadable: calling Polyv", extra={"error": str(exc)})
            run.gate = Gate.CLOSED
            return
        since = state.down_since or now.isoformat()
        run.gate = Gate.CLOSED
        run.stop(f"Polyv unavailable since {since[:19]}Z", Stopped.POLYV_DOWN, park_until=state.retry_at(now))
        run.report.polyv_down_since = since
        run.report.polyv_down_minutes = state.down_for(now).total_seconds() / 60


def _not_now(run: Run, after: After, *, suspect: bool) -> Disposition | None:
    """Why a chunk is not claimed at all (None: it is): a suspect's chunk once the run may no
    longer isolate it, the files of a parked or stopped run, or no room left today."""
    if suspect and (run.parking or after is After.NO_QUOTA or run.bisection_calls_left <= 0):
        return Disposition.APART
    if run.parking:
        return Disposition.PARKED
    if run.stopped is not None:
        return Disposition.HANDED_BACK
    if after is After.NO_QUOTA:
        return Disposition.NO_ROOM
    return None


def _still_in_doubt(placed: Placed) -> Placed:
    """A resent file that found no room is still in doubt: for the resend tier."""
    if placed.disposition is Disposition.NO_ROOM:
        return placed._replace(disposition=Disposition.FOUND_IN_DOUBT)
    return placed
