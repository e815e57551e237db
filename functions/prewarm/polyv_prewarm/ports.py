"""The interfaces the service depends on, and the errors they may raise.

Adapters (``polyv``, ``quota``) implement these; unit tests use in-memory fakes.
Nothing here imports AWS or HTTP libraries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .model import DeferredFile, FileRef, LedgerEntry, QuotaView


class PrewarmError(Exception):
    """Base of every error this package raises on purpose."""


class PolyvError(PrewarmError):
    """Polyv did not accept a call."""


class PolyvFilesRefused(PolyvError):
    """Polyv refused the whole call because of some of its files (``illeagal vid``,
    ``bitrate does not exist``). The call consumed no quota."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.polyv_message = message


class PolyvQuotaSpent(PolyvError):
    """Polyv says the account's daily quota is spent (maybe by another client)."""


class PolyvConfigurationError(PolyvError):
    """The secret is wrong even after a fresh read, or Polyv rejected the call for a reason
    that only a person can fix. No further call can succeed in this invocation."""


class PolyvContractViolation(PolyvError):
    """Polyv says we broke a rule we guarantee (more than 100 files): a bug in this package."""


class PolyvUnavailable(PolyvError):
    """Transport or service fault that survived the client's bounded retries.

    ``ambiguous`` is true when the request may have reached Polyv and been accepted
    (a read timeout, a connection reset after sending, an unreadable 200 answer): its quota
    must stay counted, because the counter may over-count but must never under-count.
    """

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


class StoreUnavailable(PrewarmError):
    """The ledger or the backlog could not be read or written: nothing may be sent unaccounted."""


@dataclass(slots=True)
class ClaimResult:
    """The outcome of claiming a chunk of files for one quota day."""

    granted: list[FileRef] = field(default_factory=list)  # claimed and counted: send these
    known: dict[FileRef, LedgerEntry] = field(default_factory=dict)  # already handled today
    no_room: list[FileRef] = field(default_factory=list)  # today's quota is spent


@dataclass(slots=True)
class Settlement:
    """What happened to the files of a claimed chunk, to be written to the ledger at once."""

    submitted: dict[FileRef, str] = field(default_factory=dict)  # file -> taskId
    rejected: dict[FileRef, str] = field(default_factory=dict)  # file -> Polyv's reason
    in_doubt: set[FileRef] = field(default_factory=set)  # stays counted
    handed_back: dict[FileRef, str] = field(default_factory=dict)  # file -> why; not counted
    release: int = 0  # counted files Polyv certainly did not take
    duplicates: list[FileRef] = field(default_factory=list)  # asked for again: count it
    origins: dict[FileRef, str] = field(default_factory=dict)  # where each file came from

    def __bool__(self) -> bool:
        return bool(self.submitted or self.rejected or self.in_doubt or self.handed_back or self.duplicates)


class PolyvGateway(Protocol):
    """Submits one prewarm call of at most 100 files."""

    def userid(self) -> str: ...

    def push(self, files: Sequence[FileRef]) -> str:
        """Return Polyv's taskId, or raise a :class:`PolyvError`."""
        ...


class DayLedger(Protocol):
    """Per quota day: the count of files sent (never above the limit, across concurrent
    invocations) and what happened to every file. All changes are atomic."""

    def claim(
        self,
        day: str,
        files: Sequence[tuple[FileRef, str]],
        limit: int,
        *,
        now: datetime,
        force: bool = False,
    ) -> ClaimResult:
        """Claim and count, at once, the files (with their origins) not yet handled today, as
        many as the quota allows. ``force`` claims files already submitted today again."""
        ...

    def settle(self, day: str, settlement: Settlement, *, now: datetime) -> None: ...

    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        """Count ``count`` more files (all or nothing), to re-send a call of unknown outcome."""
        ...

    def mark_exhausted(self, day: str, limit: int) -> None:
        """Polyv itself says the day's quota is spent: no further claim today."""
        ...

    def usage(self, day: str, limit: int) -> QuotaView: ...

    def entries(self, day: str) -> dict[FileRef, LedgerEntry]: ...

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        """day -> brIndex -> entry, for the given days."""
        ...


class Backlog(Protocol):
    """Files deferred to a later quota day, oldest first, each stored once."""

    def defer(self, files: Sequence[tuple[FileRef, str]], *, now: datetime) -> int:
        """Store the files (with their origins) not already pending; return how many were new."""
        ...

    def oldest(self, limit: int) -> list[DeferredFile]: ...

    def remove(self, files: Sequence[FileRef]) -> None: ...

    def pending(self, files: Sequence[FileRef]) -> dict[FileRef, DeferredFile]: ...

    def stats(self) -> tuple[int, str | None]:
        """(number of files pending, deferredAt of the oldest)."""
        ...
