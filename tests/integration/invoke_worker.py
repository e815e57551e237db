"""Run the handler once in this process: ``python -m tests.integration.invoke_worker EVENT.json``.

Used to invoke the function from separate processes at the same time, as concurrent Lambda
instances would. Prints the handler's answer as JSON on the last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devstack.lambda_context import LocalLambdaContext


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "prewarm"))
    import app

    event = json.loads(Path(sys.argv[1]).read_text())
    result = app.lambda_handler(event, LocalLambdaContext())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
