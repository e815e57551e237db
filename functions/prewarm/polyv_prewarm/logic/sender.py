"""One claimed chunk's Polyv calls, and what became of each of its files: a :class:`ChunkOutcome`.

* When Polyv refuses a call because of some files, the sender isolates them by bisection: one bad
  file among n costs at most about 2*log2(n) extra calls, and a chunk and an invocation have a
  budget of such calls (what it leaves unsplit is deferred, never sent unaccounted or lost).
* When a call's outcome is unknown (Polyv may have accepted it), it re-sends the call only after
  its budget counted the files again: the counter may over-count, never under-count.
* Before every call it asks its budget for the time: bisection and re-sends obey the deadline.

The outcome is a value: every step returns the next one, and the sender keeps the latest
(:attr:`ChunkSender.outcome`), so the claim's owner can record it in a ``finally`` whatever
interrupts the calls. A call's files are *in flight* from the moment it starts until an answer
resolves them, and the one place that maps an answer (or an exception) to "taken", "not taken" or
"unknown" is :func:`_taken`: what escapes unresolved stays in flight, and in flight is in doubt
(:meth:`ChunkOutcome.close` builds both the ledger record and the file results).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from itertools import pairwise
from typing import NamedTuple, Protocol

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.claims import FileClaim
from ..domain.model import CallRecord, EntryState, FileRef, Stopped
from ..domain.placement import Disposition, Placed
from ..domain.ports import (
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvFilesRefused,
    PolyvGateway,
    PolyvQuotaSpent,
    PolyvUnavailable,
    Settled,
    Settlement,
)

logger = Logger(service=SERVICE, child=True)

OUT_OF_TIME = "too little time left in this invocation for another call"
INTERRUPTED = "the invocation stopped before the calls ended"
NOT_ISOLATED = "in a call Polyv refused ({message}), not isolated within the bisection budget"
#: A call whose outcome is unknown is sent again at most this often, each time counted again.
AMBIGUOUS_RESENDS = 1
#: A refused group of this many messages at most is split into its messages at once.
MESSAGE_SPLIT = 8


class CallBudget(Protocol):
    """What a chunk's calls may spend beyond the claim: time, quota to re-send, and bisection."""

    def time_for_a_call(self) -> bool: ...

    def count_again(self, files: int, attempt: int) -> bool:
        """Back off before re-send number ``attempt``, then count ``files`` more on the day's
        counter; False when the day has no room for them."""
        ...

    def take_bisection_call(self) -> bool:
        """One more call to isolate refused files, from the invocation's budget; False when spent."""
        ...


class Stop(NamedTuple):
    """Why a chunk's calls ended early. ``whole_run``: no further call in this invocation (Polyv or
    the store down, a configuration error); otherwise only this chunk's files failed. ``park``:
    the files not sent (and those in doubt) wait in the backlog instead of coming back with their
    message (Polyv down, the deadline near); ``polyv_down``: Polyv itself is unavailable."""

    reason: str
    kind: Stopped = Stopped.UNEXPECTED
    whole_run: bool = True
    quota_spent: bool = False
    park: bool = False
    polyv_down: bool = False
    #: Polyv answered, but what it said cannot tell whether it took the call (a 200 without a
    #: taskId): the call's files are in doubt and wait as resends; nothing else stops
    answered_in_doubt: bool = False

    def of_unsent(self) -> Disposition:
        """What becomes of a file its calls never sent."""
        if self.park:
            return Disposition.PARKED
        if self.quota_spent:
            return Disposition.NO_ROOM
        if not self.whole_run and not self.answered_in_doubt:
            return Disposition.REFUSED  # its call's unknown error (a drain counts a failure)
        return Disposition.HANDED_BACK

    def of_in_doubt(self) -> Disposition:
        """What becomes of a file whose call may have reached Polyv."""
        if self.park:
            return Disposition.PARKED_IN_DOUBT
        if self.answered_in_doubt:
            return Disposition.ANSWERED_IN_DOUBT
        return Disposition.HANDED_BACK


NOT_ENDED = Stop(INTERRUPTED, Stopped.INTERRUPTED)


class AcceptedCall(NamedTuple):
    call: CallRecord
    files: tuple[FileClaim, ...]


class ChunkRecord(NamedTuple):
    """What the owner of a claim writes and reports once the chunk's calls are over."""

    settlement: Settlement  # for the day ledger
    calls: list[CallRecord]  # the accepted calls, in order
    placed: list[Placed]  # one disposition per granted file


@dataclass(frozen=True)
class ChunkOutcome:
    """What is known of a chunk's granted files at one instant (each step returns a new one)."""

    granted: tuple[FileClaim, ...]
    accepted: tuple[AcceptedCall, ...] = ()
    task_ids: Mapping[FileRef, str] = field(default_factory=dict)
    answered_day: Mapping[FileRef, str] = field(default_factory=dict)  # quota day of Polyv's answer
    rejected: Mapping[FileRef, str] = field(default_factory=dict)  # file -> Polyv's reason
    refused_for_now: frozenset[FileRef] = frozenset()  # a bitrate that may exist later
    unisolated: Mapping[FileRef, str] = field(default_factory=dict)  # refused call left unsplit: why
    in_doubt: frozenset[FileRef] = frozenset()  # in a call whose outcome is unknown
    in_flight: tuple[FileRef, ...] = ()  # in a call no answer has resolved yet
    unknown_outcomes: int = 0  # file-attempts that may have been accepted
    counted_again: int = 0  # quota counted again to re-send calls in doubt
    stop: Stop | None = NOT_ENDED  # None once the calls ended normally
    bug: PolyvContractViolation | None = None  # Polyv says we broke its limits: fail loudly

    # -- the steps ------------------------------------------------------------------------------
    def calling(self, files: Sequence[FileRef]) -> ChunkOutcome:
        return replace(self, in_flight=tuple(files))

    def resolved(self, files: Sequence[FileRef], taken: Taken) -> ChunkOutcome:
        """A call answered with something other than a taskId: not taken, or of unknown outcome."""
        if taken is Taken.NO:
            return replace(self, in_flight=())
        return replace(
            self,
            in_flight=(),
            in_doubt=self.in_doubt | frozenset(files),
            unknown_outcomes=self.unknown_outcomes + len(files),
        )

    def accepted_call(self, group: Sequence[FileClaim], task_id: str, day: str) -> ChunkOutcome:
        files = [u.file for u in group]
        return replace(
            self,
            in_flight=(),
            accepted=(*self.accepted, AcceptedCall(CallRecord(task_id, len(group)), tuple(group))),
            task_ids={**self.task_ids, **dict.fromkeys(files, task_id)},
            answered_day={**self.answered_day, **dict.fromkeys(files, day)},
            in_doubt=self.in_doubt - frozenset(files),  # a later answer says more than an unknown one
        )

    def counted(self, files: int) -> ChunkOutcome:
        return replace(self, counted_again=self.counted_again + files)

    def refused(self, group: Sequence[FileClaim], reason: str, *, for_now: bool) -> ChunkOutcome:
        files = frozenset(u.file for u in group)
        return replace(
            self,
            rejected={**self.rejected, **dict.fromkeys(files, reason)},
            refused_for_now=self.refused_for_now | files if for_now else self.refused_for_now,
            in_doubt=self.in_doubt - files,
        )

    def left_unisolated(self, group: Sequence[FileClaim], reason: str) -> ChunkOutcome:
        files = frozenset(u.file for u in group)
        return replace(
            self,
            unisolated={**self.unisolated, **dict.fromkeys(files, reason)},
            in_doubt=self.in_doubt - files,
        )

    def ended(self, stop: Stop | None, bug: PolyvContractViolation | None = None) -> ChunkOutcome:
        return replace(self, stop=stop, bug=bug)

    # -- the record -----------------------------------------------------------------------------
    def close(self, first_call: int, *, retry_after_ms: int) -> ChunkRecord:
        """The ledger record and the file results, both from what is known now (``first_call``:
        the number the report gives this chunk's first accepted call). A call still in flight (the
        calls were interrupted while it was out) may have been accepted: in doubt."""
        known = self.resolved(self.in_flight, Taken.UNKNOWN) if self.in_flight else self
        record = ChunkRecord(Settlement(), [a.call for a in known.accepted], [])
        numbers = {f.file: n for n, a in enumerate(known.accepted, first_call) for f in a.files}
        for claim in known.granted:
            record.placed.append(
                known._close_one(claim, record.settlement, numbers.get(claim.file), retry_after_ms)
            )
        # Quota of files Polyv certainly did not take goes back (a call refused for the daily
        # limit too: Polyv refuses it whole); files in doubt stay counted.
        taken = len(known.task_ids) + known.unknown_outcomes
        record.settlement.release = len(known.granted) + known.counted_again - taken
        return record

    def _close_one(
        self, claim: FileClaim, settlement: Settlement, call: int | None, retry_after_ms: int
    ) -> Placed:
        """One file's entry in the ledger's record, and its disposition. The latest answer wins:
        an accepted call over a refusal, a refusal over an unknown outcome."""
        file = claim.file
        stop = self.stop or Stop("")  # ended normally: every file has an answer
        if file in self.task_ids:
            settlement.fates[file] = Settled(EntryState.SUBMITTED, self.task_ids[file])
            return Placed(claim, Disposition.SUBMITTED, task_id=self.task_ids[file], call=call)
        if file in self.rejected:
            later = retry_after_ms if file in self.refused_for_now else None
            settlement.fates[file] = Settled(EntryState.REJECTED, self.rejected[file], later)
            return Placed(claim, Disposition.REJECTED, self.rejected[file])
        if file in self.unisolated:  # not taken: not counted, claimable again
            settlement.fates[file] = Settled(EntryState.HANDED_BACK, self.unisolated[file])
            return Placed(claim, Disposition.UNISOLATED, self.unisolated[file])
        if file in self.in_doubt:
            settlement.fates[file] = Settled(EntryState.IN_DOUBT)  # stays counted; sent again later
            return Placed(claim, stop.of_in_doubt(), stop.reason)
        settlement.fates[file] = Settled(EntryState.HANDED_BACK, stop.reason)
        return Placed(claim, stop.of_unsent(), stop.reason)


class Taken(Enum):
    """Whether Polyv took a call that did not answer with a taskId."""

    NO = "Polyv answered, and did not take it"
    UNKNOWN = "it may have been accepted"


def _taken(exc: Exception) -> Taken:
    """The one mapping of a failed call to what it means for its files' count."""
    if isinstance(exc, PolyvUnavailable):
        return Taken.UNKNOWN if exc.ambiguous else Taken.NO
    if isinstance(
        exc, PolyvFilesRefused | PolyvQuotaSpent | PolyvConfigurationError | PolyvContractViolation
    ):
        return Taken.NO
    return Taken.UNKNOWN  # anything else (a defect, the store failing): it may have gone out


class ChunkSender:
    """Sends one chunk's granted files; :attr:`outcome` is what is known at every instant."""

    def __init__(
        self,
        polyv: PolyvGateway,
        budget: CallBudget,
        granted: Sequence[FileClaim],
        *,
        today: Callable[[], str],
        bisection_calls: int,
    ) -> None:
        self._polyv = polyv
        self._budget = budget
        self._today = today
        self._bisection_calls = bisection_calls
        self.outcome = ChunkOutcome(tuple(granted))

    def send(self) -> ChunkOutcome:
        """Send the granted files; the outcome's ``stop`` says why the calls ended early, or is
        None. Only a ``BaseException`` (Ctrl-C, a system exit) leaves it at :data:`NOT_ENDED`."""
        try:
            refusal = self._try(self.outcome.granted)
            if refusal is not None:
                self._isolate(self.outcome.granted, refusal)
            self.outcome = self.outcome.ended(None)
        except Exception as exc:  # every exception ends the calls; the claim's owner records them
            bug = exc if isinstance(exc, PolyvContractViolation) else None
            self.outcome = self.outcome.ended(stop_for(exc), bug)
        return self.outcome

    def _call(self, files: Sequence[FileRef]) -> str:
        """One push. Its files are in flight until an answer resolves them; an exception that
        escapes unresolved (a ``BaseException``) leaves them in flight: in doubt."""
        self.outcome = self.outcome.calling(files)
        try:
            return self._polyv.push(files)
        except Exception as exc:
            self.outcome = self.outcome.resolved(files, _taken(exc))
            raise

    def _try(self, group: Sequence[FileClaim]) -> PolyvFilesRefused | None:
        """Push ``group``; None once Polyv accepted it, else Polyv's refusal of it."""
        files = [u.file for u in group]
        resend = 0
        while True:
            if not self._budget.time_for_a_call():
                raise _OutOfTime
            try:
                task_id = self._call(files)
            except PolyvFilesRefused as refusal:
                return refusal
            except PolyvUnavailable as exc:
                if not exc.ambiguous or not self._may_resend(len(files), resend):
                    raise
                self.outcome = self.outcome.counted(len(files))
                resend += 1
                logger.warning(
                    "Polyv call outcome unknown: counted its files again and re-sending",
                    extra={"files": len(files), "error": str(exc), "resend": resend},
                )
                continue
            self.outcome = self.outcome.accepted_call(group, task_id, self._today())
            _log_accepted(group, task_id)
            return None

    def _may_resend(self, files: int, attempt: int) -> bool:
        return (
            attempt < AMBIGUOUS_RESENDS
            and self._budget.time_for_a_call()
            and self._budget.count_again(files, attempt)
        )

    def _isolate(self, group: Sequence[FileClaim], refusal: PolyvFilesRefused) -> None:
        """``group`` is known to be refused with ``refusal``: find its bad files, within the
        chunk's and the invocation's bisection budgets (what they leave unsplit is deferred).

        Each step tries all the parts of a split (:func:`parts_of`: a few messages apart, or two
        halves) before it takes any refused part further apart, so that a good message of the
        batch is sent before a bad one's files spend the budget; within one message it goes
        depth first, so that every invocation records some files for good before its deadline."""
        if len(group) == 1:
            self.outcome = self.outcome.refused(group, refusal.polyv_message, for_now=refusal.for_now)
            return
        parts = parts_of(group)
        refused: list[tuple[Sequence[FileClaim], PolyvFilesRefused]] = []
        for i, part in enumerate(parts):
            if i == len(parts) - 1 and not refused:
                refused.append((part, refusal))  # the others are clean: this one caused the refusal
            elif not self._may_bisect():
                for rest in parts[i:]:
                    self._unisolated(rest, refusal)
                break
            elif (part_refusal := self._try(part)) is not None:
                refused.append((part, part_refusal))
        for part, part_refusal in refused:
            self._isolate(part, part_refusal)

    def _may_bisect(self) -> bool:
        """Whether one more bisection call fits the chunk's budget and the invocation's."""
        if self._bisection_calls <= 0 or not self._budget.take_bisection_call():
            return False
        self._bisection_calls -= 1
        return True

    def _unisolated(self, group: Sequence[FileClaim], refusal: PolyvFilesRefused) -> None:
        """A refused group the bisection budget leaves unsplit: some of it may be good. Polyv
        took none of it (a refusal is all-or-nothing): the owner defers it."""
        self.outcome = self.outcome.left_unisolated(group, NOT_ISOLATED.format(message=refusal.polyv_message))
        logger.warning(
            "bisection budget spent: files of a refused call left unisolated, deferred",
            extra={"files": len(group), "polyv_message": refusal.polyv_message},
        )


def _log_accepted(group: Sequence[FileClaim], task_id: str) -> None:
    logger.info(
        "Polyv accepted a call",
        extra={
            "task_id": task_id,
            "files": len(group),
            "message_ids": sorted({m for u in group if (m := u.request.origin.message_id)}),
            "s3_keys": sorted({k for u in group if (k := u.request.origin.s3_key)})[:10],
        },
    )


def parts_of(group: Sequence[FileClaim]) -> list[Sequence[FileClaim]]:
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
        return Stop(OUT_OF_TIME, Stopped.DEADLINE, park=True)
    if isinstance(exc, PolyvQuotaSpent):
        logger.warning("Polyv says today's quota is spent")
        return Stop("Polyv says today's quota is spent", whole_run=False, quota_spent=True)
    if isinstance(exc, PolyvConfigurationError):
        logger.error("configuration error: stopping all Polyv calls", extra={"error": str(exc)})
        return Stop(f"configuration error: {exc}", Stopped.CONFIGURATION)
    if isinstance(exc, PolyvContractViolation):
        logger.critical("BUG: Polyv says a call broke its limits", extra={"error": str(exc)})
        return Stop(f"bug: {exc}", Stopped.BUG)
    if isinstance(exc, PolyvUnavailable) and exc.refused:
        logger.warning("Polyv refused a call with an unknown error", extra={"error": str(exc)})
        return Stop(str(exc), whole_run=False)
    if isinstance(exc, PolyvUnavailable) and exc.ambiguous and exc.answered:
        logger.warning("Polyv answered a call ambiguously: its files are in doubt", extra={"error": str(exc)})
        return Stop(str(exc), whole_run=False, answered_in_doubt=True)
    if isinstance(exc, PolyvUnavailable) and exc.secret:
        logger.error("the Polyv secret is unreadable: parking the work", extra={"error": str(exc)})
        return Stop(str(exc), Stopped.CREDENTIALS, park=True)
    if isinstance(exc, PolyvUnavailable):
        logger.warning("Polyv unavailable: parking the work", extra={"error": str(exc)})
        return Stop(f"Polyv unavailable: {exc}", Stopped.POLYV_DOWN, park=True, polyv_down=True)
    # Anything else (the store failing while counting a re-send, a defect): the claims must still
    # end. The files of an unanswered call are in doubt, the rest handed back.
    logger.exception("unexpected error while calling Polyv: handing work back")
    return Stop(f"unexpected error: {type(exc).__name__}")
