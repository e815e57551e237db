"""Memory of one invocation carrying many files, in a fresh interpreter.

argv: EVENT.json MODE. MODE ``rss``: prints the bare interpreter's RSS, the RSS after importing the
handler and the peak RSS (no tracing, which would inflate it). MODE ``trace``: prints tracemalloc's
peak of the Python allocations made during the invocation alone.
"""

from __future__ import annotations

import json
import resource
import sys
import tracemalloc


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """This process image's peak RSS (VmHWM). Not getrusage's ru_maxrss: after fork and exec it
    keeps the parent's peak, here the benchmark's own process with moto's server in it."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


bare = rss_mb()
from app import lambda_handler  # noqa: E402
from polyv_prewarm.lambda_context import LocalLambdaContext  # noqa: E402

imported = rss_mb()
with open(sys.argv[1]) as source:
    event = json.load(source)
if sys.argv[2] == "trace":
    tracemalloc.start()
    lambda_handler(event, LocalLambdaContext(timeout_s=900))
    print(json.dumps({"invocation_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20}))
else:
    lambda_handler(event, LocalLambdaContext(timeout_s=900))
    print(json.dumps({"bare_mb": bare, "imported_mb": imported, "peak_rss_mb": peak_rss_mb()}))
