"""The use case "prewarm these files": plan -> hold back on a tight day -> submit -> place.

A request's files are validated and deduplicated (``domain/plan.py``), made claims (one value
each, ``domain/claims.FileClaim``), submitted chunk by chunk (:mod:`.submission`), and what
was not sent is placed in the backlog by the table of ``domain/placement.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import NO_FLAGS, ClaimRequest, FileClaim
from ..domain.model import Fate, FileRequest, FileResult, Report
from ..domain.placement import DEFERRED_REASON, Disposition, Placed
from ..domain.plan import build_plan, chunk
from ..domain.policy import Deadline
from ..domain.ports import Backlog, StoreUnavailable
from ..domain.quota import holds_back
from .chunk import Ports
from .placement import FreshPlacement, fresh_result, handled_today
from .run import Run, finish, new_run, result, surplus
from .submission import Submission

logger = Logger(service=SERVICE, child=True)


class PrewarmFiles:
    def __init__(self, ports: Ports, *, backlog: Backlog, userid: Callable[[], str]) -> None:
        """The submission's ports, the backlog, and the account whose vids are accepted."""
        self._ports = ports
        self._backlog = backlog
        self._userid = userid
        self._submission = Submission(ports)

    def prewarm(
        self,
        requests: Sequence[FileRequest],
        *,
        deadline: Deadline | None = None,
        dry_run: bool = False,
        rule: ClaimRequest = NO_FLAGS,
        priority_high: bool = False,
    ) -> Report:
        """``rule``: how the request claims its files (``FORCE``: send again files already
        handled today; an explicit bitrate is each file's own). ``priority_high`` (a person's
        request): may use the MANUAL_RESERVE of the day's quota, which automatic traffic leaves
        alone. On a tight day, a video's other definitions wait in the backlog for what its main
        definitions leave (``domain/quota.holds_back``)."""
        ports = self._ports
        plan = build_plan(requests, self._userid())
        limit = ports.policy.limit(priority_high=priority_high, now=ports.clock())
        run = new_run(ports.policy, deadline or Deadline.default(ports.clock()), limit=limit)
        run.report.results += plan.decided
        run.report.dry_run = dry_run
        policy = ports.policy
        claims = [
            FileClaim(u.file, u.request, rule._replace(explicit=u.request.explicit), policy.first_rank(u))
            for u in plan.unique
        ]
        if dry_run:
            self._dry_run(claims, run.report, limit=limit)
        else:
            now, later = self._by_rank(claims, run, taken_as_asked=rule.force or priority_high)
            placed = self._submission.submit(now, run)
            placed = self._submission.resend_from_surplus(placed, run)
            placed += [Placed(c, Disposition.HELD_BACK) for c in later]
            fresh = FreshPlacement(
                ledger=ports.ledger,
                backlog=self._backlog,
                clock=ports.clock,
                today=ports.today,
                priority_high=priority_high,
            )
            fresh.place(placed, run)
        finish(run.report, "prewarm finished", ledger=ports.ledger, policy=ports.policy, now=ports.clock())
        return run.report

    def _by_rank(
        self, claims: Sequence[FileClaim], run: Run, *, taken_as_asked: bool
    ) -> tuple[list[FileClaim], list[FileClaim]]:
        """What to claim now, and the other definitions to hold back (``domain/quota.holds_back``)."""
        first = [c for c in claims if c.first_rank]
        later = [c for c in claims if not c.first_rank]
        if not later or taken_as_asked:
            return list(claims), []
        ports = self._ports
        spare = surplus(ports.ledger, ports.policy, run.limit, ports.clock(), asking=len(first))
        if not holds_back(later=len(later), surplus=spare, taken_as_asked=taken_as_asked):
            return list(claims), []
        logger.info(
            "a tight day: holding a video's other definitions back for its main ones",
            extra={"main": len(first), "held_back": len(later), "surplus": spare},
        )
        return first, later

    def _dry_run(self, claims: Sequence[FileClaim], report: Report, *, limit: int) -> None:
        ports = self._ports
        day = ports.today()
        try:
            entries = ports.ledger.lookup(day, [c.file for c in claims])
            room = ports.ledger.usage(day, limit).remaining
        except StoreUnavailable:
            entries, room = {}, limit
        now = ports.clock()
        to_send: list[FileClaim] = []
        for claim in claims:
            if (handled := handled_today(claim, entries, now)) is not None:
                report.results.append(fresh_result(handled))
            elif len(to_send) < room:
                to_send.append(claim)
            else:
                report.results.append(result(claim, Fate.DEFERRED, DEFERRED_REASON))
        for call_no, group in enumerate(chunk(to_send), 1):
            report.results += [FileResult(c.request, Fate.PLANNED, file=c.file, call=call_no) for c in group]
