"""`make local-stack`: keep the local stack up for the CLI (or any AWS/Polyv client) to use.

Starts moto's server and the Polyv simulator with the demo's account and catalogue, the callback
endpoint on loopback (the template's CallbackApi), and the prewarm queue's event source (every
message sent to the queue is delivered to the prewarm handler in this process); writes the
settings to `.local-stack.env`, and waits until Ctrl-C. In another shell:

    set -a; . ./.local-stack.env; set +a
    .venv/bin/polyv-prewarm quota
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from pathlib import Path

from .demo import CATALOGUE
from .local_event_source import LocalEventSource
from .local_http_api import LocalHttpApi
from .stack import ROOT, DevStack

ENV_FILE = ROOT / ".local-stack.env"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--daily-limit", type=int, default=2000)
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    args = parser.parse_args(argv)
    stack = DevStack(daily_limit=args.daily_limit).start()
    assert stack.polyv is not None
    for vid, brs in CATALOGUE.items():
        stack.polyv.add_video(vid, brs)
    env = stack.env()
    os.environ.update(env)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    sys.path.insert(0, str(ROOT / "functions" / "prewarm"))
    api = LocalHttpApi(importlib.import_module("callback_app").lambda_handler).start()
    source = LocalEventSource(
        stack.client("sqs"), stack.queues["PrewarmQueue"], importlib.import_module("app").lambda_handler
    )
    stopping = threading.Event()
    threading.Thread(target=_deliver, args=(source, stopping), name="event-source", daemon=True).start()
    args.env_file.write_text("".join(f"{name}={value}\n" for name, value in sorted(env.items())))
    print(f"moto server {stack.aws_endpoint}, Polyv simulator {stack.polyv.url}")
    print(f"callback endpoint {api.url} (messages on the prewarm queue go to the prewarm handler)")
    print(f"settings written to {args.env_file}; load them with:  set -a; . {args.env_file}; set +a")
    print("Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stopping.set()
        api.stop()
        stack.stop()
        args.env_file.unlink(missing_ok=True)


def _deliver(source: LocalEventSource, stopping: threading.Event) -> None:
    """Lambda's SQS poller, once a second."""
    while not stopping.wait(1.0):
        try:
            source.drain()
        except Exception as exc:  # the stack is stopping, or a handler bug: say it, keep polling
            print(f"event source: {type(exc).__name__}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
