"""Reconcile one account with Polyv's own list of new videos: find the published files that no
event has brought into the ledger (on any day since their upload) or the backlog.

The rules (the window, the pass, the watermark) are ``domain/reconcile.py``'s. This module reads
the pages of the window, keeps the files the ledger and the backlog do not know, and says what the
account's mark becomes once they are placed; queuing them is the prewarm's (``logic/accounts.py``
runs one after the other, so that this module imports no other use case). A listing that fails
finds nothing and counts a failure: it never stands in the way of prewarming.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.model import FileRef, FileRequest, ListedVideo, Origin
from ..domain.policy import Deadline, Policy
from ..domain.ports import Backlog, DayLedger, PolyvError, ReconcileMarks, VideoListing
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
    reached_the_start,
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
    ) -> None:
        self._listing = listing
        self._marks = marks
        self._ledger = ledger
        self._backlog = backlog
        self._policy = policy
        self._clock = clock

    def find(self, *, deadline: Deadline, since: datetime | None = None) -> Found:
        """This run's files. ``since``: a person's look from that instant (a new pass, the same
        bounds), instead of the account's mark. Raises ``StoreUnavailable`` when the mark, the
        ledger or the backlog cannot be read (the caller's, like any store outage)."""
        now = self._clock()
        mark = Mark(since=since) if since is not None else self._marks.get()
        w = window(mark, now)
        try:
            videos, pages, complete = self._read(w, deadline)
        except PolyvError as exc:
            logger.warning("Polyv's list of new videos could not be read", extra={"error": str(exc)})
            return Found([], after_a_failure(mark, now), 0, 0, False, error=str(exc))
        tz = self._policy.timezone
        at = {v.vid: uploaded(v, tz) for v in videos}
        files = list(dict.fromkeys(f for v in videos for f in files_of(v, at[v.vid], w)))
        unseen = self._unseen(files, w.start, now)
        held = [t for v in videos if holds_back(v, t := at[v.vid], w, now) and t is not None]
        new_mark = after_the_run(mark, w, pages_read=pages, complete=complete, held=held)
        requests = [FileRequest(f.vid, f.br_index, ORIGIN) for f in unseen]
        return Found(requests, new_mark, len(videos), pages, complete)

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
        """The files no day's ledger from the window's start to today holds, nor the backlog."""
        if not files:
            return []
        tz = self._policy.timezone
        known: set[FileRef] = set(self._backlog.pending(files))
        day = start
        while quota_day(day, tz) <= quota_day(now, tz):
            known |= set(self._ledger.lookup(quota_day(day, tz), files))
            day += timedelta(days=1)
        return [f for f in files if f not in known]
