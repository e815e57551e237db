"""Run the handler once in this process:
``python -m tests.integration.invoke_worker EVENT.json [DAYS_AHEAD]``.

Used to invoke the function from separate processes at the same time, as concurrent Lambda
instances would. Prints the handler's answer as JSON on the last line.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from polyv_prewarm.lambda_context import LocalLambdaContext


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "prewarm"))
    import app
    from polyv_prewarm import runtime

    offset = timedelta(days=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    runtime.current = functools.cache(  # type: ignore[assignment]
        lambda: runtime.build_runtime(os.environ, clock=lambda: datetime.now(UTC) + offset)
    )
    event = json.loads(Path(sys.argv[1]).read_text())
    result = app.lambda_handler(event, LocalLambdaContext())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
