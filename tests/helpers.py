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
from polyv_prewarm.domain.model import FileRequest, Origin
from polyv_prewarm.logic.service import PrewarmService
from tests.fakes import USERID, FakePolyv, InMemoryBacklog, InMemoryLedger, vid

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
    """Move the stack's clock (and the function's) forward to ``hour``:00 in Asia/Shanghai, later
    today or the next day, so that a test moving it an hour or two never crosses the quota day's
    midnight, whatever the real time. Returns the stack's seconds offset then."""
    stack.seconds_offset = 0.0
    now = stack.now().astimezone(TZ)
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target < now:
        target += timedelta(days=1)
    stack.seconds_offset = (target - now).total_seconds()
    shift_days(stack, monkeypatch, stack.day_offset)
    return stack.seconds_offset


def set_limit(stack: DevStack, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    stack.reset(daily_limit=limit)
    monkeypatch.setenv("DAILY_FILE_LIMIT", str(limit))
    runtime.current.cache_clear()


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


class World:
    def __init__(self, limit=2000, polyv=None, **service_options):
        self.polyv = polyv or FakePolyv()
        self.ledger = InMemoryLedger()
        self.backlog = InMemoryBacklog()
        self.clock = Clock()
        self.service = PrewarmService(
            polyv=self.polyv,
            ledger=self.ledger,
            backlog=self.backlog,
            daily_limit=limit,
            timezone=TZ,
            clock=self.clock,
            sleep=lambda _: None,
            **service_options,
        )

    def slow_polyv(self, *, seconds_per_call: float, deadline_in: float):
        """Every Polyv call takes ``seconds_per_call`` on the clock; returns the invocation's
        ``time_left_ms`` for a deadline ``deadline_in`` seconds from now."""
        deadline = self.clock() + timedelta(seconds=deadline_in)
        self.polyv.on_push = lambda files: self.clock.advance(seconds=seconds_per_call)
        return lambda: int((deadline - self.clock()).total_seconds() * 1000)
