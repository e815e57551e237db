"""One Polyv callback, received: read it, verify its sign, and queue what it asks to prewarm.

The order is the cost order, cheapest refusal first: a request that is not a well-formed
notification is refused before the secret is read; a forged or absent sign is refused before
anything is queued; a verified notification that asks for no prewarm is answered 200 (Polyv need
not send it again) with nothing queued. A verified ``encode`` or ``TranscodeComplete`` is answered
200 only once SQS has its message: if SQS fails, the answer is 503 and Polyv may call again. The
sign carries no timestamp, so a replay verifies: the day ledger's per-file claim makes it a
``duplicate`` downstream, and it costs one queued message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import NamedTuple

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.callbacks import BadCallback, CallbackRequest, Notification, TooLarge, read
from ..domain.ports import Credentials, CredentialsError, CredentialsSource, PrewarmQueue, QueueUnavailable

logger = Logger(service=SERVICE, child=True)

#: After a sign mismatch the secret is read again (it may have been rotated while this container
#: was warm), at most this often: a flood of forged callbacks must not become a flood of reads.
REREAD_AFTER_MISMATCH_S = 60.0


class CallbackAnswer(NamedTuple):
    status: int  # the HTTP status
    outcome: str  # queued, ignored, forged, malformed, unavailable: the metric and the log say it
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


class CallbackReceiver:
    def __init__(
        self,
        credentials: CredentialsSource,
        queue: PrewarmQueue,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._queue = queue
        self._monotonic = monotonic
        self._reread_at: float | None = None

    def receive(self, request: CallbackRequest) -> CallbackAnswer:
        try:
            notification = read(request)
        except TooLarge as exc:
            return CallbackAnswer(413, "malformed", str(exc))
        except BadCallback as exc:
            return CallbackAnswer(400, "malformed", str(exc))
        answer = self._answer(notification)
        return answer._replace(kind=notification.name, vid=notification.vid)

    def _answer(self, notification: Notification) -> CallbackAnswer:
        if notification.kind is None:  # nothing is done with it: no need to verify it
            return CallbackAnswer(200, "ignored", notification.why_nothing())
        if notification.sign is None:
            return CallbackAnswer(403, "forged", "no sign: only signed callbacks are accepted")
        try:
            account = self._verify(notification)
        except CredentialsError as exc:
            logger.error("cannot read the Polyv secret: callback not verified", extra={"error": str(exc)})
            return CallbackAnswer(503, "unavailable", "cannot verify callbacks right now")
        if account is None:
            return CallbackAnswer(403, "forged", "the sign is not right")
        if notification.vid is not None and not notification.vid.startswith(account.userid):
            return CallbackAnswer(400, "malformed", "vid of another Polyv account")
        return self._act(notification)

    def _verify(self, notification: Notification) -> Credentials | None:
        """The account whose secretkey made the sign, or None. A mismatch reads the secret again
        (a rotation), at most every REREAD_AFTER_MISMATCH_S seconds."""
        account = self._credentials.get()
        if notification.signed_by(account.secretkey):
            return account
        now = self._monotonic()
        if self._reread_at is not None and now - self._reread_at < REREAD_AFTER_MISMATCH_S:
            return None
        self._reread_at = now
        account = self._credentials.get(refresh=True)
        return account if notification.signed_by(account.secretkey) else None

    def _act(self, notification: Notification) -> CallbackAnswer:
        message = notification.message()
        if message is None:
            return CallbackAnswer(200, "ignored", notification.why_nothing())
        try:
            message_id = self._queue.send(json.dumps(message, separators=(",", ":")))
        except QueueUnavailable as exc:
            logger.error("could not queue a verified callback", extra={"error": str(exc)})
            return CallbackAnswer(503, "unavailable", "could not queue it: try again")
        definitions = ",".join(map(str, notification.definitions))
        return CallbackAnswer(200, "queued", f"queued to prewarm brIndex {definitions}", message_id)
