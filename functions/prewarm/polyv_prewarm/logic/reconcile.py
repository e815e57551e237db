"""Reconcile one account with Polyv's own list of new videos: find the published files that no
event has brought into the ledger (on any day since their upload) or the backlog.

The rules (the window, the pass, the watermark) are ``domain/reconcile.py``'s. This module reads
the pages of the window, keeps the files the ledger and the backlog do not know, and says what the
account's mark becomes once they are placed; queuing them is the prewarm's (``logic/accounts.py``
runs one after the other, so that this module imports no other use case). A listing that fails
finds nothing and counts a failure: it never stands in the way of prewarming.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.model import BR_INDEXES, FileRef, FileRequest, ListedVideo, Origin
from ..domain.policy import Deadline, Policy
from ..domain.ports import (
    Backlog,
    DayLedger,
    EventsInFlight,
    PolyvError,
    QueueUnavailable,
    ReconcileMarks,
    StoreUnavailable,
    VideoListing,
)
from ..domain.quotaday import quota_day
from ..domain.reconcile import (
    MAX_PAGES,
    PAGE_SIZE,
    Mark,
    Window,
    after_a_failure,
    after_the_run,
    files_of,
    holds_back,
    in_flight_rule,
    reached_the_start,
    unbrought,
    uploaded,
    window,
)

logger = Logger(service=SERVICE, child=True)

ORIGIN = Origin("reconcile")


class Found(NamedTuple):
    """What one account's run found, and its mark once the found files are placed."""

    requests: list[FileRequest]  # the files no event brought: ordinary automatic work
    mark: Mark
    listed: int  # videos Polyv listed in the pages read
    pages: int  # get-new-list requests made
    complete: bool  # the pass reached the window's start
    error: str | None = None  # the listing failed: nothing found, one more failure in a row
    store: bool = True  # whether ``mark`` is to be stored (not while the table is unavailable)


class ReconcileAccount:
    def __init__(
        self,
        *,
        listing: VideoListing,
        marks: ReconcileMarks,
        ledger: DayLedger,
        backlog: Backlog,
        policy: Policy,
        clock: Callable[[], datetime],
        default_br_indexes: Sequence[int],
        events: EventsInFlight | None = None,
    ) -> None:
        """``default_br_indexes``: the bitrates warmed of a video no event named any of;
        ``events``: whether the prewarm queue holds messages (None: no queue known, as for a
        person's look)."""
        self._br_indexes = tuple(default_br_indexes)
        self._events = events
        self._listing = listing
        self._marks = marks
        self._ledger = ledger
        self._backlog = backlog
        self._policy = policy
        self._clock = clock

    def find(self, *, deadline: Deadline, since: datetime | None = None) -> Found:
        """This run's files. ``since``: a person's look from that instant (a new pass, the same
        bounds), instead of the account's mark. A table that cannot be read finds nothing and
        stores nothing (``store`` False): the next run reads the same window."""
        now = self._clock()
        try:
            mark = Mark(since=since) if since is not None else self._marks.get()
        except StoreUnavailable as exc:  # nothing can be checked: the next run does it all
            return _skipped(exc, Mark(since=now))
        w = window(mark, now)
        try:
            videos, pages, complete = self._read(w, deadline)
        except PolyvError as exc:
            logger.warning("Polyv's list of new videos could not be read", extra={"error": str(exc)})
            return Found([], after_a_failure(mark, now), 0, 0, False, error=str(exc))
        try:
            return self._found(videos, mark, w, now, pages=pages, complete=complete, person=since is not None)
        except StoreUnavailable as exc:
            return _skipped(exc, mark or Mark(since=now), listed=len(videos), pages=pages)

    def _found(
        self,
        videos: list[ListedVideo],
        mark: Mark | None,
        w: Window,
        now: datetime,
        *,
        pages: int,
        complete: bool,
        person: bool,
    ) -> Found:
        """The listed videos' files no event brought, and the mark after them (a person's look
        applies no in-flight rule: the person decides)."""
        tz = self._policy.timezone
        at = {v.vid: uploaded(v, tz) for v in videos}
        files = list(dict.fromkeys(f for v in videos for f in files_of(v, at[v.vid], w, self._br_indexes)))
        unseen = self._unseen(files, w.start, now)
        held = [t for v in videos if holds_back(v, t := at[v.vid], w, now) and t is not None]
        new_mark = after_the_run(mark, w, pages_read=pages, complete=complete, held=held)
        if person:  # a person's look: no candidates (the person decides)
            queue = unseen
        else:
            earlier = sorted(mark.candidates) if mark is not None else []
            # the last run's candidates, checked again without listing them (their events, if any,
            # arrived since: within a day at most)
            confirmed = self._unseen(earlier, now - timedelta(days=1), now)
            in_flight = bool(unseen) and self._in_flight()
            queue, candidates = in_flight_rule(confirmed, unseen, in_flight=in_flight)
            new_mark = new_mark._replace(candidates=candidates)
        requests = [FileRequest(f.vid, f.br_index, ORIGIN) for f in queue]
        return Found(requests, new_mark, len(videos), pages, complete)

    def _in_flight(self) -> bool:
        """Whether events may be on their way (the queue unreadable: taken as so)."""
        if self._events is None:
            return False
        try:
            return self._events.in_flight()
        except QueueUnavailable:
            return True

    def commit(self, found: Found) -> None:
        """Store the run's mark: once its files are claimed or deferred (or its listing failed)."""
        self._marks.put(found.mark)

    def _read(self, w: Window, deadline: Deadline) -> tuple[list[ListedVideo], int, bool]:
        """The window's pages from ``w.page``, at most MAX_PAGES, while the deadline leaves one
        Polyv call's time; the videos, the pages read, and whether the pass is complete."""
        tz = self._policy.timezone
        dates = {"start_date": quota_day(w.start, tz), "end_date": quota_day(w.end, tz)}
        videos: list[ListedVideo] = []
        pages = 0
        for page in range(w.page, w.page + MAX_PAGES):
            if deadline.left(self._clock()) < self._policy.min_time_per_call:
                break
            got = self._listing.new_videos(page=page, per_page=PAGE_SIZE, **dates)
            pages += 1
            videos += got
            if reached_the_start(got, tz, w):
                return videos, pages, True
        return videos, pages, False

    def _unseen(self, files: list[FileRef], start: datetime, now: datetime) -> list[FileRef]:
        """The files of the videos none of whose files a day's ledger from the window's start to
        today holds, nor the backlog (``domain/reconcile.unbrought``)."""
        if not files:
            return []
        tz = self._policy.timezone
        every = [FileRef(vid, br) for vid in dict.fromkeys(f.vid for f in files) for br in BR_INDEXES]
        known: set[FileRef] = set(self._backlog.pending(every))
        day = start
        while quota_day(day, tz) <= quota_day(now, tz):
            known |= set(self._ledger.lookup(quota_day(day, tz), every))
            day += timedelta(days=1)
        return unbrought(files, known)


def _skipped(exc: StoreUnavailable, mark: Mark, *, listed: int = 0, pages: int = 0) -> Found:
    """A run the table's outage skipped: nothing found, nothing to store."""
    logger.warning("reconcile skipped: the table is unavailable", extra={"error": str(exc)})
    return Found([], mark, listed, pages, False, error=str(exc), store=False)
