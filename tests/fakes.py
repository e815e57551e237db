"""In-memory fakes of the service's ports, for fast unit tests (fakes over mocks)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from polyv_prewarm.model import DeferredFile, EntryState, FileRef, LedgerEntry, QuotaView
from polyv_prewarm.ports import (
    ClaimResult,
    PolyvFilesRefused,
    Settlement,
    StoreUnavailable,
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

    def accepted_files(self) -> list[FileRef]:
        return [f for call in self.accepted for f in call]


class InMemoryLedger:
    """The day ledger's contract, in memory and under a lock (the atomicity DynamoDB gives)."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}
        self.exhausted: set[str] = set()
        self.files: dict[str, dict[FileRef, LedgerEntry]] = {}
        self.unavailable = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("day ledger: ProvisionedThroughputExceededException")

    def claim(self, day, files, limit, *, now, force=False) -> ClaimResult:
        self._check()
        result = ClaimResult()
        at = now.isoformat()
        with self._lock:
            entries = self.files.setdefault(day, {})
            for file, origin in files:
                entry = entries.get(file)
                if entry is not None and not force and not entry.reclaimable(now):
                    result.known[file] = entry
                elif day in self.exhausted or self.used.get(day, 0) >= limit:
                    result.no_room.append(file)
                else:
                    self.used[day] = self.used.get(day, 0) + 1
                    entries[file] = LedgerEntry(EntryState.CLAIMED, at, origin=origin)
                    result.granted.append(file)
        return result

    def settle(self, day: str, settlement: Settlement, *, now: datetime) -> None:
        self._check()
        with self._lock:
            entries = self.files.setdefault(day, {})
            at = now.isoformat()
            for file, task in settlement.submitted.items():
                entries[file] = LedgerEntry(EntryState.SUBMITTED, at, task_id=task)
            for file, reason in settlement.rejected.items():
                entries[file] = LedgerEntry(EntryState.REJECTED, at, reason=reason)
            for file in settlement.in_doubt:
                entries[file] = LedgerEntry(EntryState.IN_DOUBT, at)
            for file, reason in settlement.handed_back.items():
                entries[file] = LedgerEntry(EntryState.HANDED_BACK, at, reason=reason)
            for file in settlement.duplicates:
                e = entries[file]
                entries[file] = LedgerEntry(e.state, e.at, e.task_id, e.reason, e.origin, e.duplicates + 1)
            self.used[day] = self.used.get(day, 0) - settlement.release

    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        self._check()
        with self._lock:
            if day in self.exhausted or self.used.get(day, 0) + count > limit:
                return False
            self.used[day] = self.used.get(day, 0) + count
            return True

    def mark_exhausted(self, day: str, limit: int) -> None:
        self._check()
        with self._lock:
            self.exhausted.add(day)
            self.used[day] = limit

    def usage(self, day: str, limit: int) -> QuotaView:
        self._check()
        return QuotaView(day, self.used.get(day, 0), limit, exhausted=day in self.exhausted)

    def entries(self, day: str) -> dict[FileRef, LedgerEntry]:
        self._check()
        return dict(self.files.get(day, {}))

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        self._check()
        return {
            d: {f.br_index: e for f, e in self.files.get(d, {}).items() if f.vid == vid}
            for d in days
            if any(f.vid == vid for f in self.files.get(d, {}))
        }


class InMemoryBacklog:
    def __init__(self) -> None:
        self.items: dict[FileRef, DeferredFile] = {}
        self.unavailable = False

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("backlog: InternalServerError")

    def defer(self, files, *, now) -> int:
        self._check()
        new = 0
        for file, origin in files:
            if file not in self.items:
                self.items[file] = DeferredFile(file, now.isoformat(), origin)
                new += 1
        return new

    def oldest(self, limit: int) -> list[DeferredFile]:
        self._check()
        return sorted(self.items.values(), key=lambda d: (d.deferred_at, d.file.key))[:limit]

    def remove(self, files) -> None:
        self._check()
        for file in files:
            self.items.pop(file, None)

    def pending(self, files) -> dict[FileRef, DeferredFile]:
        self._check()
        return {f: self.items[f] for f in files if f in self.items}

    def stats(self) -> tuple[int, str | None]:
        self._check()
        oldest = self.oldest(1)
        return len(self.items), oldest[0].deferred_at if oldest else None
