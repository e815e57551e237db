"""One claimed chunk's Polyv calls, and what became of each of its files: a :class:`ChunkOutcome`.

* When Polyv refuses a call because of some files, the sender isolates them by bisection: one bad
  file among n costs at most about 2*log2(n) extra calls, and a chunk and an invocation have a
  budget of such calls (what it leaves unsplit is deferred, never sent unaccounted or lost).
* When a call's outcome is unknown (Polyv may have accepted it), it re-sends the call only after
  its budget counted the files again: the counter may over-count, never under-count.
* Before every call it asks its budget for the time: bisection and re-sends obey the deadline.

The outcome is true at every instant (``in_flight`` holds the files of a call that has not
answered), so the owner of the claim can record it in a ``finally`` whatever interrupts the calls;
:meth:`ChunkOutcome.close` then builds, in one place, both the ledger record and the file results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple, Protocol

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.model import CallRecord, Fate, FileRef, FileResult
from ..domain.plan import RequestedFile
from ..domain.ports import (
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvFilesRefused,
    PolyvGateway,
    PolyvQuotaSpent,
    PolyvUnavailable,
    Settlement,
)

logger = Logger(service=SERVICE, child=True)

OUT_OF_TIME = "too little time left in this invocation for another call"
INTERRUPTED = "the invocation stopped before the calls ended"

#: Extra calls a chunk may spend isolating the files Polyv refused it for. One bad file among 100
#: takes at most 2*ceil(log2(100)) = 14; two more calls let a second one be found in most chunks.
BISECTION_CALLS_PER_CHUNK = 16
#: ...and an invocation over all its chunks: what a producer's batch of unknown vids can cost
#: beyond one call per 100 files. The files left unisolated when a budget is spent were not
#: taken (not counted): they go to the backlog, whose drains try them again with budgets of
#: their own and park a file after a few failed drains.
BISECTION_CALLS_PER_RUN = 48
NOT_ISOLATED = "in a call Polyv refused ({message}), not isolated within the bisection budget"


class CallBudget(Protocol):
    """What a chunk's calls may spend beyond the claim: time, and quota to re-send."""

    def time_for_a_call(self) -> bool: ...

    def count_again(self, files: int, resend: int) -> bool:
        """Back off before re-send number ``resend``, then count ``files`` more on the day's
        counter; False when the day has no room for them."""
        ...

    def take_bisection_call(self) -> bool:
        """One more call to isolate refused files, from the invocation's budget; False when spent."""
        ...


class Stop(NamedTuple):
    """Why a chunk's calls ended early. ``whole_run``: no further call in this invocation (Polyv or
    the store down, a configuration error); otherwise only this chunk's files failed."""

    reason: str
    whole_run: bool = True
    quota_spent: bool = False


NOT_ENDED = Stop(INTERRUPTED)


class AcceptedCall(NamedTuple):
    call: CallRecord
    files: list[RequestedFile]


@dataclass
class ChunkRecord:
    """What the owner of a claim writes and reports once the chunk's calls are over."""

    settlement: Settlement  # for the day ledger
    results: list[FileResult]  # one per granted file, except the unsent files of a spent day
    calls: list[CallRecord]  # the accepted calls, in order
    unsent: list[RequestedFile]  # certainly not sent (handed back, or deferred when the day is spent)
    # in a refused call the bisection budget left unsplit: not sent, and why (the caller defers them)
    unisolated: list[tuple[RequestedFile, str]] = field(default_factory=list)


@dataclass
class ChunkOutcome:
    """What is known of a chunk's granted files at this instant."""

    granted: Sequence[RequestedFile]
    accepted: list[AcceptedCall] = field(default_factory=list)
    task_ids: dict[FileRef, str] = field(default_factory=dict)
    answered_day: dict[FileRef, str] = field(default_factory=dict)  # quota day of Polyv's answer
    rejected: dict[FileRef, str] = field(default_factory=dict)  # file -> Polyv's reason
    refused_for_now: set[FileRef] = field(default_factory=set)  # a bitrate that may exist later
    unisolated: dict[FileRef, str] = field(default_factory=dict)  # refused call left unsplit: why
    in_doubt: set[FileRef] = field(default_factory=set)  # in a call whose outcome is unknown
    in_flight: list[FileRef] = field(default_factory=list)  # in a call that has not answered
    unknown_outcomes: int = 0  # file-attempts that may have been accepted
    counted_again: int = 0  # quota counted again to re-send calls in doubt
    stop: Stop | None = NOT_ENDED  # None once the calls ended normally
    bug: PolyvContractViolation | None = None  # Polyv says we broke its limits: fail loudly

    def close(self, first_call: int, *, retry_after_ms: int) -> ChunkRecord:
        """The ledger record and the file results, both from what is known now (``first_call``:
        the number the report gives this chunk's first accepted call)."""
        if self.in_flight:  # interrupted while a call was out: it may have been accepted
            self.mark_unknown(self.in_flight)
            self.in_flight = []
        quota_spent = self.stop is not None and self.stop.quota_spent
        record = ChunkRecord(Settlement(), [], [a.call for a in self.accepted], [])
        numbers = {f.file: n for n, a in enumerate(self.accepted, first_call) for f in a.files}
        for requested in self.granted:
            result = self._close_one(requested, record, numbers.get(requested.file), retry_after_ms)
            if result is not None:
                record.results.append(result)
        # Quota of files Polyv certainly did not take goes back; files in doubt stay counted.
        # A day Polyv says is spent stays at its limit.
        if not quota_spent:
            taken = len(self.task_ids) + self.unknown_outcomes
            record.settlement.release = len(self.granted) + self.counted_again - taken
        return record

    def _close_one(
        self, requested: RequestedFile, record: ChunkRecord, call: int | None, retry_after_ms: int
    ) -> FileResult | None:
        """One file's entry in the record and its result (None: deferred by the caller, as the
        unsent files of a day Polyv says is spent are). The latest answer wins: an accepted call
        over a refusal, a refusal over an unknown outcome."""
        file, request, settlement = requested.file, requested.request, record.settlement
        leftover = self.stop.reason if self.stop is not None else ""
        if file in self.task_ids:
            settlement.submitted[file] = self.task_ids[file]
            return FileResult(request, Fate.SUBMITTED, file=file, task_id=self.task_ids[file], call=call)
        if file in self.rejected:
            settlement.rejected[file] = self.rejected[file]
            if file in self.refused_for_now:
                settlement.retry_after_ms[file] = retry_after_ms
            return FileResult(request, Fate.REJECTED, file=file, reason=self.rejected[file])
        if file in self.unisolated:  # not taken: not counted, claimable again; the caller defers it
            settlement.handed_back[file] = self.unisolated[file]
            record.unisolated.append((requested, self.unisolated[file]))
            return None
        if file in self.in_doubt:
            settlement.in_doubt.add(file)
            return FileResult(request, Fate.HANDED_BACK, file=file, reason=leftover)
        settlement.handed_back[file] = leftover
        record.unsent.append(requested)
        if self.stop is not None and self.stop.quota_spent:
            return None
        return FileResult(request, Fate.HANDED_BACK, file=file, reason=leftover)

    def mark_unknown(self, files: Sequence[FileRef]) -> None:
        """These files were in a call whose outcome is unknown: in doubt, and still counted."""
        self.in_doubt.update(files)
        self.unknown_outcomes += len(files)


class ChunkSender:
    """Sends one chunk's granted files, filling in its :class:`ChunkOutcome` as answers come."""

    def __init__(
        self,
        polyv: PolyvGateway,
        budget: CallBudget,
        *,
        today: Callable[[], str],
        resends: int,
        bisection_calls: int = BISECTION_CALLS_PER_CHUNK,
    ) -> None:
        self._polyv = polyv
        self._budget = budget
        self._today = today
        self._resends = resends
        self._bisection_calls = bisection_calls

    def send(self, outcome: ChunkOutcome) -> None:
        """Send ``outcome.granted``; sets ``outcome.stop`` to why the calls ended early, or None.
        Only a ``BaseException`` (Ctrl-C, a system exit) leaves it at :data:`NOT_ENDED`."""
        try:
            refusal = self._try(outcome.granted, outcome)
            if refusal is not None:
                self._isolate(outcome.granted, refusal, outcome)
            outcome.stop = None
        except Exception as exc:  # every exception ends the calls; the claim's owner records them
            outcome.stop = stop_for(exc)
            if isinstance(exc, PolyvContractViolation):
                outcome.bug = exc

    def _try(self, group: Sequence[RequestedFile], outcome: ChunkOutcome) -> PolyvFilesRefused | None:
        """Push ``group``; None once Polyv accepted it, else Polyv's refusal of it."""
        files = [u.file for u in group]
        resend = 0
        while True:
            if not self._budget.time_for_a_call():
                raise _OutOfTime
            outcome.in_flight = files
            try:
                task_id = self._polyv.push(files)
                break
            except PolyvFilesRefused as refusal:
                outcome.in_flight = []
                return refusal
            except PolyvUnavailable as exc:
                outcome.in_flight = []
                if not exc.ambiguous:
                    raise
                outcome.mark_unknown(files)
                if not self._may_resend(len(files), resend):
                    raise
                outcome.counted_again += len(files)
                resend += 1
                logger.warning(
                    "Polyv call outcome unknown: counted its files again and re-sending",
                    extra={"files": len(files), "error": str(exc), "resend": resend},
                )
            except (PolyvQuotaSpent, PolyvConfigurationError, PolyvContractViolation):
                outcome.in_flight = []  # Polyv answered: it did not take the call
                raise
            # any other exception leaves in_flight set: those files are in doubt
        outcome.in_flight = []
        self._accepted(group, task_id, outcome)
        return None

    def _may_resend(self, files: int, resend: int) -> bool:
        return (
            resend < self._resends
            and self._budget.time_for_a_call()
            and self._budget.count_again(files, resend)
        )

    def _accepted(self, group: Sequence[RequestedFile], task_id: str, outcome: ChunkOutcome) -> None:
        call = CallRecord(task_id=task_id, files=len(group))
        outcome.accepted.append(AcceptedCall(call, list(group)))
        day = self._today()
        for requested in group:
            outcome.task_ids[requested.file] = task_id
            outcome.answered_day[requested.file] = day
            outcome.in_doubt.discard(requested.file)  # a later answer says more than an unknown one
        logger.info(
            "Polyv accepted a call",
            extra={
                "task_id": task_id,
                "files": len(group),
                "message_ids": sorted({m for u in group if (m := u.request.origin.message_id)}),
                "s3_keys": sorted({k for u in group if (k := u.request.origin.s3_key)})[:10],
            },
        )

    def _isolate(
        self, group: Sequence[RequestedFile], refusal: PolyvFilesRefused, outcome: ChunkOutcome
    ) -> None:
        """``group`` is known to be refused with ``refusal``: find its bad files, within the
        chunk's and the invocation's bisection budgets (what they leave unsplit is deferred).

        Each step tries all the parts of a split (:func:`parts_of`: a few messages apart, or two
        halves) before it takes any refused part further apart, so that a good message of the
        batch is sent before a bad one's files spend the budget; within one message it goes
        depth first, so that every invocation records some files for good before its deadline."""
        if len(group) == 1:
            self._refused(group, outcome, refusal.polyv_message, for_now=refusal.for_now)
            return
        parts = parts_of(group)
        refused: list[tuple[Sequence[RequestedFile], PolyvFilesRefused]] = []
        for i, part in enumerate(parts):
            if i == len(parts) - 1 and not refused:
                refused.append((part, refusal))  # the others are clean: this one caused the refusal
            elif not self._may_bisect():
                for rest in parts[i:]:
                    self._unisolated(rest, refusal, outcome)
                break
            elif (part_refusal := self._try(part, outcome)) is not None:
                refused.append((part, part_refusal))
        for part, part_refusal in refused:
            self._isolate(part, part_refusal, outcome)

    def _may_bisect(self) -> bool:
        """Whether one more bisection call fits the chunk's budget and the invocation's."""
        if self._bisection_calls <= 0 or not self._budget.take_bisection_call():
            return False
        self._bisection_calls -= 1
        return True

    @staticmethod
    def _refused(
        group: Sequence[RequestedFile], outcome: ChunkOutcome, reason: str, *, for_now: bool
    ) -> None:
        """Files Polyv refused: not counted. Those ``for_now`` may be asked again later the same
        day (or at once by a request naming them)."""
        for requested in group:
            outcome.rejected[requested.file] = reason
            outcome.in_doubt.discard(requested.file)
            if for_now:
                outcome.refused_for_now.add(requested.file)

    def _unisolated(
        self, group: Sequence[RequestedFile], refusal: PolyvFilesRefused, outcome: ChunkOutcome
    ) -> None:
        """A refused group the bisection budget leaves unsplit: some of it may be good. Polyv
        took none of it (a refusal is all-or-nothing): the owner defers it to the backlog."""
        reason = NOT_ISOLATED.format(message=refusal.polyv_message)
        for requested in group:
            outcome.unisolated[requested.file] = reason
            outcome.in_doubt.discard(requested.file)  # a later answer says more than an unknown one
        logger.warning(
            "bisection budget spent: files of a refused call left unisolated, deferred",
            extra={"files": len(group), "polyv_message": refusal.polyv_message},
        )


#: A refused group of this many messages at most is split into its messages at once.
MESSAGE_SPLIT = 8


def parts_of(group: Sequence[RequestedFile]) -> list[Sequence[RequestedFile]]:
    """How bisection splits a refused group: into its messages when it holds a few (files of one
    message are contiguous in a plan), else in two at the message boundary nearest its middle, or
    at its middle. A producer's bad message is told apart from its batch's good ones first."""
    runs = [i for i in range(1, len(group)) if group[i].request.origin != group[i - 1].request.origin]
    if 1 <= len(runs) < MESSAGE_SPLIT:
        cuts = [0, *runs, len(group)]
        return [group[a:b] for a, b in pairwise(cuts)]
    middle = len(group) // 2
    cut = min(runs, key=lambda i: (abs(i - middle), i)) if runs else middle
    return [group[:cut], group[cut:]]


class _OutOfTime(Exception):
    """No time for another call before the invocation's deadline."""


def stop_for(exc: Exception) -> Stop:
    """Why the calls of a chunk ended, from what ended them; logs it once."""
    if isinstance(exc, _OutOfTime):
        return Stop(OUT_OF_TIME)
    if isinstance(exc, PolyvQuotaSpent):
        logger.warning("Polyv says today's quota is spent")
        return Stop("Polyv says today's quota is spent", whole_run=False, quota_spent=True)
    if isinstance(exc, PolyvConfigurationError):
        logger.error("configuration error: stopping all Polyv calls", extra={"error": str(exc)})
        return Stop(f"configuration error: {exc}")
    if isinstance(exc, PolyvContractViolation):
        logger.critical("BUG: Polyv says a call broke its limits", extra={"error": str(exc)})
        return Stop(f"bug: {exc}")
    if isinstance(exc, PolyvUnavailable) and exc.refused:
        logger.warning("Polyv refused a call with an unknown error", extra={"error": str(exc)})
        return Stop(str(exc), whole_run=False)
    if isinstance(exc, PolyvUnavailable):
        logger.warning("Polyv unavailable: handing work back", extra={"error": str(exc)})
        return Stop(f"Polyv unavailable: {exc}")
    # Anything else (the store failing while counting a re-send, a defect): the claims must still
    # end. The files of an unanswered call are in doubt, the rest handed back.
    logger.exception("unexpected error while calling Polyv: handing work back")
    return Stop(f"unexpected error: {type(exc).__name__}")
