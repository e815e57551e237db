"""The use case "which definitions does this video have?": a TranscodeComplete's definitions are
not covered by its sign, so before a unit is spent on them Polyv itself is asked (``get-video-msg``,
no prewarm quota). What Polyv lists is requested as named (explicit: it exists now); what Polyv
does not list is not requested at all. When Polyv cannot be asked, the event's hint is requested
as ordinary files, which a "bitrate does not exist" holds back like any other (docs/callbacks.md).

Bounded: at most ``max_lookups`` answers an invocation, none once one lookup found Polyv
unavailable (an outage must not cost a timeout per video), and none past the time a prewarm call
needs; every video over those bounds falls back to its hint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.accounts import of_account
from ..domain.model import DefinitionsLookup, FileRequest
from ..domain.plan import VID_RE
from ..domain.policy import Deadline
from ..domain.ports import PolyvError, PolyvGateway, PrewarmError

logger = Logger(service=SERVICE, child=True)

#: The SQS batch (BatchSize 10) holds at most 10 lookups; a direct invocation or a raised batch
#: size is bounded here, each lookup being one Polyv request (within its rate limit, far below).
MAX_LOOKUPS = 20
NONE_LISTED = "Polyv's video information lists no transcoded definition: nothing to prewarm"


class Confirmed(NamedTuple):
    requests: list[FileRequest]
    ignored: list[tuple[DefinitionsLookup, str]]  # a video Polyv lists no definition of, and why
    asked: int  # lookups Polyv answered
    fell_back: int  # lookups whose hint was requested as ordinary files


class ConfirmDefinitions:
    def __init__(
        self,
        *,
        videos: PolyvGateway,
        default_br_indexes: Sequence[int],
        clock: Callable[[], datetime],
        min_time: timedelta,
        max_lookups: int = MAX_LOOKUPS,
    ) -> None:
        """``min_time``: what one Polyv call takes at most, its attempts included (the policy's):
        a lookup leaves at least that much for the prewarm calls after it."""
        self._videos = videos
        self._defaults = tuple(default_br_indexes)
        self._clock = clock
        self._min_time = min_time
        self._max = max_lookups

    def confirm(self, lookups: Sequence[DefinitionsLookup], *, deadline: Deadline) -> Confirmed:
        requests: list[FileRequest] = []
        ignored: list[tuple[DefinitionsLookup, str]] = []
        asked = fell_back = 0
        polyv_answers = True
        for lookup in lookups:
            if not (
                polyv_answers and asked + len(ignored) < self._max and self._askable(lookup.vid)
            ) or not self._time_left(deadline):
                listed = None
            else:
                listed = self._ask(lookup)
                polyv_answers = listed is not None
            if listed is None:
                requests.extend(self._hint(lookup))
                fell_back += 1
            elif not listed:
                ignored.append((lookup, NONE_LISTED))
            else:
                requests.extend(FileRequest(lookup.vid, br, lookup.origin, explicit=True) for br in listed)
                asked += 1
        if fell_back:
            logger.warning(
                "definitions not confirmed by Polyv: the event's hint requested as ordinary files",
                extra={"videos": fell_back, "confirmed": asked},
            )
        return Confirmed(requests, ignored, asked, fell_back)

    def _askable(self, vid: object) -> bool:
        """Only a vid of the Polyv shape and of this account goes into a request to Polyv (the
        plan rejects the rest with its reason)."""
        if not isinstance(vid, str) or VID_RE.fullmatch(vid) is None:
            return False
        try:
            return of_account(vid, self._videos.userid())
        except PrewarmError:  # the secret unreadable: the prewarm hands the files back itself
            return False

    def _ask(self, lookup: DefinitionsLookup) -> list[int] | None:
        """Polyv's definitions of the video, in brIndex order; None when Polyv did not answer."""
        assert isinstance(lookup.vid, str)
        try:
            return sorted(self._videos.definitions(lookup.vid))
        except PolyvError as exc:
            logger.warning("get-video-msg failed", extra={"vid": lookup.vid, "error": str(exc)})
            return None

    def _hint(self, lookup: DefinitionsLookup) -> list[FileRequest]:
        hint = lookup.hint or self._defaults
        return [FileRequest(lookup.vid, br, lookup.origin) for br in hint]

    def _time_left(self, deadline: Deadline) -> bool:
        return deadline.left(self._clock()) >= 2 * self._min_time
