"""Run the handler once in this process, as one Lambda invocation would:
``python -m tests.integration.invoke_worker EVENT.json [DAYS_AHEAD] [--offset-seconds S]
[--timeout S] [--reports PATH]``.

Used to invoke the function from separate processes at the same time, as concurrent Lambda
instances would, and to kill an invocation (SIGKILL) at a chosen point. ``--timeout`` is the
invocation's remaining time when the handler starts; ``--deadline`` the Unix time it ends at
(what a parent that kills it at its deadline shares with it); ``--reports`` appends the service's
per-file report of every prewarm or drain, as JSON lines, when it returns; ``--ready-file`` gets
the deadline once the child is ready to run (the parent kills it then, as Lambda would). Prints the
handler's answer as JSON on the last line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from polyv_prewarm.lambda_context import LocalLambdaContext


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("event", type=Path)
    parser.add_argument("days_ahead", type=int, nargs="?", default=0)
    parser.add_argument("--offset-seconds", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--deadline", type=float, help="Unix time the invocation ends at (overrides --timeout)"
    )
    parser.add_argument("--reports", type=Path)
    parser.add_argument(
        "--ready-file", type=Path, help="write the invocation's deadline (Unix time) here once ready to run"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "prewarm"))
    import app
    from polyv_prewarm import runtime
    from polyv_prewarm.logic.drain import DrainBacklog
    from polyv_prewarm.logic.prewarm import PrewarmFiles
    from polyv_prewarm.logic.recovery import RecoverWaiting

    offset = timedelta(days=args.days_ahead, seconds=args.offset_seconds)
    runtime.current = functools.cache(  # type: ignore[assignment]
        lambda: runtime.build_runtime(os.environ, clock=lambda: datetime.now(UTC) + offset)
    )
    if args.reports is not None:
        _keep_reports(PrewarmFiles, "prewarm", args.reports)
        _keep_reports(DrainBacklog, "run", args.reports)
        _keep_reports(RecoverWaiting, "recover", args.reports)
    event = json.loads(args.event.read_text())
    timeout = args.timeout if args.deadline is None else args.deadline - time.time()
    context = LocalLambdaContext(timeout_s=timeout)
    if args.ready_file is not None:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(str(time.time() + timeout))
        tmp.replace(args.ready_file)  # whole, at once: the parent never reads half a number
    result = app.lambda_handler(event, context)
    print(json.dumps(result))


def _keep_reports(cls: Any, name: str, path: Path) -> None:
    method = getattr(cls, name)

    @functools.wraps(method)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        from polyv_prewarm.summaries import summary

        report = method(self, *args, **kwargs)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(summary(report)) + "\n")
        return report

    setattr(cls, name, wrapped)


if __name__ == "__main__":
    main()
