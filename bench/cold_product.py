"""The product's cold start: import the Lambda entry and serve one 1-file direct invocation.
Run in a fresh interpreter by bench/run.py with the local stack's environment and a vid as argv[1];
it prints when the answer was ready."""

from __future__ import annotations

import sys
import time

from app import lambda_handler
from polyv_prewarm.lambda_context import LocalLambdaContext

summary = lambda_handler({"videos": [{"vid": sys.argv[1], "brIndex": 1}]}, LocalLambdaContext())
assert summary["counts"] == {"submitted": 1}, summary
# The answer is ready: a cold start ends here. (Lambda keeps the process; the interpreter's teardown
# that follows is no part of a cold start, and the benchmark reports it apart.)
print(f"answered at {time.time()!r}", flush=True)
