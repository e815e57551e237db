"""In-memory fakes of the service's ports, for fast unit tests (fakes over mocks)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from polyv_prewarm.adapters.backlog import stamp
from polyv_prewarm.domain.breaker import PROBE_LEASE, BreakerState, opening
from polyv_prewarm.domain.claims import NO_FLAGS, FileClaim, decide
from polyv_prewarm.domain.model import (
    BacklogFigures,
    DeferredFile,
    EntryState,
    FileRef,
    FileRequest,
    LedgerEntry,
    ListedVideo,
    Origin,
    QuotaView,
    Tier,
    epoch_ms,
)
from polyv_prewarm.domain.ports import (
    Arrival,
    ClaimResult,
    PolyvFilesRefused,
    PolyvQuotaSpent,
    PolyvUnavailable,
    QueueUnavailable,
    Settled,
    Settlement,
    StoreUnavailable,
)
from polyv_prewarm.domain.quota import DayOutlook
from polyv_prewarm.domain.reconcile import Mark

USERID = "e6b23c6f51"


def vid(i: int, userid: str = USERID) -> str:
    return f"{userid}{i:022x}_e"


class FakePolyv:
    """Accepts calls like Polyv: refuses a whole call holding an unknown vid or missing bitrate, or
    a vid of another account than the one whose secretkey signs (``userid``'s)."""

    def __init__(
        self, *, unknown: set[str] = frozenset(), missing: set[FileRef] = frozenset(), userid: str = USERID
    ) -> None:
        self.account = userid
        self.unknown = set(unknown)
        self.missing = set(missing)
        self.calls: list[list[FileRef]] = []  # every call made, accepted or not
        self.accepted: list[list[FileRef]] = []
        self.fail_with: list[BaseException] = []  # raised by the next calls, in order
        self.on_push: Callable[[list[FileRef]], None] | None = None  # e.g. moves a clock: latency
        self.quota_left: int | None = None  # Polyv's own count of the day: None, no limit
        self.lookups: list[str] = []  # every get-video-msg asked
        self.lookup_fails = False  # get-video-msg unreachable
        self.listed: list[ListedVideo] = []  # get-new-list's videos, newest first
        self.listing_fails = False  # get-new-list unreachable
        self.pages_asked: list[tuple[int, str | None, str | None]] = []  # (page, startDate, endDate)

    def userid(self) -> str:
        return self.account

    def definitions(self, vid: str) -> frozenset[int]:
        """get-video-msg: the bitrates a known vid has (all but the ``missing`` ones)."""
        self.lookups.append(vid)
        if self.lookup_fails:
            raise PolyvUnavailable("get-video-msg: ConnectTimeout", ambiguous=False)
        if vid in self.unknown:
            raise PolyvUnavailable("get-video-msg: 'illeagal vid'", ambiguous=False, refused=True)
        return frozenset(br for br in (1, 2, 3) if FileRef(vid, br) not in self.missing)

    def new_videos(
        self, *, page: int, per_page: int, start_date: str | None = None, end_date: str | None = None
    ) -> list[ListedVideo]:
        """get-new-list: ``listed`` of the dates (upload day, inclusive), a page of it."""
        self.pages_asked.append((page, start_date, end_date))
        if self.listing_fails:
            raise PolyvUnavailable("get-new-list: ConnectTimeout", ambiguous=False)
        dated = [v for v in self.listed if (start_date or "") <= v.uploaded[:10] <= (end_date or "9999")]
        return dated[(page - 1) * per_page : page * per_page]

    def push(self, files: Sequence[FileRef]) -> str:
        assert 1 <= len(files) <= 100
        self.calls.append(list(files))
        if self.on_push is not None:
            self.on_push(list(files))
        if self.fail_with:
            raise self.fail_with.pop(0)
        if any(f.vid in self.unknown or not f.vid.startswith(self.account) for f in files):
            raise PolyvFilesRefused("illeagal vid")
        if self.quota_left is not None and len(files) > self.quota_left:
            raise PolyvQuotaSpent("can't submit more than 2000 files one day")  # refused whole
        if any(f in self.missing for f in files):
            raise PolyvFilesRefused("bitrate does not exist", for_now=True)
        if self.quota_left is not None:
            self.quota_left -= len(files)
        self.accepted.append(list(files))
        return f"task-{len(self.accepted)}"

    def accepted_files(self) -> list[FileRef]:
        return [f for call in self.accepted for f in call]


class InMemoryLedger:
    """The day ledger's contract, in memory and under a lock (the atomicity DynamoDB gives). It
    claims by the domain's claim rule, which tests/contract/claim_cases.py holds (with the DynamoDB
    ledger on moto) to one table of cases; it gives quota back once per claim, as the DynamoDB
    ledger's release receipt does; and Polyv's "spent" marks a day without changing its count."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}
        self.first_rank: dict[str, int] = {}  # the fresh first-rank files claimed, per day
        self.first_rank_since: dict[str, datetime] = {}
        self.exhausted: set[str] = set()
        self.released: set[tuple[str, str]] = set()  # (day, owner): the release receipts
        self.files: dict[str, dict[FileRef, LedgerEntry]] = {}
        self.unavailable = False
        self.fail_settle: bool | int = False  # the record fails: always (True) or the next n times
        self.calls: list[str] = []  # the name of every method called, in order
        self._lock = threading.Lock()

    def _check(self, name: str, *, failing: bool = False) -> None:
        self.calls.append(name)
        if self.unavailable or failing:
            raise StoreUnavailable("day ledger: ProvisionedThroughputExceededException")

    def claim(self, day, files, limit, *, lease, now) -> ClaimResult:
        self._check("claim")
        result = ClaimResult()
        at = now.isoformat()
        with self._lock:
            entries = self.files.setdefault(day, {})
            for claim in files:
                file, origin = claim.file, claim.origin
                entry = entries.get(file)
                decision = decide(entry, now, claim.rule)
                if result.refuse(file, entry, decision):
                    continue
                if day in self.exhausted or self.used.get(day, 0) >= limit:
                    result.no_room.append(file)
                else:
                    self.used[day] = self.used.get(day, 0) + 1
                    if claim.first_rank:
                        self.first_rank[day] = self.first_rank.get(day, 0) + 1
                        self.first_rank_since.setdefault(day, now)
                    entries[file] = LedgerEntry(
                        EntryState.CLAIMED,
                        at,
                        origin=origin,
                        owner=lease.owner,
                        lease_until_ms=lease.until_ms,
                    )
                    result.granted.append(file)
        return result

    def settle(self, day: str, settlement: Settlement, *, lease, now: datetime) -> None:
        failing = self.fail_settle is True or (self.fail_settle is not False and self.fail_settle > 0)
        if not isinstance(self.fail_settle, bool) and self.fail_settle > 0:
            self.fail_settle -= 1
        self._check("settle", failing=failing)
        with self._lock:
            entries = self.files.setdefault(day, {})
            at = now.isoformat()

            def put(file: FileRef, state: EntryState, **fields) -> None:
                current = entries.get(file)
                if current is not None and current.owner == lease.owner:  # only what we still own
                    entries[file] = LedgerEntry(state, at, origin=current.origin, owner=lease.owner, **fields)

            for file, settled in settlement.fates.items():
                if settled.state is EntryState.SUBMITTED:
                    put(file, settled.state, task_id=settled.text)
                else:
                    put(file, settled.state, reason=settled.text, retry_after_ms=settled.retry_after_ms)
            if settlement.release and (day, lease.owner) not in self.released:  # once per claim
                self.released.add((day, lease.owner))
                self.used[day] = self.used.get(day, 0) - settlement.release

    def carry_over(self, day, submitted, origins, *, now) -> None:
        self._check("carry_over")
        with self._lock:
            entries = self.files.setdefault(day, {})
            self.used[day] = self.used.get(day, 0) + len(submitted)
            for file, task in submitted.items():
                entries[file] = LedgerEntry(EntryState.SUBMITTED, now.isoformat(), task_id=task)

    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        self._check("reserve_extra")
        with self._lock:
            if day in self.exhausted or self.used.get(day, 0) + count > limit:
                return False
            self.used[day] = self.used.get(day, 0) + count
            return True

    def mark_exhausted(self, day: str, limit: int) -> None:
        self._check("mark_exhausted")
        with self._lock:
            self.exhausted.add(day)
            self.used.setdefault(day, 0)

    def usage(self, day: str, limit: int) -> QuotaView:
        self._check("usage")
        return QuotaView(day, self.used.get(day, 0), limit, exhausted=day in self.exhausted)

    def confirmed(self, day: str) -> int:
        self._check("confirmed")
        return sum(1 for e in self.files.get(day, {}).values() if e.state is EntryState.SUBMITTED)

    def outlook(self, day: str) -> DayOutlook:
        self._check("outlook")
        return DayOutlook(self.used.get(day, 0), self.first_rank.get(day, 0), self.first_rank_since.get(day))

    def lookup(self, day: str, files) -> dict[FileRef, LedgerEntry]:
        self._check("lookup")
        entries = self.files.get(day, {})
        return {f: entries[f] for f in files if f in entries}

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        self._check("history")
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

    def defer(self, files, *, now, priority_high=False, retry_at=None, reason=None, tier=Tier.NORMAL) -> int:
        self._check()
        new = 0
        for claim in files:
            file = claim.file
            current = self.items.get(file)
            if current is None:
                self.items[file] = DeferredFile(
                    file,
                    now.isoformat(),
                    claim.origin,
                    force=claim.rule.force,
                    explicit=claim.rule.explicit,
                    priority_high=priority_high,
                    retry_at=stamp(retry_at) if retry_at is not None else None,
                    wait_reason=reason if retry_at is not None else None,
                    tier=tier,
                )
                new += 1
            elif tier.rank < current.tier.rank and not current.parked and not current.waiting:
                self.items[file] = current._replace(tier=tier)
        return new

    def _drainable(self, tier=Tier.NORMAL) -> list[DeferredFile]:
        return sorted(
            (d for d in self.items.values() if not d.parked and not d.waiting and d.tier is tier),
            key=lambda d: (d.deferred_at, d.file.key),
        )

    def move(self, files, tier) -> None:
        self._check()
        for deferred in files:
            if deferred.file in self.items:
                self.items[deferred.file] = self.items[deferred.file]._replace(
                    tier=tier, retry_at=None, wait_reason=None
                )

    def add_backfill(self, files, *, now) -> int:
        self._check()
        new = [(f, o) for f, o in dict(files).items() if f not in self.items]
        for file, origin in new:
            self.items[file] = DeferredFile(file, now.isoformat(), origin, tier=Tier.BACKFILL)
        return len(new)

    def due(self, limit: int, *, now, after=None) -> list[DeferredFile]:
        self._check()
        due = sorted(
            (d for d in self.items.values() if d.waiting and d.retry_at <= stamp(now)),
            key=lambda d: (d.retry_at, d.deferred_at, d.file.key),
        )
        if after is not None:
            mark = (after.retry_at, after.deferred_at, after.file.key)
            due = [d for d in due if (d.retry_at, d.deferred_at, d.file.key) > mark]
        return due[:limit]

    def wait(self, files, *, retry_at, reason) -> None:
        self._check()
        for deferred in files:
            if deferred.file in self.items:
                current = self.items[deferred.file]
                self.items[deferred.file] = current._replace(retry_at=stamp(retry_at), wait_reason=reason)

    def to_daily(self, files) -> None:
        self._check()
        for deferred in files:
            if deferred.file in self.items:
                self.items[deferred.file] = self.items[deferred.file]._replace(
                    retry_at=None, wait_reason=None
                )

    def oldest(self, limit: int, *, after=None, tier=Tier.NORMAL) -> list[DeferredFile]:
        self._check()
        ordered = self._drainable(tier)
        if after is not None:
            mark = (after.deferred_at, after.file.key)
            ordered = [d for d in ordered if (d.deferred_at, d.file.key) > mark]
        return ordered[:limit]

    def newest(self, limit: int, *, after=None, tier=Tier.NORMAL) -> list[DeferredFile]:
        self._check()
        ordered = list(reversed(self._drainable(tier)))
        if after is not None:
            mark = (after.deferred_at, after.file.key)
            ordered = [d for d in ordered if (d.deferred_at, d.file.key) < mark]
        return ordered[:limit]

    def parked(self, limit: int) -> list[DeferredFile]:
        self._check()
        return [d for d in self.items.values() if d.parked][:limit]

    def remove(self, files) -> None:
        self._check()
        for file in files:
            self.items.pop(file, None)

    def count_refusals(self, files, error) -> dict[FileRef, int]:
        self._check()
        counts = {}
        for deferred in files:
            current = self.items.get(deferred.file)
            if current is None:
                counts[deferred.file] = 0
                continue
            self.items[deferred.file] = current._replace(failures=current.failures + 1, last_error=error)
            counts[deferred.file] = current.failures + 1
        return counts

    def record_failure(self, files, error, *, park_after) -> list[FileRef]:
        self._check()
        parked = []
        for deferred in files:
            current = self.items.get(deferred.file)
            if current is None:
                continue
            failures = current.failures + 1
            self.items[deferred.file] = current._replace(
                failures=failures, last_error=error, parked=failures >= park_after
            )
            if failures >= park_after:
                parked.append(deferred.file)
        return parked

    def pending(self, files) -> dict[FileRef, DeferredFile]:
        self._check()
        return {f: self.items[f] for f in files if f in self.items}

    def stats(self) -> BacklogFigures:
        self._check()
        oldest = self.oldest(1)
        waiting = sum(1 for d in self.items.values() if d.waiting)
        tiers = {tier: len(self._drainable(tier)) for tier in Tier}
        return BacklogFigures(len(self.items), oldest[0].deferred_at if oldest else None, waiting, tiers)


class FakeQueue:
    """The prewarm queue as the reconcile asks it: ``busy`` holds messages; ``fail``: unreadable."""

    def __init__(self) -> None:
        self.busy = False
        self.fail = False

    def in_flight(self) -> bool:
        if self.fail:
            raise QueueUnavailable("prewarm queue: AWS.SimpleQueueService.NonExistentQueue")
        return self.busy


class InMemoryMarks:
    """One account's reconcile mark; ``fail`` makes the store unavailable."""

    def __init__(self) -> None:
        self.mark: Mark | None = None
        self.puts = 0
        self.fail = False

    def get(self) -> Mark | None:
        if self.fail:
            raise StoreUnavailable("the reconcile mark: InternalServerError")
        return self.mark

    def put(self, mark: Mark) -> None:
        if self.fail:
            raise StoreUnavailable("the reconcile mark: InternalServerError")
        self.mark, self.puts = mark, self.puts + 1


class InMemoryBreaker:
    """Polyv's breaker in memory, by the domain's rules (the DynamoDB one: test_outages.py)."""

    def __init__(self) -> None:
        self.current = BreakerState()
        self.probe_until: datetime | None = None
        self.unavailable = False

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("Polyv's breaker: InternalServerError")

    def state(self) -> BreakerState:
        self._check()
        return self.current

    def try_probe(self, owner, *, now) -> bool:
        self._check()
        if not self.current.open or self.current.waiting(now):
            return False
        if self.probe_until is not None and self.probe_until >= now:
            return False
        self.probe_until = now + PROBE_LEASE
        return True

    def failed(self, *, now) -> BreakerState:
        self._check()
        failures = self.current.failures + 1
        since = self.current.down_since or now.isoformat()
        self.current = BreakerState(since, epoch_ms(now + opening(failures)), failures)
        self.probe_until = None
        return self.current

    def recovered(self, *, unless_failed_since: BreakerState | None = None) -> None:
        self._check()
        if unless_failed_since is not None and self.current.failures != unless_failed_since.failures:
            return
        self.current = BreakerState()
        self.probe_until = None


class InMemoryReceivedCallbacks:
    """The record of received callbacks, as adapters/received_callbacks.py keeps it in DynamoDB."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, object]] = {}
        self.unavailable = False
        self.reads = 0

    def _up(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("received callbacks: InternalServerError")

    def arrive(self, vid: str, content: str, *, owner: str, now_ms: int, lease_ms: int) -> Arrival:
        self._up()
        self.reads += 1
        item = self.items.get((vid, content))
        if item is not None:
            if item["s"] == "queued":
                return Arrival.RECEIVED
            if int(item["l"]) >= now_ms:  # type: ignore[call-overload]
                return Arrival.IN_FLIGHT
        self.items[(vid, content)] = {"s": "pending", "w": owner, "l": now_ms + lease_ms}
        return Arrival.FIRST

    def queued(self, vid: str, content: str, *, owner: str, message_id: str, now_ms: int) -> None:
        self._up()
        self.items[(vid, content)] = {"s": "queued", "m": message_id, "at": now_ms}

    def abandon(self, vid: str, content: str, *, owner: str) -> None:
        self._up()
        item = self.items.get((vid, content))
        if item is not None and item["s"] == "pending" and item["w"] == owner:
            del self.items[(vid, content)]


def claims_of(files, rule=NO_FLAGS, *, first_rank=False) -> list[FileClaim]:
    """(file, origin) pairs as the claims a submission hands the ledger, each with ``rule``."""
    return [
        FileClaim(f, FileRequest(f.vid, f.br_index, Origin(origin)), rule, first_rank) for f, origin in files
    ]


def record_of(
    *, submitted=None, rejected=None, retry_after_ms=None, in_doubt=(), handed_back=None, release=0
) -> Settlement:
    """A chunk's record, written the way a test reads it: the files by fate."""
    fates = {f: Settled(EntryState.SUBMITTED, task) for f, task in (submitted or {}).items()}
    later = retry_after_ms or {}
    fates |= {f: Settled(EntryState.REJECTED, why, later.get(f)) for f, why in (rejected or {}).items()}
    fates |= {f: Settled(EntryState.IN_DOUBT) for f in in_doubt}
    fates |= {f: Settled(EntryState.HANDED_BACK, why) for f, why in (handed_back or {}).items()}
    return Settlement(fates, release)
