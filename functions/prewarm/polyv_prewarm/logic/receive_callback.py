"""One Polyv callback, received: read it, verify its sign, and queue what it asks to prewarm, once.

The order is the cost order, cheapest refusal first:

1. a request that is not a well-formed notification (or whose method is not its kind's) is
   refused (400, 413) before the secret is read;
2. a notification that asks for no prewarm and has no kind this endpoint acts on is answered
   200 unverified: nothing is done with it;
3. an absent sign is refused (403); a vid of no account this endpoint serves is refused (400, "no
   account for userid ..."): before the secret is read when the accounts are configured by
   userid (``POLYV_ACCOUNTS``), else against the cached secret's accounts, with no re-read; a
   sign is checked against the secretkey of the vid's own account (cached), and after a
   mismatch against a freshly read one, within a re-read budget (:class:`RereadBudget`): a
   mismatch that a fresh secretkey confirms is 403, one that the spent budget leaves unchecked is
   503 (it may be a genuine callback signed with a rotated secretkey: Polyv may call again);
4. a verified notification that asks for no prewarm is answered 200 (Polyv need not send it again);
5. a verified ``encode`` or ``TranscodeComplete`` is looked up in the record of received
   callbacks by its signed content: already queued once (on any day) is a replay, answered 200
   "already received" with nothing queued; otherwise this request takes the record under a short
   lease, queues the message, and marks it queued. 200 only once SQS has the message; if SQS
   fails the record is given up and the answer is 503, so that Polyv's retry goes through.

Every step that calls AWS first checks that its worst case (the clients' bounded retries) fits
before the deadline; when it does not, the answer is 503 at once, never API Gateway's own 5xx.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from enum import StrEnum
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.accounts import no_account, of_account
from ..domain.callbacks import BadCallback, CallbackRequest, Notification, TooLarge, read
from ..domain.ports import (
    AccountsSource,
    Arrival,
    Credentials,
    CredentialsError,
    PrewarmQueue,
    QueueUnavailable,
    ReceivedCallbacks,
    StoreUnavailable,
)

logger = Logger(service=SERVICE, child=True)

#: A request owns the record of a notification for this long while it queues the message: more
#: than the callback function's Timeout (template.yaml, 10 s; tests/test_template.py holds it), so
#: a live request's lease never ends under it, and a request killed mid-way leaves a record that
#: Polyv's retry (or the reconcile) can take over after at most this long.
LEASE_MS = 30_000


class RereadBudget:
    """How often a sign mismatch may read the secret again (it may have been rotated while this
    container was warm): a bucket of ``burst`` re-reads, refilled one every ``every_s`` seconds.

    The endpoint cannot tell a forgery from a genuine callback signed with a rotated secretkey, so
    any bound lets forgeries use it up; this one keeps the window short (a genuine callback right
    after a few forged ones is verified at once; under a sustained flood, within ``every_s``) and
    the cost bounded whatever the flood: at most ``burst`` + one read per ``every_s`` seconds per
    container (docs/callbacks.md, "A rotation")."""

    def __init__(self, *, burst: int = 3, every_s: float = 5.0, monotonic: Callable[[], float]) -> None:
        self.burst = burst
        self.every_s = every_s
        self._monotonic = monotonic
        self._tokens = float(burst)
        self._at = monotonic()

    def take(self) -> bool:
        now = self._monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.every_s)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Outcome(StrEnum):
    """What became of a callback: its metric, its log line's level, its answer's ``result``."""

    QUEUED = "queued"  # verified, and its definitions are on the prewarm queue
    REPLAYED = "replayed"  # verified, and its signed content was queued before (200)
    IGNORED = "ignored"  # a kind that asks for no prewarm (200, nothing queued)
    FORGED = "forged"  # absent or wrong sign (403)
    UNVERIFIED = "unverified"  # a mismatch the spent re-read budget left unchecked (503)
    MALFORMED = "malformed"  # not a well-formed notification (400, 413)
    UNAVAILABLE = "unavailable"  # the secret unreadable, the record or SQS down, no time (503)

    @property
    def taken(self) -> bool:
        """Answered as Polyv wants it: it need not call again."""
        return self in (Outcome.QUEUED, Outcome.IGNORED, Outcome.REPLAYED)

    @property
    def retried(self) -> bool:
        """Not taken for a reason that passes: Polyv may call again."""
        return self in (Outcome.UNAVAILABLE, Outcome.UNVERIFIED)


class CallbackAnswer(NamedTuple):
    status: int  # the HTTP status
    outcome: Outcome  # the metric and the log line
    reason: str  # short, never an echo of the request
    message_id: str | None = None  # the prewarm queue's message
    kind: str | None = None  # the notification's kind, once read (well-formed: safe to log)
    vid: str | None = None  # its vid, once read (of the vid shape: safe to log)

    def log_keys(self) -> dict[str, object]:
        keys = {"http_status": self.status, "outcome": self.outcome, "reason": self.reason}
        return keys | {
            k: v for k, v in (("kind", self.kind), ("vid", self.vid), ("message_id", self.message_id)) if v
        }

    def body(self) -> str:
        answer = {"result": self.outcome, "reason": self.reason}
        if self.message_id is not None:
            answer["messageId"] = self.message_id
        return json.dumps(answer)


UNAVAILABLE_SECRET = CallbackAnswer(503, Outcome.UNAVAILABLE, "cannot verify callbacks right now")
UNAVAILABLE_TIME = CallbackAnswer(503, Outcome.UNAVAILABLE, "cannot answer in time: try again")
UNVERIFIED = CallbackAnswer(503, Outcome.UNVERIFIED, "the sign cannot be checked right now: try again")
FORGED = CallbackAnswer(403, Outcome.FORGED, "the sign is not right")


def _no_account(vid: str) -> CallbackAnswer:
    return CallbackAnswer(400, Outcome.MALFORMED, no_account(vid))


class _OutOfTime(Exception):
    """The next AWS call's worst case would not end before the deadline."""


class CallbackReceiver:
    def __init__(
        self,
        credentials: AccountsSource,
        queue: PrewarmQueue,
        received: ReceivedCallbacks,
        *,
        step_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        rereads: RereadBudget | None = None,
        new_owner: Callable[[], str] = lambda: uuid.uuid4().hex,
        userids: Collection[str] = (),
    ) -> None:
        """``step_s``: the worst case of one AWS call with the clients' timeouts and retries
        (``callback_runtime``), checked against the deadline before each call. ``userids``: the
        accounts served, when configured by userid (a vid of another is refused unread); empty:
        every account of the secret."""
        self._credentials = credentials
        self._userids = frozenset(userids)
        self._queue = queue
        self._received = received
        self._step_s = step_s
        self._monotonic = monotonic
        self._now_ms = now_ms
        self._rereads = rereads or RereadBudget(monotonic=monotonic)
        self._new_owner = new_owner

    def receive(self, request: CallbackRequest, *, deadline: float | None = None) -> CallbackAnswer:
        """The answer to one request; ``deadline``: on the monotonic clock, when the answer must
        have been given (the function's timeout), None for no deadline."""
        try:
            notification = read(request)
        except TooLarge as exc:
            return CallbackAnswer(413, Outcome.MALFORMED, str(exc))
        except BadCallback as exc:
            return CallbackAnswer(400, Outcome.MALFORMED, str(exc))
        try:
            answer = self._answer(notification, deadline)
        except _OutOfTime:
            answer = UNAVAILABLE_TIME
        return answer._replace(kind=notification.name, vid=notification.vid)

    def _answer(self, notification: Notification, deadline: float | None) -> CallbackAnswer:
        if notification.kind is None:  # nothing is done with it: no need to verify it
            return CallbackAnswer(200, Outcome.IGNORED, notification.why_nothing())
        if notification.sign is None:
            return CallbackAnswer(403, Outcome.FORGED, "no sign: only signed callbacks are accepted")
        vid = notification.vid
        if vid is not None and self._userids and not any(of_account(vid, u) for u in self._userids):
            return _no_account(vid)
        try:
            verified = self._verify(notification, deadline)
        except CredentialsError as exc:
            logger.error("cannot read the Polyv secret: callback not verified", extra={"error": str(exc)})
            return UNAVAILABLE_SECRET
        if isinstance(verified, CallbackAnswer):
            return verified
        return self._act(notification, deadline)

    def _verify(self, notification: Notification, deadline: float | None) -> Credentials | CallbackAnswer:
        """The account whose secretkey made the sign, the vid's own (the first account's for a
        notification without a vid), or the answer that refuses it: 400 for a vid of no account,
        403 when a freshly read secretkey confirms the mismatch, 503 when the re-read budget is
        spent. A sign of another account's secretkey is a mismatch like any other."""
        self._in_time(deadline)
        account = self._account_of(notification.vid, refresh=False)
        if isinstance(account, CallbackAnswer) or notification.signed_by(account.secretkey):
            return account
        if not self._rereads.take():
            return UNVERIFIED
        self._in_time(deadline)
        account = self._account_of(notification.vid, refresh=True)
        if isinstance(account, CallbackAnswer) or notification.signed_by(account.secretkey):
            return account
        return FORGED

    def _account_of(self, vid: str | None, *, refresh: bool) -> Credentials | CallbackAnswer:
        accounts = self._credentials.accounts(refresh=refresh)
        if vid is None:
            return accounts[0]
        found = next((a for a in accounts if of_account(vid, a.userid)), None)
        return _no_account(vid) if found is None else found

    def _act(self, notification: Notification, deadline: float | None) -> CallbackAnswer:
        message, content = notification.message(), notification.replay_key()
        if message is None or content is None or notification.vid is None:
            return CallbackAnswer(200, Outcome.IGNORED, notification.why_nothing())
        vid, owner = notification.vid, self._new_owner()
        try:
            self._in_time(deadline, steps=2)  # a read, then a conditional write
            arrival = self._received.arrive(
                vid, content, owner=owner, now_ms=self._now_ms(), lease_ms=LEASE_MS
            )
        except StoreUnavailable as exc:
            logger.error("cannot read the record of received callbacks", extra={"error": str(exc)})
            return CallbackAnswer(
                503, Outcome.UNAVAILABLE, "cannot check it against earlier callbacks: try again"
            )
        if arrival is Arrival.RECEIVED:
            return CallbackAnswer(200, Outcome.REPLAYED, "already received: nothing queued")
        if arrival is Arrival.IN_FLIGHT:
            return CallbackAnswer(503, Outcome.UNAVAILABLE, "being received by another request: try again")
        try:
            self._in_time(deadline)
            message_id = self._queue.send(json.dumps(message, separators=(",", ":")))
        except (QueueUnavailable, _OutOfTime) as exc:
            logger.error("could not queue a verified callback", extra={"error": str(exc) or "out of time"})
            self._give_up(vid, content, owner, deadline)
            return CallbackAnswer(503, Outcome.UNAVAILABLE, "could not queue it: try again")
        self._mark_queued(vid, content, owner, message_id, deadline)
        definitions = ",".join(map(str, notification.definitions))
        hint = " (Polyv's video information decides)" if "askPolyv" in message else ""
        return CallbackAnswer(
            200, Outcome.QUEUED, f"queued to prewarm brIndex {definitions}{hint}", message_id
        )

    def _give_up(self, vid: str, content: str, owner: str, deadline: float | None) -> None:
        """Nothing was queued: free the record for Polyv's retry (best effort: if this fails too,
        the lease frees it within LEASE_MS)."""
        try:
            self._in_time(deadline)
            self._received.abandon(vid, content, owner=owner)
        except (StoreUnavailable, _OutOfTime) as exc:
            logger.warning("could not free the callback's record", extra={"error": str(exc) or "out of time"})

    def _mark_queued(
        self, vid: str, content: str, owner: str, message_id: str, deadline: float | None
    ) -> None:
        """Best effort, once the message is on the queue: the answer is 200 whatever happens here.
        A record left unmarked lets one later arrival (after its lease) queue the content once more
        (a duplicate the ledger absorbs that day), then it is marked."""
        try:
            self._in_time(deadline)
            self._received.queued(vid, content, owner=owner, message_id=message_id, now_ms=self._now_ms())
        except (StoreUnavailable, _OutOfTime) as exc:
            logger.warning("queued, but not marked as received", extra={"error": str(exc) or "out of time"})

    def _in_time(self, deadline: float | None, *, steps: int = 1) -> None:
        if deadline is not None and self._monotonic() + steps * self._step_s > deadline:
            raise _OutOfTime()
