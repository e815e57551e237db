"""Receive one callback in this process, as one invocation of the callback function would, and
be killed (SIGKILL, by itself) at a chosen point: ``python -m tests.integration.callback_worker
QUERY --kill-before send``. Used to show that a request killed after it took a notification's
record, before the message reached SQS, leaves a record that a later arrival takes over."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("query")
    parser.add_argument("--kill-before", choices=["send", "mark"], required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "prewarm"))
    import callback_app
    from devstack.local_http_api import api_event
    from polyv_prewarm.adapters.queue import SqsPrewarmQueue
    from polyv_prewarm.adapters.received_callbacks import DynamoReceivedCallbacks
    from polyv_prewarm.lambda_context import LocalLambdaContext

    def die(*_args: object, **_kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if args.kill_before == "send":
        SqsPrewarmQueue.send = die  # type: ignore[method-assign]
    else:
        DynamoReceivedCallbacks.queued = die  # type: ignore[method-assign]
    event = api_event("GET", f"/polyv/callback?{args.query}", [], b"")
    callback_app.lambda_handler(event, LocalLambdaContext(timeout_s=10))


if __name__ == "__main__":
    main()
