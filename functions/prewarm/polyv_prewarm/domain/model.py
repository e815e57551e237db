"""Domain vocabulary: files, where a request came from, and what happened to it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import NamedTuple

from .breaker import BreakerState

#: Polyv bitrate indexes: 1 流畅 (smooth), 2 高清 (high), 3 超清 (super).
BR_INDEXES: tuple[int, ...] = (1, 2, 3)


class FileRef(NamedTuple):
    """One Polyv "file": a video at one bitrate. The unit of every limit.

    A NamedTuple rather than a frozen dataclass: files are dict keys at every step (dedup, claims,
    outcomes), and a tuple hashes in C, several times faster than a dataclass's ``__hash__``.
    """

    vid: str
    br_index: int

    @property
    def key(self) -> str:
        """``vid#brIndex``: how the ledger and the backlog name a file."""
        return f"{self.vid}#{self.br_index}"

    @classmethod
    def from_key(cls, key: str) -> FileRef:
        vid, _, br = key.rpartition("#")
        return cls(vid, int(br))


class Origin(NamedTuple):
    """Where a request came from, for correlation in logs, summaries and retries."""

    source: str  # "sqs", "s3", "eventbridge", "direct", ...
    message_id: str | None = None  # SQS message id: the unit that is handed back for retry
    s3_key: str | None = None

    def describe(self) -> str:
        """One short string for the ledger: the message id, else the S3 key, else the source."""
        return self.message_id or self.s3_key or self.source

    def log_keys(self) -> dict[str, str]:
        keys = {"source": self.source}
        if self.message_id is not None:
            keys["message_id"] = self.message_id
        if self.s3_key is not None:
            keys["s3_key"] = self.s3_key
        return keys


class FileRequest(NamedTuple):
    """A file some event asked for, before validation: values are as the event carried them.
    ``explicit``: the event named this bitrate (a brIndex, a callback's df), rather than the
    function filling in DEFAULT_BR_INDEXES."""

    vid: object
    br_index: object
    origin: Origin
    explicit: bool = False


class DefinitionsLookup(NamedTuple):
    """A video whose definitions Polyv itself is to tell (``get-video-msg``), because the event
    that named them is not signed over them (a TranscodeComplete's ``videoInfos``): ``hint`` is
    what the event said, used as ordinary (not explicit) requests when Polyv cannot be asked."""

    vid: object
    hint: tuple[object, ...]
    origin: Origin


class Fate(StrEnum):
    """Every requested file ends in exactly one of these."""

    SUBMITTED = "submitted"  # accepted by Polyv; has a taskId
    PLANNED = "planned"  # dry run: would have been submitted
    DUPLICATE = "duplicate"  # already requested in this invocation, or already handled this quota day
    REJECTED = "rejected"  # invalid, or refused by Polyv for this file; has a reason; never retried
    DEFERRED = "deferred"  # today's quota is spent: stored in the backlog for the next quota day
    HANDED_BACK = "handed_back"  # not done because of a transient fault: its message is retried
    EXPIRED = "expired"  # waited in the backlog longer than BACKLOG_MAX_AGE_DAYS: dropped, not sent

    @property
    def needs_retry(self) -> bool:
        """A file in this state is not done: the message that carried it must be handed back."""
        return self is Fate.HANDED_BACK


class FileResult(NamedTuple):
    request: FileRequest
    fate: Fate
    file: FileRef | None = None  # None when the request could not be read as a valid file
    reason: str | None = None
    task_id: str | None = None
    call: int | None = None  # 1-based index of the Polyv call that carried it
    label: str | None = None  # a rejection's short, bounded name (else its reason, cut short)


class EntryState(StrEnum):
    """What the day ledger knows of one file on one quota day (docs/ledger.md draws the transitions)."""

    CLAIMED = "claimed"  # an invocation holds it until its lease ends (counted in the quota)
    SUBMITTED = "submitted"  # Polyv accepted it (counted)
    REJECTED = "rejected"  # Polyv refused it for a reason of its own (not counted)
    IN_DOUBT = "in_doubt"  # a call's outcome is unknown (counted; may be claimed again, counted again)
    HANDED_BACK = "handed_back"  # not sent: a fault, or the invocation stopped (not counted)


class Lease(NamedTuple):
    """Who holds a claim, and until when: the owning invocation's deadline (plus a grace for clock
    skew). A claim whose lease has ended belongs to nobody: its outcome is unknown (in doubt)."""

    owner: str  # one token per claim call
    until_ms: int  # Unix epoch milliseconds

    @classmethod
    def until(cls, owner: str, instant: datetime) -> Lease:
        return cls(owner, epoch_ms(instant))


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


class LedgerEntry(NamedTuple):
    state: EntryState
    at: str  # ISO-8601 UTC time of the last change
    task_id: str | None = None
    reason: str | None = None
    origin: str | None = None
    owner: str | None = None  # the claim call that wrote it (recognises our own lost answers)
    lease_until_ms: int | None = None  # while CLAIMED: when the owner's lease ends
    retry_after_ms: int | None = None  # REJECTED for now (a missing bitrate): claimable from then

    def settled(self) -> bool:
        """Submitted or rejected: done for this quota day (only ``force`` sends it again). Whether a
        request may claim it is :func:`polyv_prewarm.domain.claims.decide`'s to say."""
        return self.state in (EntryState.SUBMITTED, EntryState.REJECTED)

    def describe(self) -> str:
        if self.state is EntryState.SUBMITTED:
            return f"already submitted this quota day (taskId {self.task_id})"
        if self.state is EntryState.REJECTED and self.retry_after_ms is not None:
            after = datetime.fromtimestamp(self.retry_after_ms / 1000, UTC).isoformat(timespec="seconds")
            return (
                f"refused by Polyv earlier this quota day: {self.reason}; asked again after {after}, "
                "or at once by an event that names this bitrate"
            )
        if self.state is EntryState.REJECTED:
            return f"rejected by Polyv earlier this quota day: {self.reason}"
        if self.state is EntryState.CLAIMED:
            return f"being submitted by another invocation (claimed at {self.at}): try again later"
        return f"{self.state.value} since {self.at}"


class Tier(StrEnum):
    """A deferred file's rank in the backlog: drains and sweeps spend quota tier by tier, in this
    order (docs/ledger.md: "Every unit on the file that matters most")."""

    NORMAL = "normal"  # never sent: main definitions, explicit bitrates, every file without priorities
    LATER = "later"  # a video's other definitions, held back on a tight day
    BACKFILL = "backfill"  # an operator's catalogue: only what fresh traffic leaves, late in the day
    RESEND = "resend"  # in doubt: its call may have reached Polyv; never-sent files come first
    #: in a call Polyv refused (``illeagal vid``...) that bisection left unsplit, or of a message
    #: whose files Polyv refused: never packed with clean files, isolated within a budget of its own
    SUSPECT = "suspect"

    @property
    def rank(self) -> int:
        return list(Tier).index(self)


class DeferredFile(NamedTuple):
    file: FileRef
    deferred_at: str
    origin: str
    force: bool = False  # deferred from a forced request: the drain sends it even if sent that day
    explicit: bool = False  # the event named this bitrate: claimed even if refused for now
    failures: int = 0  # drains in which Polyv refused its call with an error this package does not know
    last_error: str | None = None
    parked: bool = False  # failed too many drains: kept, shown, but no longer drained
    priority_high: bool = False  # from a person's priority request: it may use the manual reserve
    retry_at: str | None = None  # waiting out an outage (or a deadline): the recovery drain's, from then
    wait_reason: str | None = None  # why it waits
    tier: Tier = Tier.NORMAL

    @property
    def waiting(self) -> bool:
        """Not sent because Polyv was down or time ran out: the recovery drain sends it."""
        return self.retry_at is not None


class Stopped(Enum):
    """Why a run stopped calling Polyv, as a kind: what a person (or the CLI's exit code) does
    about it depends on the kind, never on the text that says it."""

    CONFIGURATION = "a configuration only a person can fix (the secretkey Polyv refuses)"
    BUG = "Polyv says a call broke a rule this package guarantees: a defect"
    POLYV_DOWN = "Polyv is unavailable (its breaker is open, or a call found it down)"
    CREDENTIALS = "the Polyv secret could not be read"
    STORE = "the ledger, the backlog or the breaker could not be read or written"
    DEADLINE = "too little time left in the invocation for another call"
    INTERRUPTED = "the invocation stopped before the calls ended"
    UNEXPECTED = "an error nobody expected"


class CallRecord(NamedTuple):
    """One Polyv call that was accepted."""

    task_id: str
    files: int


class ListedVideo(NamedTuple):
    """A video as Polyv's ``get-new-list`` lists it (docs/polyv-api.md, "Other facts")."""

    vid: str
    definitions: int  # df: how many definitions it has
    status: int  # 60/61 published, 10/20 waiting or encoding, 50/51 audit, -1 deleted
    uploaded: str  # uploadTime, "yyyy-MM-dd HH:mm:ss" (Polyv's local time)
    plays: int  # times


class QuotaView(NamedTuple):
    day: str
    used: int
    limit: int
    exhausted: bool = False
    reserve: int = 0  # of the limit, kept for "priority": "high" requests
    confirmed: int | None = None  # of ``used``, files Polyv answered a taskId for (when asked)

    @property
    def remaining(self) -> int:
        return 0 if self.exhausted else max(0, self.limit - self.used)

    @property
    def reserve_used(self) -> int:
        """Of the reserve, what the count has reached into."""
        return min(self.reserve, max(0, self.used - (self.limit - self.reserve)))

    @property
    def in_doubt(self) -> int:
        """Units the count holds on calls whose outcome is unknown (and on live claims): Polyv
        may not have spent them, and a call beyond the count finds out at no cost."""
        return max(0, self.used - (self.confirmed or 0))


class BacklogFigures(NamedTuple):
    files: int  # in the backlog, parked and waiting ones included
    oldest_deferred_at: str | None
    waiting: int = 0  # of them, waiting out an outage (sent by the recovery drain)
    tiers: Mapping[Tier, int] = MappingProxyType({})  # drainable files by tier (neither waiting nor parked)


class SweepPlan(NamedTuple):
    """When a day's manual reserve is released, and what the late sweeps may spend then."""

    reserve_released_at: str  # ISO, in the quota's time zone
    released: bool
    units: int  # what is left of the day's whole limit
    files: int  # backlog files the sweeps may spend it on (backfill only beyond fresh traffic's need)


class QuotaSummary(NamedTuple):
    """The answer to "how much of a day's quota is used, and what waits for the next one"."""

    quota: QuotaView
    backlog: BacklogFigures
    polyv: BreakerState | None = None  # Polyv's breaker, when it could be read
    sweep: SweepPlan | None = None  # today's: when the reserve returns, what the sweeps spend


class VideoStatus(NamedTuple):
    """What happened to each bitrate of one video, per retained day, and what still waits."""

    vid: str
    days: dict[str, dict[int, LedgerEntry]]  # day -> brIndex -> entry
    deferred: dict[int, DeferredFile]  # brIndex -> its backlog item


@dataclass
class Report:
    """What one invocation did with every file it was asked for."""

    results: list[FileResult] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    quota: QuotaView | None = None
    dry_run: bool = False
    stopped_because: str | None = None  # why the service stopped calling Polyv early, if it did
    stopped: Stopped | None = None  # ...and its kind
    backlog: BacklogFigures | None = None  # a drain's: what is left in the backlog after it
    polyv_down_since: str | None = None  # Polyv's breaker was open (since then) during this run
    polyv_down_minutes: float | None = None  # ...for this long, when the run found it so
    breaker: BreakerState | None = None  # a recovery drain's: the breaker as it found it
    resent_in_doubt: int = 0  # files claimed again while in doubt (their call may have reached Polyv)
    day_closed: QuotaView | None = None  # a morning drain's: the quota day that just ended
    suspects: set[FileRef] = field(default_factory=set)  # deferred to the suspect tier
    refused_by_polyv: set[FileRef] = field(default_factory=set)  # rejected by Polyv for good (alone)
    account: str | None = None  # the account's userid, for a run of one account
    accounts: dict[str, Report] = field(default_factory=dict)  # a run of several accounts: each one's

    def count(self, fate: Fate) -> int:
        return sum(1 for r in self.results if r.fate is fate)

    def counts(self) -> dict[str, int]:
        """Files per fate, in the order of :class:`Fate`, fates with none left out (one pass)."""
        tally = Counter(r.fate for r in self.results)
        return {fate.value: tally[fate] for fate in Fate if tally[fate]}

    def messages_to_retry(self) -> set[str]:
        """SQS message ids holding at least one file that is not done."""
        return {
            r.request.origin.message_id
            for r in self.results
            if r.fate.needs_retry and r.request.origin.message_id is not None
        }

    def poison_messages(self) -> dict[str, str]:
        """SQS message id -> why, for each message with files Polyv refused for good once
        isolated, and none sent, none waiting but as a suspect: a producer's bad message (its
        files rejected before Polyv was asked count neither way)."""
        refused: dict[str, Counter[str]] = {}
        fine: set[str] = set()
        for r in self.results:
            message = r.request.origin.message_id
            if message is None or (r.fate is Fate.REJECTED and r.file not in self.refused_by_polyv):
                continue
            if r.fate is Fate.REJECTED:
                refused.setdefault(message, Counter())[r.reason or "rejected"] += 1
            elif not (r.fate is Fate.DEFERRED and r.file in self.suspects):
                fine.add(message)
        return {
            m: "every file refused: " + ", ".join(f"{why} ({n})" for why, n in reasons.most_common(3))
            for m, reasons in refused.items()
            if m not in fine
        }
