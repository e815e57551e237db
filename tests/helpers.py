"""What the tests share: the test account's vids, event builders, and a world of in-memory fakes
(unit tests) or helpers that move the local stack's clock and limit (integration tests)."""

from __future__ import annotations

import functools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from polyv_prewarm import runtime
from polyv_prewarm.config import DEFAULTS, Settings
from polyv_prewarm.domain.accounts import Account, AccountBook
from polyv_prewarm.domain.model import FileRequest, Origin
from polyv_prewarm.domain.policy import Deadline
from polyv_prewarm.logic.accounts import EveryAccount
from polyv_prewarm.runtime import retry_policy, use_cases
from tests.fakes import (
    USERID,
    FakePolyv,
    FakeQueue,
    InMemoryBacklog,
    InMemoryBreaker,
    InMemoryLedger,
    InMemoryMarks,
    vid,
)

if TYPE_CHECKING:
    import pytest

    from devstack.stack import DevStack

__all__ = ["USERID", "vid"]

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


# -- events ------------------------------------------------------------------------------------
def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def sqs_event(*bodies: str | dict[str, Any], ids: list[str] | None = None) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        records.append(
            {
                "messageId": ids[i] if ids else f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": text,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:polyv-prewarm-PrewarmQueue",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


# -- the local stack (integration tests) ---------------------------------------------------------
def shift_days(stack: DevStack, monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    """Move the function's clock and Polyv's clock ``days`` quota days ahead (a controllable clock)."""
    stack.day_offset = days
    shifted = functools.cache(lambda: runtime.build_runtime(os.environ, clock=stack.now))
    monkeypatch.setattr(runtime, "current", shifted)


def pin_hour(stack: DevStack, monkeypatch: pytest.MonkeyPatch, hour: int) -> float:
    """Move the stack's clock (and the function's) to ``hour``:00 in the quota's time zone, later
    today or the next day (``DevStack.move_to_hour``), so that a test moving it an hour or two
    never crosses the quota day's midnight, whatever the real time. Returns the stack's seconds
    offset then."""
    stack.seconds_offset = 0.0
    stack.move_to_hour(hour)
    shift_days(stack, monkeypatch, stack.day_offset)
    return stack.seconds_offset


def dead_lettered(stack: DevStack) -> dict[str, str]:
    """sourceMessageId -> reason of every message the function put on the dead-letter queue."""
    sqs = stack.client("sqs")
    found: dict[str, str] = {}
    while True:
        answer = sqs.receive_message(
            QueueUrl=stack.queues["PrewarmDeadLetterQueue"],
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            attributes = message.get("MessageAttributes", {})
            source = attributes.get("sourceMessageId", {}).get("StringValue", "?")
            found[source] = attributes.get("reason", {}).get("StringValue", "")


#: The hour of the quota day the integration tests run at (tests/integration/conftest.py).
PINNED_HOUR = 10


def set_limit(stack: DevStack, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """An emptied stack with another daily limit, still at the pinned hour."""
    stack.reset(daily_limit=limit)
    monkeypatch.setenv("DAILY_FILE_LIMIT", str(limit))
    pin_hour(stack, monkeypatch, PINNED_HOUR)


# -- a world of fakes (unit tests) ---------------------------------------------------------------
TZ = ZoneInfo("Asia/Shanghai")
# 2026-11-27 17:00 UTC is already 2026-11-28 in Shanghai.
START = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
DAY = "2026-11-28"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


def requests_for(n, br=1, origin=None, start=0):
    return [FileRequest(vid(start + i), br, origin or Origin("direct")) for i in range(n)]


#: What every world of fakes is configured with beyond config.DEFAULTS (which it takes as they are).
BASE_ENV = {"POLYV_SECRET_ID": "polyv/test", "QUOTA_TABLE": "quota", "DAILY_FILE_LIMIT": "2000"}
#: The settings under which one Polyv call needs 15 s of an invocation's time (3 attempts of 1 + 4 s).
FIFTEEN_SECONDS_A_CALL = {
    "POLYV_ATTEMPTS": "3",
    "POLYV_CONNECT_TIMEOUT_SECONDS": "1",
    "POLYV_READ_TIMEOUT_SECONDS": "4",
}
NO_RESERVE = {"MANUAL_RESERVE": "0"}  # automatic traffic may use the whole limit (test_quota_policy has it)


class World:
    """The use cases over in-memory fakes, configured as production is (``config.Settings``
    from config.DEFAULTS) but for what a test states: ``limit`` and any variable in ``env``
    (``MANUAL_RESERVE="0"``, ``DRAIN_ORDER="oldest"``...)."""

    def __init__(self, limit=2000, polyv=None, **env):
        self.polyv = polyv or FakePolyv()
        self.ledger = InMemoryLedger()
        self.backlog = InMemoryBacklog()
        self.breaker = InMemoryBreaker()
        self.marks = InMemoryMarks()
        self.queue = FakeQueue()  # the prewarm queue: empty unless a test says otherwise
        self.clock = Clock()
        self.sleep = lambda seconds: None  # a test may make waiting move the clock
        self.backoff = None  # a test may fix the back-off; else the Polyv client's, from the settings
        self.env = {**BASE_ENV, "DAILY_FILE_LIMIT": str(limit)}
        self.configure(**env)

    def configure(self, **env) -> None:
        """Change settings (as a redeploy would), keeping the stores, Polyv and the clock."""
        unknown = set(env) - set(DEFAULTS) - set(BASE_ENV)
        assert not unknown, f"not a setting: {sorted(unknown)}"
        self.env.update(env)
        self._build()

    def _build(self) -> None:
        """The use cases as the composition root wires them (``runtime.use_cases``), over fakes."""
        self.settings = Settings.from_env(self.env)
        retry = retry_policy(self.settings)
        self.cases = use_cases(
            self.settings,
            polyv=self.polyv,
            ledger=self.ledger,
            backlog=self.backlog,
            marks=self.marks,
            breaker=self.breaker,
            clock=self.clock,
            backoff=lambda n: self.backoff(n) if self.backoff else retry.backoff(n),
            sleep=lambda seconds: self.sleep(seconds),
            events=self.queue,
        )
        self.queries, self.backfill, self.confirm = (
            self.cases.queries,
            self.cases.backfill,
            self.cases.confirm,
        )

    def account(self) -> Account:
        return Account(self.polyv.userid(), self.settings.daily_limit, self.settings.manual_reserve)

    def every_account(self) -> EveryAccount:
        """This world's one account, as the runtime serves accounts (read from the "secret", the
        fake Polyv's userid, each time: a test may make it unreadable)."""

        def book() -> AccountBook:
            return AccountBook([self.account()], home=self.polyv.userid())

        return EveryAccount(book, lambda account: self.cases)

    def serve_the_handler(self, monkeypatch: pytest.MonkeyPatch, messages: Any = None) -> None:
        """Make this world the function's runtime (``runtime.current``), for the handler's tests."""
        fakes = runtime.Runtime(self.settings, self.every_account(), self.clock, messages=messages)
        monkeypatch.setattr(runtime, "current", lambda: fakes)

    # -- the use cases, as the handler calls them ---------------------------------------------
    def prewarm(self, requests, **options):
        return self.cases.prewarm.prewarm(requests, **options)

    def drain(self, **options):
        return self.cases.drain.run(**options)

    def recover(self, **options):
        return self.cases.recover.recover(**options)

    def deadline_in(self, seconds: float) -> Deadline:
        return Deadline(self.clock() + timedelta(seconds=seconds))

    def slow_polyv(self, *, seconds_per_call: float, deadline_in: float) -> Deadline:
        """Every Polyv call takes ``seconds_per_call`` on the clock; returns the invocation's
        deadline, ``deadline_in`` seconds from now."""
        deadline = self.deadline_in(deadline_in)
        self.polyv.on_push = lambda files: self.clock.advance(seconds=seconds_per_call)
        return deadline
