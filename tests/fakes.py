"""In-memory fakes of the service's ports, for fast unit tests (fakes over mocks)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from polyv_prewarm.model import FileRef
from polyv_prewarm.ports import (
    PolyvConfigurationError,
    PolyvFilesRefused,
    PolyvQuotaSpent,
    PolyvUnavailable,
    QuotaStoreUnavailable,
)

USERID = "e6b23c6f51"


def vid(i: int) -> str:
    return f"{USERID}{i:022x}_e"


class FakePolyv:
    """Accepts calls like Polyv: refuses a whole call holding an unknown vid or missing bitrate."""

    def __init__(self, *, unknown: set[str] = frozenset(), missing: set[FileRef] = frozenset()) -> None:
        self.unknown = set(unknown)
        self.missing = set(missing)
        self.calls: list[list[FileRef]] = []  # every call made, accepted or not
        self.accepted: list[list[FileRef]] = []
        self.fail_with: list[Exception] = []  # raised by the next calls, in order

    def userid(self) -> str:
        return USERID

    def push(self, files: Sequence[FileRef]) -> str:
        assert 1 <= len(files) <= 100
        self.calls.append(list(files))
        if self.fail_with:
            raise self.fail_with.pop(0)
        if any(f.vid in self.unknown for f in files):
            raise PolyvFilesRefused("illeagal vid")
        if any(f in self.missing for f in files):
            raise PolyvFilesRefused("bitrate does not exist")
        self.accepted.append(list(files))
        return f"task-{len(self.accepted)}"


class InMemoryQuota:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.exhausted: set[str] = set()
        self.unavailable = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.unavailable:
            raise QuotaStoreUnavailable("quota store: ProvisionedThroughputExceededException")

    def reserve(self, day: str, wanted: int, limit: int) -> int:
        self._check()
        with self._lock:
            if day in self.exhausted:
                return 0
            granted = max(0, min(wanted, limit - self.counts.get(day, 0)))
            self.counts[day] = self.counts.get(day, 0) + granted
            return granted

    def release(self, day: str, count: int) -> None:
        self._check()
        with self._lock:
            if day not in self.exhausted:
                self.counts[day] -= count

    def mark_exhausted(self, day: str, limit: int) -> None:
        self._check()
        with self._lock:
            self.exhausted.add(day)
            self.counts[day] = limit

    def used(self, day: str) -> int:
        self._check()
        return self.counts.get(day, 0)


__all__ = ["FakePolyv", "InMemoryQuota", "PolyvConfigurationError", "PolyvQuotaSpent", "PolyvUnavailable"]
