"""What the use cases share: one invocation's run, the submission's interface, and the results
and figures every report is made of. The use cases import this module (and the submission's
parts: ``submission``, ``chunk``, ``sender``, ``placement``), never each other; the drains submit
through the :class:`Submits` interface.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import FileClaim, held
from ..domain.model import BacklogFigures, Fate, FileResult, LedgerEntry, Origin, QuotaView, Report, Stopped
from ..domain.placement import Disposition, Placed
from ..domain.plan import Asked
from ..domain.policy import Deadline, Policy
from ..domain.ports import Backlog, DayLedger, StoreUnavailable
from ..domain.preview import shown
from ..domain.quota import Resends, may_resend
from ..domain.quotaday import quota_day

logger = Logger(service=SERVICE, child=True)

#: What one aggregated log line names: its most common reasons, and a few files as examples.
TALLY_REASONS, TALLY_EXAMPLES = 10, 5


class Gate(Enum):
    """What Polyv's breaker lets a run do (asked once, before its first call)."""

    UNASKED = "the breaker has not been asked yet"
    CLOSED = "call Polyv"
    PROBE = "Polyv was down: this run's first call finds out whether it is back"


@dataclass
class Run:
    """One invocation's submission (a prewarm, or a whole drain): the limit it claims within, its
    deadline, the report it fills, its bisection budget, and why it stopped calling Polyv."""

    report: Report
    limit: int
    deadline: Deadline
    bisection_calls_left: int
    min_time_per_call: timedelta  # one more Polyv call needs this much of the deadline
    stopped: str | None = None  # no further Polyv call in this run, and why
    gate: Gate = Gate.UNASKED
    resends: Resends = Resends.FROM_SURPLUS
    # when the run stopped for a reason that passes (Polyv down, the deadline), its unsent files
    # wait in the backlog until ``retry_at`` instead of coming back with their messages
    retry_at: datetime | None = None
    #: messages (origins) with a file in a call Polyv refused: their other files are never packed
    #: with clean ones (``domain/plan.clean_first``)
    suspects: set[Origin] = field(default_factory=set)
    #: asking Polyv beyond the function's own count (the late sweeps, where only calls in doubt
    #: hold the count at the limit): a refusal for the daily limit is an answer, not the day's end
    beyond_count: bool = False
    polyv_spent: bool = False  # Polyv refused a call of this run for the daily limit
    no_room: bool = False  # a submission of this run found no room today (a drain's slice resets it)

    def stop(self, reason: str, kind: Stopped, *, park_until: datetime | None = None) -> None:
        self.stopped = self.report.stopped_because = reason
        self.report.stopped = kind
        self.retry_at = park_until

    @property
    def parking(self) -> bool:
        return self.stopped is not None and self.retry_at is not None

    def time_for_a_call(self, now: datetime) -> bool:
        """Whether the run has time for one more Polyv call, its attempts included."""
        return self.deadline.left(now) >= self.min_time_per_call

    def take_bisection_call(self) -> bool:
        if self.bisection_calls_left <= 0:
            return False
        self.bisection_calls_left -= 1
        return True


class Submits(Protocol):
    """What the drains need of the submission (``logic/submission.py``)."""

    def submit(self, files: Sequence[FileClaim], run: Run, *, limit: int | None = None) -> list[Placed]:
        """Claim, send and record the files chunk by chunk: one disposition each."""
        ...

    def resend_from_surplus(self, placed: list[Placed], run: Run) -> list[Placed]:
        """Files found in doubt sent again now, if the run may (``domain/quota.may_resend``)."""
        ...


class Expires(Protocol):
    """What the morning drain needs of the backlog's expiry (``logic/expiry.py``)."""

    def expire(self, report: Report) -> None: ...


def new_run(
    policy: Policy, deadline: Deadline, *, limit: int, resends: Resends = Resends.FROM_SURPLUS
) -> Run:
    return Run(
        Report(), limit, deadline, policy.bisection_calls_per_run, policy.min_time_per_call, resends=resends
    )


def result(asked: Asked, fate: Fate, reason: str | None) -> FileResult:
    return FileResult(asked.request, fate, file=asked.file, reason=reason)


def unclaimable(claim: FileClaim, entry: LedgerEntry, now: datetime) -> Placed:
    """A file this run may not claim: another invocation's live claim (held: its message comes
    again), anything else was handled today (a duplicate)."""
    return Placed(claim, Disposition.HELD if held(entry, now) else Disposition.KNOWN, entry.describe())


def surplus(ledger: DayLedger, policy: Policy, limit: int, now: datetime, *, asking: int) -> int | None:
    """Units of ``limit`` no first-rank file of today is expected to need, ``asking`` more
    first-rank files included (``domain/quota.py``); None when the counter is unreadable."""
    try:
        outlook = ledger.outlook(quota_day(now, policy.timezone))
    except StoreUnavailable as exc:
        logger.warning("day's counter unreadable: taking the day as tight", extra={"error": str(exc)})
        return None
    return outlook.surplus(limit, now, policy.day_ends(now), asking=asking)


def may_resend_now(ledger: DayLedger, policy: Policy, run: Run, now: datetime, files: int) -> bool:
    """Whether ``files`` in doubt may be claimed again now (``domain/quota.may_resend``), reading
    the day's counter only when the run's resends depend on its surplus."""
    spare = surplus(ledger, policy, run.limit, now, asking=0) if run.resends is Resends.FROM_SURPLUS else None
    return may_resend(run.resends, spare, files)


def mark_exhausted(ledger: DayLedger, policy: Policy, day: str) -> None:
    """Polyv itself says the day's quota is spent: no further claim that day."""
    logger.warning("Polyv says today's quota is spent: marking the day exhausted", extra={"day": day})
    try:
        ledger.mark_exhausted(day, policy.daily_limit)
    except StoreUnavailable as exc:
        logger.error("could not mark the day exhausted", extra={"error": str(exc)})


def usage(ledger: DayLedger, policy: Policy, day: str) -> QuotaView:
    """A day's count against the limit, with the manual reserve."""
    return ledger.usage(day, policy.daily_limit)._replace(reserve=policy.manual_reserve)


def finish(report: Report, message: str, *, ledger: DayLedger, policy: Policy, now: datetime) -> None:
    """Add the day's quota figures to the report, then log its rejections, duplicates and summary,
    each once (an invocation may reject or skip thousands of files)."""
    day = quota_day(now, policy.timezone)
    try:
        report.quota = usage(ledger, policy, day)
    except StoreUnavailable:
        logger.warning("ledger unreadable: summary has no quota figures")
    for fate, what in ((Fate.REJECTED, "files rejected"), (Fate.DUPLICATE, "duplicate files")):
        log_tally(
            what, [r for r in report.results if r.fate is fate], file_example, warn=fate is Fate.REJECTED
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


class Tallied(Protocol):
    """What one aggregated log line counts: a file's result, a remark of an event."""

    @property
    def reason(self) -> str | None: ...


T = TypeVar("T", bound=Tallied)


def file_example(r: FileResult) -> dict[str, Any]:
    """A file as a log line's example: an invalid request's values as the event had them, cut short."""
    vid, br = (r.file.vid, r.file.br_index) if r.file else (shown(r.request.vid), shown(r.request.br_index))
    return {
        "vid": vid,
        "brIndex": br,
        "fate": r.fate.value,
        "reason": r.reason,
        **r.request.origin.log_keys(),
    }


def log_tally(
    message: str, items: Sequence[T], example: Callable[[T], Mapping[str, Any]], *, warn: bool = False
) -> None:
    """One line for all of them (a batch may hold thousands): how many, by reason, and a few
    examples (``example`` of each); each value is cut short (an invalid vid as sent)."""
    if not items:
        return
    by_reason = Counter(item.reason or "" for item in items).most_common(TALLY_REASONS)
    log = logger.warning if warn else logger.info
    log(
        message,
        extra={
            "count": len(items),
            "by_reason": dict(by_reason),
            "examples": [example(item) for item in items[:TALLY_EXAMPLES]],
        },
    )


def figures(backlog: Backlog) -> BacklogFigures | None:
    """The backlog's figures for a drain's summary (None: unreadable)."""
    try:
        return backlog.stats()
    except StoreUnavailable as exc:
        logger.warning(
            "backlog unreadable: the drain's summary has no backlog figures", extra={"error": str(exc)}
        )
        return None
