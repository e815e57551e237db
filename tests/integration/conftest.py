"""Integration fixtures: one local stack (moto server + Polyv simulator) for the session,
emptied before every test. Every AWS and Polyv call in these tests is real HTTP on loopback."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import DevStack
from polyv_prewarm import runtime
from polyv_prewarm.lambda_context import LocalLambdaContext

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
USERID = "e6b23c6f51"


def vid(i: int) -> str:
    return f"{USERID}{i:022x}_e"


@pytest.fixture(scope="session")
def _session_stack() -> Iterator[DevStack]:
    stack = DevStack().start()
    yield stack
    stack.stop()


@pytest.fixture
def stack(_session_stack: DevStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevStack]:
    """A clean stack, with the function's environment pointing at it."""
    _session_stack.reset(daily_limit=2000)
    assert _session_stack.polyv is not None
    for path in EVENTS.glob("*.json"):  # every vid of the account in events/ exists in Polyv
        for token in set(__import__("re").findall(r"e6b23c6f51[0-9a-z]{22}_[0-9a-z]", path.read_text())):
            if token != "e6b23c6f51ffffffffffffffffffffff_e":
                _session_stack.polyv.add_video(token, (1, 2, 3))
    for name, value in _session_stack.env().items():
        monkeypatch.setenv(name, value)
    runtime.current.cache_clear()
    yield _session_stack
    runtime.current.cache_clear()


def shift_days(stack: DevStack, monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    """Move the function's clock and Polyv's clock ``days`` quota days ahead (a controllable clock)."""
    stack.day_offset = days
    shifted = functools.cache(lambda: runtime.build_runtime(os.environ, clock=stack.now))
    monkeypatch.setattr(runtime, "current", shifted)


def set_limit(stack: DevStack, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    stack.reset(daily_limit=limit)
    monkeypatch.setenv("DAILY_FILE_LIMIT", str(limit))
    runtime.current.cache_clear()


@pytest.fixture
def invoke() -> Callable[[dict[str, Any]], Any]:
    import app

    def _invoke(event: dict[str, Any]) -> Any:
        return app.lambda_handler(event, LocalLambdaContext())

    return _invoke


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
