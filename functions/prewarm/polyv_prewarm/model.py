"""Domain vocabulary: files, where a request came from, and what happened to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: Polyv bitrate indexes: 1 流畅 (smooth), 2 高清 (high), 3 超清 (super).
BR_INDEXES: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True, slots=True, order=True)
class FileRef:
    """One Polyv "file": a video at one bitrate. The unit of every limit."""

    vid: str
    br_index: int

    def to_api(self) -> dict[str, Any]:
        return {"vid": self.vid, "brIndex": self.br_index}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, for correlation in logs, summaries and retries."""

    source: str  # "sqs", "s3", "eventbridge", "direct", ...
    message_id: str | None = None  # SQS message id: the unit that is handed back for retry
    s3_key: str | None = None

    def log_keys(self) -> dict[str, str]:
        keys = {"source": self.source}
        if self.message_id is not None:
            keys["message_id"] = self.message_id
        if self.s3_key is not None:
            keys["s3_key"] = self.s3_key
        return keys


@dataclass(frozen=True, slots=True)
class FileRequest:
    """A file some event asked for, before validation: values are as the event carried them."""

    vid: object
    br_index: object
    origin: Origin


class Fate(StrEnum):
    """Every requested file ends in exactly one of these."""

    SUBMITTED = "submitted"  # accepted by Polyv; has a taskId
    PLANNED = "planned"  # dry run: would have been submitted
    DUPLICATE = "duplicate"  # same (vid, brIndex) as an earlier request of this invocation
    REJECTED = "rejected"  # invalid, or refused by Polyv for this file; has a reason; never retried
    OVER_QUOTA = "over_quota"  # today's quota is spent; handed back / listed for later
    RETRY = "retry"  # not submitted because of a transient fault; handed back for retry

    @property
    def needs_retry(self) -> bool:
        """A file in this state is not done: the message that carried it must be handed back."""
        return self in (Fate.OVER_QUOTA, Fate.RETRY)


@dataclass(frozen=True, slots=True)
class FileResult:
    request: FileRequest
    fate: Fate
    file: FileRef | None = None  # None when the request could not be read as a valid file
    reason: str | None = None
    task_id: str | None = None
    call: int | None = None  # 1-based index of the Polyv call that carried it

    def to_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vid": self.file.vid if self.file else self.request.vid,
            "brIndex": self.file.br_index if self.file else self.request.br_index,
            "fate": self.fate.value,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.task_id is not None:
            out["taskId"] = self.task_id
        if self.call is not None:
            out["call"] = self.call
        out.update(self.request.origin.log_keys())
        return out


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One Polyv call that was accepted."""

    task_id: str
    files: int


@dataclass(slots=True)
class QuotaView:
    day: str
    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(slots=True)
class Report:
    """What one invocation did with every file it was asked for."""

    results: list[FileResult] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    quota: QuotaView | None = None
    dry_run: bool = False
    stopped_because: str | None = None  # why the service stopped calling Polyv early, if it did

    def count(self, fate: Fate) -> int:
        return sum(1 for r in self.results if r.fate is fate)

    def counts(self) -> dict[str, int]:
        return {fate.value: self.count(fate) for fate in Fate if self.count(fate)}

    def messages_to_retry(self) -> set[str]:
        """SQS message ids holding at least one file that is not done."""
        return {
            r.request.origin.message_id
            for r in self.results
            if r.fate.needs_retry and r.request.origin.message_id is not None
        }

    def to_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "dryRun": self.dry_run,
            "counts": self.counts(),
            "calls": [{"taskId": c.task_id, "files": c.files} for c in self.calls],
            "files": [r.to_summary() for r in self.results],
        }
        if self.quota is not None:
            summary["quota"] = {
                "day": self.quota.day,
                "used": self.quota.used,
                "limit": self.quota.limit,
                "remaining": self.quota.remaining,
            }
        if self.stopped_because is not None:
            summary["stoppedBecause"] = self.stopped_because
        return summary
