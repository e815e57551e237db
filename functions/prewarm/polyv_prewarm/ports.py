"""The interfaces the service depends on, and the errors they may raise.

Adapters (``polyv``, ``quota``) implement these; unit tests use in-memory fakes.
Nothing here imports AWS or HTTP libraries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .model import FileRef


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


class QuotaStoreUnavailable(PrewarmError):
    """The quota store could not be read or written: nothing may be sent unaccounted."""


class PolyvGateway(Protocol):
    """Submits one prewarm call of at most 100 files."""

    def userid(self) -> str: ...

    def push(self, files: Sequence[FileRef]) -> str:
        """Return Polyv's taskId, or raise a :class:`PolyvError`."""
        ...


class QuotaStore(Protocol):
    """Counts the files sent per quota day, atomically across concurrent invocations."""

    def reserve(self, day: str, wanted: int, limit: int) -> int:
        """Reserve up to ``wanted`` files of ``day``; return how many were granted (0..wanted).
        The day's count never exceeds ``limit``."""
        ...

    def release(self, day: str, count: int) -> None:
        """Give back ``count`` files reserved for a call that Polyv refused."""
        ...

    def mark_exhausted(self, day: str, limit: int) -> None:
        """Record that Polyv itself says the day's quota is spent: no further reservation today."""
        ...

    def used(self, day: str) -> int: ...
