"""Integration fixtures: one local stack (moto server + Polyv simulator) for the session,
emptied before every test. Every AWS and Polyv call in these tests is real HTTP on loopback."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.local_event_source import LocalEventSource
from devstack.local_http_api import LocalHttpApi
from devstack.stack import DevStack
from polyv_prewarm import callback_runtime, runtime
from polyv_prewarm.lambda_context import LocalLambdaContext
from tests.helpers import EVENTS, PINNED_HOUR, pin_hour


@pytest.fixture(scope="session")
def _session_stack() -> Iterator[DevStack]:
    stack = DevStack().start()
    yield stack
    stack.stop()


@pytest.fixture
def stack(_session_stack: DevStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevStack]:
    """A clean stack, with the function's environment pointing at it, and its clock (the
    function's and Polyv's) at 10:00 in Asia/Shanghai."""
    _session_stack.reset(daily_limit=2000)
    assert _session_stack.polyv is not None
    # every vid of the account in events/ exists in Polyv, uploaded a month ago (older than any
    # reconcile's window: a test's own uploads are the new videos)
    month_ago = _session_stack.now().timestamp() - 30 * 86_400
    for path in EVENTS.glob("*.json"):
        for token in set(__import__("re").findall(r"e6b23c6f51[0-9a-z]{22}_[0-9a-z]", path.read_text())):
            if token != "e6b23c6f51ffffffffffffffffffffff_e":
                _session_stack.polyv.add_video(token, (1, 2, 3), uploaded_at=month_ago)
    for name, value in _session_stack.env().items():
        monkeypatch.setenv(name, value)
    # Every test runs at 10:00 in the quota's time zone (unless it moves the clock itself), so that
    # none depends on the hour the suite runs at (16:00 UTC is Shanghai's midnight).
    pin_hour(_session_stack, monkeypatch, PINNED_HOUR)
    callback_runtime.current.cache_clear()
    yield _session_stack
    runtime.current.cache_clear()
    callback_runtime.current.cache_clear()


@pytest.fixture(scope="session")
def _session_callback_api() -> Iterator[LocalHttpApi]:
    import callback_app

    api = LocalHttpApi(callback_app.lambda_handler).start()
    yield api
    api.stop()


@pytest.fixture
def callback_api(stack: DevStack, _session_callback_api: LocalHttpApi) -> LocalHttpApi:
    """The callback endpoint on loopback (the template's CallbackApi routes), on a clean stack."""
    _session_callback_api.answered.clear()
    return _session_callback_api


@pytest.fixture
def prewarm_queue(stack: DevStack) -> LocalEventSource:
    """The prewarm queue's event source mapping: delivers its messages to the prewarm handler."""
    import app

    return LocalEventSource(stack.client("sqs"), stack.queues["PrewarmQueue"], app.lambda_handler)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The handler's JSON log lines (its StreamHandler was bound to stdout at import)."""
    from polyv_prewarm import handler

    buffer = io.StringIO()
    previous = [h.stream for h in handler.logger.handlers]
    for h in handler.logger.handlers:
        h.stream = buffer
    yield buffer
    for h, stream in zip(handler.logger.handlers, previous, strict=True):
        h.stream = stream


@pytest.fixture
def invoke() -> Callable[[dict[str, Any]], Any]:
    import app

    def _invoke(event: dict[str, Any]) -> Any:
        return app.lambda_handler(event, LocalLambdaContext())

    return _invoke


@pytest.fixture
def run_cli(stack: DevStack, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the polyv-prewarm command in this process: its exit code, stdout and stderr. The
    command sets the environment from its options (as a process of its own would); each run
    starts from the test's environment again, with a runtime built afresh."""
    from polyv_prewarm import cli

    def _run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        runtime.current.cache_clear()
        saved = dict(os.environ)
        try:
            code = cli.main(list(argv))
        finally:
            os.environ.clear()
            os.environ.update(saved)
            runtime.current.cache_clear()
        out, err = capsys.readouterr()
        return code, out, err

    return _run
