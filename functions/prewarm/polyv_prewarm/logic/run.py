"""What the use cases share: one invocation's run, what a submission leaves to its caller, and the
results and figures every report is made of. The use cases (``submit``, ``drain``, ``queries``)
import this module, never each other; the drain submits through the :class:`Submits` interface.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import held
from ..domain.model import Fate, FileRef, FileResult, LedgerEntry, Origin, QuotaView, Report
from ..domain.plan import RequestedFile
from ..domain.policy import Deadline, Policy
from ..domain.ports import DayLedger, StoreUnavailable
from ..domain.quotaday import quota_day

logger = Logger(service=SERVICE, child=True)

#: What one aggregated log line names: its most common reasons, and a few files as examples.
TALLY_REASONS, TALLY_EXAMPLES = 10, 5

#: Why a file in doubt waits (submission and drain): its tier is the backlog's last.
IN_DOUBT_REASON = "in doubt (its call may have reached Polyv): re-sent after every never-sent file"
#: Why a suspect's file waits unsent (submission and drain): the suspect tier isolates it.
SUSPECT_REASON = "of a message whose files Polyv refused, and no bisection call left to send it apart"


class Resends(Enum):
    """When a run may spend quota on files in doubt (their call may have reached Polyv): never
    while never-sent files wait for it (``domain/outlook.py``)."""

    NEVER = "a drain of never-sent files: what it finds in doubt moves to the resend tier"
    FROM_SURPLUS = "fresh traffic: from quota no first-rank file of today is expected to need"
    ALWAYS = "the resend tier's own drain, reached after every never-sent file"


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

    def stop(self, reason: str, *, park_until: datetime | None = None) -> None:
        self.stopped = self.report.stopped_because = reason
        self.retry_at = park_until

    @property
    def parking(self) -> bool:
        return self.stopped is not None and self.retry_at is not None

    def take_bisection_call(self) -> bool:
        if self.bisection_calls_left <= 0:
            return False
        self.bisection_calls_left -= 1
        return True


@dataclass
class Leftovers:
    """The files a submission did not place (no result in the report yet, not sent, not counted):
    the caller decides where they go (a prewarm defers them; a drain keeps them in the backlog)."""

    no_quota: list[RequestedFile] = field(default_factory=list)  # no room today
    # refused by Polyv for a reason that need not hold (an unknown error, or a refused call the
    # bisection budget left unsplit), with the reason: a drain counts a failure for each
    refused: dict[FileRef, str] = field(default_factory=dict)
    # suspects: in a refused call the bisection budget left unsplit (with why): the suspect tier's
    unisolated: list[tuple[RequestedFile, str]] = field(default_factory=list)
    # files of a suspect message not sent at all (no bisection call left to send them apart)
    apart: list[RequestedFile] = field(default_factory=list)
    parked: list[RequestedFile] = field(default_factory=list)  # to wait until ``Run.retry_at``
    parked_in_doubt: list[RequestedFile] = field(default_factory=list)  # ...and in doubt (resends)
    in_doubt: list[RequestedFile] = field(default_factory=list)  # the claim found them in doubt
    # Polyv answered their call with something of unknown meaning: to wait as resends, not now
    answered_in_doubt: list[RequestedFile] = field(default_factory=list)

    def extend(self, other: Leftovers) -> None:
        self.no_quota += other.no_quota
        self.refused.update(other.refused)
        self.unisolated += other.unisolated
        self.apart += other.apart
        self.parked += other.parked
        self.parked_in_doubt += other.parked_in_doubt
        self.in_doubt += other.in_doubt
        self.answered_in_doubt += other.answered_in_doubt


class Submits(Protocol):
    """What the drain needs of the submission use case."""

    def today(self) -> str: ...

    def time_for_a_call(self, run: Run) -> bool: ...

    def submit(
        self,
        files: Sequence[RequestedFile],
        run: Run,
        *,
        forced: Collection[FileRef] = (),
        limit: int | None = None,
        resend: bool = False,
        first_rank: Collection[FileRef] = (),
    ) -> Leftovers: ...

    def surplus(self, run: Run, *, asking: int) -> int | None: ...

    def mark_exhausted(self, day: str) -> None: ...


def new_run(
    policy: Policy, deadline: Deadline, *, limit: int, resends: Resends = Resends.FROM_SURPLUS
) -> Run:
    return Run(Report(), limit, deadline, policy.bisection_calls_per_run, resends=resends)


def result(requested: RequestedFile, fate: Fate, reason: str) -> FileResult:
    return FileResult(requested.request, fate, file=requested.file, reason=reason)


def unclaimable(requested: RequestedFile, entry: LedgerEntry, now: datetime) -> FileResult:
    """A file this run may not claim: another invocation's live claim is handed back (its
    message comes again), anything else was handled today (a duplicate)."""
    fate = Fate.HANDED_BACK if held(entry, now) else Fate.DUPLICATE
    return result(requested, fate, entry.describe())


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
        log_tally(what, [r for r in report.results if r.fate is fate], warn=fate is Fate.REJECTED)
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
    """What one aggregated log line counts: a file's result, an ignored record, a note."""

    @property
    def reason(self) -> str | None: ...

    def to_summary(self) -> dict[str, Any]: ...


def log_tally(message: str, items: Sequence[Tallied], *, warn: bool = False) -> None:
    """One line for all of them (a batch may hold thousands): how many, by reason, and a few
    examples; each value is cut short (an invalid vid as sent)."""
    if not items:
        return
    by_reason = Counter(item.reason or "" for item in items).most_common(TALLY_REASONS)
    log = logger.warning if warn else logger.info
    log(
        message,
        extra={
            "count": len(items),
            "by_reason": dict(by_reason),
            "examples": [item.to_summary() for item in items[:TALLY_EXAMPLES]],
        },
    )
