"""The reconcile's rules: which of an account's uploads a run looks at in Polyv's own list of new
videos (``get-new-list``), which of their files it may queue, and where its next run starts.

Every path into the product is an event someone else delivers (a callback, a pipeline's message,
an S3 notification), and any can be lost; the reconcile reads what Polyv says was uploaded and
queues the files no event brought. Pure: the listing, the ledger and the backlog are the logic's.

The list is newest first, by upload time, paged. A run reads the pages of its window — from the
watermark (less ``SKEW``, Polyv's clock against ours) to ``SETTLE`` ago (younger uploads are left
to their events, which take seconds to minutes) — until an entry older than the window, at most
``MAX_PAGES`` pages. A window of more uploads than that is a *pass* over several runs: each run
resumes at the page the last one reached, less one (new uploads push entries back, so a resume
re-reads, never skips), and the watermark moves only when a pass is complete. A video of the
window not yet published holds the watermark at its upload for at most ``STUCK`` (a video still
transcoding is not passed by; one stuck for a day is a person's to look at).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .model import BR_INDEXES, FileRef, ListedVideo

PUBLISHED = frozenset({60, 61})  # Polyv's "published" statuses (docs/polyv-api.md)
GONE = frozenset({-1, 51})  # deleted, rejected by audit: never to be published
SETTLE = timedelta(minutes=10)
SKEW = timedelta(minutes=10)
STUCK = timedelta(hours=24)
FIRST_LOOK = timedelta(days=1)  # an account's first run looks this far back
PAGE_SIZE = 100
MAX_PAGES = 10  # per account and run: 10 signed GETs, far inside Polyv's 1,500 requests / 10 s


class Mark(NamedTuple):
    """An account's reconcile state: where its next pass starts, and a pass in progress."""

    since: datetime  # uploads from this instant on are still to be looked at
    page: int = 1  # the page a pass in progress resumes at (1: a new pass)
    pass_end: datetime | None = None  # the window's end of the pass in progress
    failures: int = 0  # runs in a row whose listing failed
    #: files found unbrought while events were in flight: queued if still unbrought next run
    candidates: frozenset[FileRef] = frozenset()


class Window(NamedTuple):
    start: datetime  # the oldest upload looked at
    end: datetime  # the newest: later uploads are left to their events until the next pass
    page: int  # the first page this run reads

    def holds(self, instant: datetime) -> bool:
        return self.start <= instant <= self.end


def window(mark: Mark | None, now: datetime) -> Window:
    """This run's window: a pass in progress resumes; a new pass starts at the watermark."""
    if mark is None:
        return Window(now - FIRST_LOOK - SKEW, now - SETTLE, 1)
    if mark.pass_end is not None and mark.page > 1:
        return Window(mark.since - SKEW, mark.pass_end, mark.page)
    return Window(mark.since - SKEW, now - SETTLE, 1)


def uploaded(video: ListedVideo, tz: ZoneInfo) -> datetime | None:
    """When ``video`` was uploaded (its ``uploadTime`` in Polyv's time zone), or None if unreadable."""
    try:
        return datetime.strptime(video.uploaded, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
    except ValueError:
        return None


def files_of(
    video: ListedVideo, at: datetime | None, w: Window, br_indexes: Sequence[int] = BR_INDEXES
) -> list[FileRef]:
    """The files of a published video of the window: of ``br_indexes`` (DEFAULT_BR_INDEXES, the
    bitrates warmed when nothing names one), those its ``df`` has (brIndex 1 to ``df``)."""
    if at is None or not w.holds(at) or video.status not in PUBLISHED:
        return []
    return [FileRef(video.vid, br) for br in br_indexes if br <= video.definitions]


def unbrought(files: Iterable[FileRef], known: Iterable[FileRef]) -> list[FileRef]:
    """The files of the videos no event brought: a video with any file known (in a ledger day or
    the backlog) was brought by its events, whose choice of definitions stands."""
    brought = {f.vid for f in known}
    return [f for f in files if f.vid not in brought]


def holds_back(video: ListedVideo, at: datetime | None, w: Window, now: datetime) -> bool:
    """Whether a video of the window keeps the watermark at its upload: not yet published, not
    gone, and younger than ``STUCK``."""
    return at is not None and w.holds(at) and video.status not in PUBLISHED | GONE and now - at < STUCK


def reached_the_start(page: Sequence[ListedVideo], tz: ZoneInfo, w: Window) -> bool:
    """Whether a page ends the pass: empty, short, or its last entry older than the window."""
    if len(page) < PAGE_SIZE:
        return True
    last = uploaded(page[-1], tz)
    return last is not None and last < w.start


def after_the_run(
    mark: Mark | None, w: Window, *, pages_read: int, complete: bool, held: Iterable[datetime]
) -> Mark:
    """The account's mark once this run's files are queued: a complete pass moves the watermark to
    the window's end (or to the oldest upload held back, if earlier); an incomplete one resumes at
    the last page it read (one page of overlap)."""
    if not complete:
        return Mark(
            since=w.start + SKEW,
            page=w.page + max(0, pages_read - 1),
            pass_end=w.end,
            failures=0,
        )
    since = min([w.end, *held])
    if mark is not None:
        since = max(since, mark.since)  # never back: a held video older than the mark is the mark's
    return Mark(since=since, failures=0)


def in_flight_rule(
    confirmed: Sequence[FileRef], found: Sequence[FileRef], *, in_flight: bool
) -> tuple[list[FileRef], frozenset[FileRef]]:
    """The files to queue now, and the candidates the next run checks again. While events are in
    flight (the prewarm queue holds messages: a handed-back message waits out a back-off of up to
    15 minutes), a file found unbrought may be one whose event is on its way: it becomes a
    candidate, queued only if the next run finds it unbrought still (``confirmed``: the last
    run's candidates still unbrought). With no event in flight, what is found is queued at once."""
    now = list(dict.fromkeys(confirmed))
    if not in_flight:
        return list(dict.fromkeys([*now, *found])), frozenset()
    return now, frozenset(found) - set(now)


def after_a_failure(mark: Mark | None, now: datetime) -> Mark:
    """A run whose listing failed: nothing moves but the count of failures in a row."""
    if mark is None:
        return Mark(since=now - FIRST_LOOK, failures=1)
    return mark._replace(failures=mark.failures + 1)
