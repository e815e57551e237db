"""The interfaces the service depends on, and the errors they may raise.

Adapters (``polyv``, ``ledger``, ``backlog``) implement these; unit tests use in-memory fakes.
Nothing here imports AWS or HTTP libraries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol

from .breaker import BreakerState
from .claims import Decision, FileClaim
from .model import (
    BacklogFigures,
    DeferredFile,
    EntryState,
    FileRef,
    Lease,
    LedgerEntry,
    ListedVideo,
    QuotaView,
    Tier,
)
from .quota import DayOutlook
from .reconcile import Mark


class PrewarmError(Exception):
    """Base of every error this package raises on purpose."""


class PolyvError(PrewarmError):
    """Polyv did not accept a call."""


class PolyvFilesRefused(PolyvError):
    """Polyv refused the whole call because of some of its files (``illeagal vid``,
    ``bitrate does not exist``). The call consumed no quota. ``for_now``: the refusal may not
    hold later the same day (a bitrate that is still being transcoded)."""

    def __init__(self, message: str, *, for_now: bool = False) -> None:
        super().__init__(message)
        self.polyv_message = message
        self.for_now = for_now


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
    (a read timeout, a connection reset after sending, any answer whose meaning is unknown, such
    as a 200 whose body is not Polyv's JSON or a "success" without a taskId): its quota must stay
    counted, because the counter may over-count but must never under-count.
    """

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool,
        refused: bool = False,
        secret: bool = False,
        answered: bool = False,
    ) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.refused = refused  # Polyv answered with an error this package does not know
        self.secret = secret  # the secret could not be read: Polyv was not even asked
        # an answer came (a 200 without a taskId, a redirect, a body of unknown meaning): whatever
        # it means, Polyv (or what answers for it) is up; only no answer at all says it is down
        self.answered = answered


class StoreUnavailable(PrewarmError):
    """The ledger or the backlog could not be read or written: nothing may be sent unaccounted.
    ``misconfigured``: no retry can help (no such table, access denied), a person must fix it;
    ``code``: the service's error code, when it gave one."""

    def __init__(self, message: str, *, misconfigured: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured
        self.code = code


class CredentialsError(PrewarmError):
    """The secret could not be read or does not hold usable credentials. Never carries its value.
    ``misconfigured``: not JSON, a field missing, no such secret, access denied (not an outage)."""

    def __init__(self, message: str, *, misconfigured: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured
        self.code = code  # Secrets Manager's error code, when the secret could not be read


class QueueUnavailable(PrewarmError):
    """The prewarm queue did not take a message (so the sender must not say it did)."""


class Credentials(Protocol):
    """The Polyv account: its userid, and the secretkey every sign is made with."""

    @property
    def userid(self) -> str: ...

    @property
    def secretkey(self) -> str: ...


class CredentialsSource(Protocol):
    def get(self, *, refresh: bool = False) -> Credentials:
        """The account's credentials (cached); ``refresh``: read them again (a rotation)."""
        ...


class AccountsSource(Protocol):
    def accounts(self, *, refresh: bool = False) -> Sequence[Credentials]:
        """Every account's credentials (cached), in the secret's order; ``refresh``: read again."""
        ...


class Arrival(StrEnum):
    """What the record of a verified notification's signed content says of one more arrival."""

    FIRST = "first"  # never queued: this arrival owns it now (queue it, then say so)
    RECEIVED = "received"  # queued before: a replay (or Polyv's own repeat), nothing to do
    IN_FLIGHT = "in_flight"  # another request is queueing it right now, under a live lease


class ReceivedCallbacks(Protocol):
    """The record of every verified notification's signed content that was queued (once)."""

    def arrive(self, vid: str, content: str, *, owner: str, now_ms: int, lease_ms: int) -> Arrival:
        """Take the content for ``owner`` until ``now_ms + lease_ms`` unless it was queued, or is
        held by a live lease; raises :class:`StoreUnavailable`."""
        ...

    def queued(self, vid: str, content: str, *, owner: str, message_id: str, now_ms: int) -> None:
        """The owner's message is on the queue: every later arrival is a replay."""
        ...

    def abandon(self, vid: str, content: str, *, owner: str) -> None:
        """Nothing was queued: the next arrival (Polyv's retry) owns it at once."""
        ...


class PrewarmQueue(Protocol):
    """The queue the prewarm function reads."""

    def send(self, body: str) -> str:
        """Put one message on the queue; return its id, or raise :class:`QueueUnavailable`."""
        ...


@dataclass
class ClaimResult:
    """The outcome of claiming a chunk of files for one quota day: each file is in exactly one."""

    granted: list[FileRef] = field(default_factory=list)  # claimed and counted: send these
    known: dict[FileRef, LedgerEntry] = field(default_factory=dict)  # submitted or rejected today
    held: dict[FileRef, LedgerEntry] = field(default_factory=dict)  # another invocation's live claim
    in_doubt: dict[FileRef, LedgerEntry] = field(default_factory=dict)  # may be warm: not a resend
    no_room: list[FileRef] = field(default_factory=list)  # today's quota is spent

    def refuse(self, file: FileRef, entry: LedgerEntry | None, decision: Decision) -> bool:
        """Put ``file`` where the claim rule's ``decision`` on its entry today says, if that is
        a refusal (held, known, in doubt); False when it may be claimed."""
        if entry is None:
            return False
        match decision:
            case Decision.HELD:
                self.held[file] = entry
            case Decision.KNOWN:
                self.known[file] = entry
            case Decision.IN_DOUBT:
                self.in_doubt[file] = entry
            case _:
                return False
        return True


class Settled(NamedTuple):
    """One claimed file's fate, as its owner records it: submitted (``text``: the taskId),
    rejected (``text``: Polyv's reason; ``retry_after_ms`` when only for now), in doubt (stays
    counted) or handed back (``text``: why; not counted)."""

    state: EntryState
    text: str | None = None
    retry_after_ms: int | None = None


@dataclass
class Settlement:
    """What happened to the files of one claim, to be written to the ledger by their owner: one
    fate a file, and the counted files Polyv certainly did not take (``release``)."""

    fates: dict[FileRef, Settled] = field(default_factory=dict)
    release: int = 0

    def __bool__(self) -> bool:
        return bool(self.fates or self.release)

    def answered(self) -> int:
        """Files whose fate Polyv's answer decided (submitted or rejected)."""
        return sum(1 for s in self.fates.values() if s.state in (EntryState.SUBMITTED, EntryState.REJECTED))


class PolyvGateway(Protocol):
    """Submits one prewarm call of at most 100 files."""

    def userid(self) -> str: ...

    def push(self, files: Sequence[FileRef]) -> str:
        """Return Polyv's taskId, or raise a :class:`PolyvError`."""
        ...

    def definitions(self, vid: str) -> frozenset[int]:
        """The brIndexes the video has now (``get-video-msg``, no prewarm quota); raises a
        :class:`PolyvError` when Polyv cannot say."""
        ...


class VideoListing(Protocol):
    """Polyv's list of an account's new videos (``get-new-list``, no prewarm quota)."""

    def new_videos(
        self, *, page: int, per_page: int, start_date: str | None = None, end_date: str | None = None
    ) -> list[ListedVideo]:
        """One page (from 1), newest upload first; raises a :class:`PolyvError` when Polyv cannot say."""
        ...


class EventsInFlight(Protocol):
    """Whether the prewarm queue holds messages (visible, in flight, or waiting out a back-off)."""

    def in_flight(self) -> bool:
        """Raises :class:`QueueUnavailable` when the queue cannot say."""
        ...


class ReconcileMarks(Protocol):
    """One account's reconcile mark (``domain/reconcile.Mark``): where its next run starts."""

    def get(self) -> Mark | None: ...

    def put(self, mark: Mark) -> None: ...


class DayLedger(Protocol):
    """Per quota day: the count of files sent (never above the limit, across concurrent
    invocations) and what happened to every file. All changes are atomic per file."""

    def claim(
        self,
        day: str,
        files: Sequence[FileClaim],
        limit: int,
        *,
        lease: Lease,
        now: datetime,
    ) -> ClaimResult:
        """Claim and count, at once, the files that are claimable now by each one's claim rule
        (``domain/claims.py``), as many as the quota allows, under ``lease``; a claim's fresh
        first-rank files are counted in the day's rate too."""
        ...

    def settle(self, day: str, settlement: Settlement, *, lease: Lease, now: datetime) -> None:
        """Record the fates of files claimed under ``lease`` (entries another claim has taken over
        since are left alone) and give back ``settlement.release``."""
        ...

    def carry_over(
        self, day: str, submitted: Mapping[FileRef, str], origins: Mapping[FileRef, str], *, now: datetime
    ) -> None:
        """Count files Polyv accepted in ``day`` although they were claimed in the day before (a
        call that straddled midnight), whatever the limit, and record them as submitted."""
        ...

    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        """Count ``count`` more files (all or nothing), to re-send a call of unknown outcome."""
        ...

    def mark_exhausted(self, day: str, limit: int) -> None:
        """Polyv itself says the day's quota is spent: no further claim today."""
        ...

    def usage(self, day: str, limit: int) -> QuotaView: ...

    def confirmed(self, day: str) -> int:
        """How many of the day's files Polyv answered a taskId for (a read of the day's files)."""
        ...

    def outlook(self, day: str) -> DayOutlook:
        """The day's counter with its first-rank tally (``domain/quota.py``)."""
        ...

    def lookup(self, day: str, files: Sequence[FileRef]) -> dict[FileRef, LedgerEntry]:
        """The entries of these files on ``day`` (files with none are left out)."""
        ...

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        """day -> brIndex -> entry, for the given days."""
        ...


class PolyvBreaker(Protocol):
    """Whether Polyv is known to be down, shared by every invocation (docs/faults.md)."""

    def state(self) -> BreakerState: ...

    def try_probe(self, owner: str, *, now: datetime) -> bool:
        """Take the one probe of an open breaker whose time has come; False if another holds it."""
        ...

    def failed(self, *, now: datetime) -> BreakerState:
        """A call (or a probe) found Polyv unavailable: open the breaker, or keep it open longer."""
        ...

    def recovered(self, *, unless_failed_since: BreakerState | None = None) -> None:
        """Polyv answered (or nothing waits on it): close the breaker. With
        ``unless_failed_since``: only if no call has failed since that state was read."""
        ...


class Backlog(Protocol):
    """Files deferred to a later quota day, each stored once, in tiers (:class:`~.model.Tier`)
    listed by age either way; and files waiting out an outage (``retry_at``), listed by when they
    are due."""

    def defer(
        self,
        files: Sequence[FileClaim],
        *,
        now: datetime,
        priority_high: bool = False,
        retry_at: datetime | None = None,
        reason: str | None = None,
        tier: Tier = Tier.NORMAL,
    ) -> int:
        """Store the files not already pending, in ``tier``, with their origin and their claim's
        force and explicitness; return how many were new. Pending files of a lower tier move up to
        ``tier``. ``retry_at``: they wait out an outage, for the recovery drain from then on."""
        ...

    def due(self, limit: int, *, now: datetime, after: DeferredFile | None = None) -> list[DeferredFile]:
        """Waiting files whose retry time has come, the earliest first, after ``after`` (a cursor)."""
        ...

    def wait(self, files: Sequence[DeferredFile], *, retry_at: datetime, reason: str) -> None:
        """Waiting files still not sent: due again at ``retry_at``."""
        ...

    def to_daily(self, files: Sequence[DeferredFile]) -> None:
        """Waiting files that found no quota today: deferred to the daily drain, as any other."""
        ...

    def oldest(
        self, limit: int, *, after: DeferredFile | None = None, tier: Tier = Tier.NORMAL
    ) -> list[DeferredFile]:
        """The oldest files of ``tier`` neither parked nor waiting, after ``after`` (a drain's
        cursor in that tier)."""
        ...

    def newest(
        self, limit: int, *, after: DeferredFile | None = None, tier: Tier = Tier.NORMAL
    ) -> list[DeferredFile]:
        """As :meth:`oldest`, the newest first."""
        ...

    def move(self, files: Sequence[DeferredFile], tier: Tier) -> None:
        """Pending files to another tier."""
        ...

    def add_backfill(self, files: Sequence[tuple[FileRef, str]], *, now: datetime) -> int:
        """Store files in the backfill tier unless already pending (idempotent); how many were new."""
        ...

    def parked(self, limit: int) -> list[DeferredFile]: ...

    def remove(self, files: Sequence[FileRef]) -> None: ...

    def count_refusals(self, files: Sequence[DeferredFile], error: str) -> dict[FileRef, int]:
        """One more refused call for each file still in the backlog: how many it has had (0: gone)."""
        ...

    def record_failure(self, files: Sequence[DeferredFile], error: str, *, park_after: int) -> list[FileRef]:
        """Count one more failed drain for each file; park those that reach ``park_after``.
        Returns the files parked now."""
        ...

    def pending(self, files: Sequence[FileRef]) -> dict[FileRef, DeferredFile]: ...

    def stats(self) -> BacklogFigures: ...
