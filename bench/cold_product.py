"""The product's cold start: import the Lambda entry and serve one 1-file direct invocation.
Run in a fresh interpreter by bench/run.py with the local stack's environment and a vid as argv[1]."""

from __future__ import annotations

import sys

from app import lambda_handler
from polyv_prewarm.lambda_context import LocalLambdaContext

summary = lambda_handler({"videos": [{"vid": sys.argv[1], "brIndex": 1}]}, LocalLambdaContext())
assert summary["counts"] == {"submitted": 1}, summary
