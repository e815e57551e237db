"""`make bench` / `make bench-quick`: the cost of every prewarmed file, measured side by side.

Prints one Markdown table and writes it to bench/RESULTS.md with the machine and the date.
Figures are counts, or ratios of two things measured in the same run; absolute times are medians
on this machine only. Everything runs on the local stack (moto's server + the Polyv simulator).
"""

from __future__ import annotations

import argparse
import functools
import gc
import io
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions" / "prewarm"), str(ROOT)]

from bench import cost  # noqa: E402
from bench.cost import item_size, write_units  # noqa: E402
from bench.naive_client import prewarm_one_by_one  # noqa: E402
from devstack.stack import DevStack  # noqa: E402
from polyv_prewarm import runtime  # noqa: E402
from polyv_prewarm.adapters.ledger.schema import quota_key  # noqa: E402
from polyv_prewarm.adapters.signing import signed_form  # noqa: E402
from polyv_prewarm.config import Settings  # noqa: E402
from polyv_prewarm.domain.model import FileRef, FileRequest, Origin  # noqa: E402
from polyv_prewarm.domain.quotaday import quota_day  # noqa: E402
from polyv_prewarm.events import ParseOptions, parse_body  # noqa: E402
from polyv_prewarm.lambda_context import LocalLambdaContext  # noqa: E402
from polyv_prewarm.logic.prewarm import PrewarmFiles  # noqa: E402
from polyv_prewarm.telemetry import metrics  # noqa: E402
from tests.fakes import FakePolyv, InMemoryBacklog, InMemoryBreaker, InMemoryLedger, InMemoryMarks  # noqa: E402

USERID = "e6b23c6f51"


def vid(i: int) -> str:
    return f"{USERID}{i:022x}_e"


@dataclass
class Row:
    figure: str
    measured: str
    goal: str
    met: bool | None  # None: reported only

    def cells(self) -> list[str]:
        verdict = {True: "met", False: "**not met**", None: "reported"}[self.met]
        return [self.figure, self.measured, self.goal, verdict]


@dataclass
class Sizes:
    model_files: tuple[int, ...]  # the modelled and the measured comparison with the naive client
    cold_runs: int
    import_runs: int
    pure_files: int
    memory_files: int
    naive_sample: int  # files the naive client sends, with latency, to measure its rate
    calls_n: tuple[int, ...] = (1, 99, 100, 101, 250, 2000)


FULL = Sizes(
    model_files=(1_000, 10_000),
    cold_runs=25,
    import_runs=15,
    pure_files=100_000,
    memory_files=10_000,
    naive_sample=40,
)
QUICK = Sizes(
    model_files=(200,),
    cold_runs=3,
    import_runs=3,
    pure_files=5_000,
    memory_files=1_000,
    naive_sample=5,
    calls_n=(1, 100, 101, 250),
)

#: The latency model (seconds). Polyv: a round trip from an AWS region in mainland China or Hong
#: Kong to api.polyv.net, assumed (not measured here: this workplace reaches no network).
#: DynamoDB: a request within a region. Secrets Manager: one read per container.
POLYV_RTT = 0.150
DYNAMODB_RTT = 0.005
SECRETS_RTT = 0.020


@dataclass(frozen=True)
class Run:
    """One handler run on the local stack: what it took, and what it asked of each service."""

    files: int
    wall: float
    cpu: float  # the function's thread
    polyv_calls: int
    dynamodb: int  # requests
    secrets: int  # GetSecretValue requests
    in_moto: float  # seconds moto took to answer the AWS requests
    invocations: int

    def modelled(self) -> float:
        """Seconds under the latency model: the function's CPU, plus a round trip per request."""
        return (
            self.cpu
            + self.polyv_calls * POLYV_RTT
            + self.dynamodb * DYNAMODB_RTT
            + self.secrets * SECRETS_RTT
        )


class Bench:
    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.next_vid = 0
        self.runs: dict[int, Run] = {}
        self.writes: list[dict[str, Any]] = []  # the actions of every TransactWriteItems, in order
        self.requests: Counter[str] = Counter()
        self.dynamodb_seconds = 0.0
        self._started: dict[int, float] = {}
        from polyv_prewarm import handler

        for log_handler in logging.getLogger(handler.logger.name).handlers:
            log_handler.setLevel(logging.ERROR)  # the table is the output (child loggers propagate here)

    def fresh_vids(self, n: int) -> list[str]:
        assert self.stack.polyv is not None
        vids = [vid(self.next_vid + i) for i in range(n)]
        self.next_vid += n
        for v in vids:
            self.stack.polyv.add_video(v, (1, 2, 3))
        return vids

    def env(self, limit: int) -> dict[str, str]:
        return {
            **self.stack.env(),
            "DAILY_FILE_LIMIT": str(limit),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def use(self, limit: int) -> runtime.Runtime:
        """A fresh runtime whose DynamoDB requests are counted (botocore event hooks)."""
        assert self.stack.polyv is not None
        self.stack.reset(daily_limit=limit)
        os.environ.update(self.env(limit))
        session = boto3.session.Session()
        session.events.register("before-send.dynamodb", self._count)
        session.events.register("before-send.secrets-manager", self._count)
        session.events.register("provide-client-params.dynamodb.TransactWriteItems", self._capture)
        session.events.register("before-call.dynamodb", self._call_started)
        session.events.register("after-call.dynamodb", self._call_ended)
        built = runtime.build_runtime(os.environ, session=session)
        runtime.current = functools.cache(lambda: built)  # the handler uses this runtime
        self.requests.clear()
        return built

    @staticmethod
    def child_env() -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "prewarm"), str(ROOT)])}

    def _call_started(self, context: Any = None, **_: Any) -> None:
        self._started[id(context)] = time.perf_counter()

    def _call_ended(self, context: Any = None, **_: Any) -> None:
        self.dynamodb_seconds += time.perf_counter() - self._started.pop(id(context), time.perf_counter())

    def _capture(self, params: dict[str, Any], **_: Any) -> None:
        self.writes.extend(params["TransactItems"])

    def _count(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        self.requests[(target.decode() if isinstance(target, bytes) else target).split(".")[-1]] += 1

    # -- figures --------------------------------------------------------------------------------
    def calls_for_n(self, sizes: Sizes) -> Row:
        from polyv_prewarm.handler import lambda_handler

        measured = []
        ok = True
        for n in sizes.calls_n:
            self.use(limit=2000)
            assert self.stack.polyv is not None
            lambda_handler({"vids": self.fresh_vids(n), "brIndexes": [1]}, LocalLambdaContext())
            tasks = self.stack.polyv.tasks()
            files = sum(len(t.files) for t in tasks)  # counted by Polyv's side, not the product's
            ok &= len(tasks) == math.ceil(n / 100) and files == n and max(len(t.files) for t in tasks) <= 100
            measured.append(f"N={n}: {len(tasks)}")
        return Row(
            "Polyv calls for N unique files (counted by the simulator)",
            ", ".join(measured),
            "ceil(N/100)",
            ok,
        )

    def dynamodb_requests(self) -> Row:
        self.use(limit=2000)
        service = runtime.current().cases().prewarm
        first = self._requests_for(service, 100)
        steady = self._requests_for(service, 100)
        large = self._requests_for(service, 1000) / 10
        detail = (
            f"first call of the day {first}, steady state {steady} (100-file invocation), "
            f"{large:.1f} in a 1,000-file invocation"
        )
        return Row(
            "DynamoDB requests per 100 files submitted (botocore event hooks)",
            detail,
            "≤ 5 (two claims, the record, Polyv's breaker, the quota read)",
            first <= 5 and steady <= 5,
        )

    def _requests_for(self, service: PrewarmFiles, n: int) -> int:
        self.requests.clear()
        report = service.prewarm([FileRequest(v, 1, Origin("bench")) for v in self.fresh_vids(n)])
        assert report.counts() == {"submitted": n}, report.counts()
        return sum(count for operation, count in self.requests.items() if operation != "GetSecretValue")

    def cold_start(self, sizes: Sizes) -> list[Row]:
        """Fresh interpreters, interleaved: the baseline, the product with tracing off, the product
        with tracing on (as in Lambda with the Tracing parameter Active). The product's modules are
        compiled first, as ``make sam-build`` ships them. A cold start ends when the answer is
        ready (each script prints that instant): Lambda keeps the process, so the interpreter's
        teardown that follows (here ~0.2 s, mostly freeing botocore's loaded models) is reported apart."""
        compile_product()
        self.use(limit=100_000)
        variants = {
            "baseline": self.child_env(),
            "tracing off": self.child_env(),
            "tracing on": _traced_env(),
        }
        answered: dict[str, list[float]] = {name: [] for name in variants}
        whole: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(sizes.cold_runs):  # interleaved, so drift hits all alike
            for name, env in variants.items():
                (v,) = self.fresh_vids(1)
                script = ROOT / "bench" / ("cold_baseline.py" if name == "baseline" else "cold_product.py")
                started = time.time()
                out = subprocess.run(
                    [sys.executable, str(script), v],
                    env=env,
                    check=True,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                ).stdout
                whole[name].append(time.time() - started)
                answered[name].append(float(out.rsplit("answered at ", 1)[1]) - started)
        median = {name: statistics.median(runs) for name, runs in answered.items()}
        spread = {name: _middle_half_ms(runs) for name, runs in answered.items()}
        with_exit = {name: statistics.median(runs) for name, runs in whole.items()}
        # the lower quartile: what a run costs when the shared machine leaves it alone
        quiet = {name: statistics.quantiles(runs, n=4)[0] for name, runs in answered.items()}
        rows = []
        for name, goal in (("tracing off", 1.15), ("tracing on", None)):
            ratio = median[name] / median["baseline"]
            rows.append(
                Row(
                    f"cold start, {name}: fresh interpreter to the answer of a 1-file direct invocation "
                    f"(median of {sizes.cold_runs}, interleaved)",
                    f"{ratio:.2f}x the hand-written baseline (medians {median[name] * 1000:.0f} ms vs "
                    f"{median['baseline'] * 1000:.0f} ms on this machine; middle halves {spread[name]} "
                    f"and {spread['baseline']}; lower quartiles {quiet[name] / quiet['baseline']:.2f}x); "
                    "counting the interpreter's teardown too: "
                    f"{with_exit[name] / with_exit['baseline']:.2f}x ({with_exit[name] * 1000:.0f} ms vs "
                    f"{with_exit['baseline'] * 1000:.0f} ms)",
                    "≤ 1.15x (goal 1.05x)" if goal else "reported: the user's choice",
                    ratio <= goal if goal else None,
                )
            )
        return rows

    def product_import(self, sizes: Sizes) -> Row:
        """The product's own modules in ``python -X importtime -c "import app"``: the sum of their
        self times (each the least of ``import_runs`` fresh interpreters), with bytecode and without."""
        compile_product()
        compiled = _product_import_ms(sizes.import_runs)
        sources = _product_import_ms(sizes.import_runs, compiled=False)
        return Row(
            'the product\'s own import (`-X importtime -c "import app"`, tracing off, least of '
            f"{sizes.import_runs})",
            f"{compiled:.1f} ms with compiled bytecode (as deployed); {sources:.1f} ms compiling the "
            "sources (PYTHONDONTWRITEBYTECODE, no __pycache__)",
            "≤ 15 ms",
            compiled <= 15,
        )

    def run_handler(
        self, n: int, *, polyv_latency: float = 0.0, aws_latency: float = 0.0, files_per_invocation: int = 100
    ) -> Run:
        """``n`` files in SQS batches of 10 messages of 10 files through the handler, on the local
        stack, with the given latencies. The handler runs on this thread; moto, the AWS proxy and
        the Polyv simulator on threads of their own, so this thread's CPU time is the function's."""
        from polyv_prewarm.handler import lambda_handler

        self.use(limit=n)
        stack = self.stack
        assert stack.polyv is not None
        assert stack.aws_faults is not None
        vids = self.fresh_vids(n)
        batches = []
        if files_per_invocation == 3:  # one message of one video, all three bitrates
            vids = vids[: n // 3]
            batches = [{"Records": [_sqs_record(v, json.dumps({"vid": v}))]} for v in vids]
        for b in range(0, n if files_per_invocation == 100 else 0, 100):
            bodies = [
                json.dumps({"vids": vids[b + m : b + m + 10], "brIndexes": [1]}) for m in range(0, 100, 10)
            ]
            batches.append({"Records": [_sqs_record(f"b{b}-m{i}", body) for i, body in enumerate(bodies)]})
        current = runtime.current()
        today = quota_day(current.clock(), current.settings.timezone)
        current.book(), current.cases().queries.quota(today)  # a warm container: clients ready
        self.requests.clear()
        stack.polyv.latency, stack.aws_faults.latency = polyv_latency, aws_latency
        stack.aws_faults.upstream_seconds = 0.0
        calls_before = len(stack.polyv.tasks())
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            for event in batches:
                assert lambda_handler(event, LocalLambdaContext()) == {"batchItemFailures": []}
                metrics.clear_metrics()  # disabled here: Powertools would print them at 100 values
        finally:
            stack.polyv.latency = stack.aws_faults.latency = 0.0
        run = Run(
            files=n,
            wall=time.perf_counter() - wall,
            cpu=time.thread_time() - cpu,
            polyv_calls=len(stack.polyv.tasks()) - calls_before,
            dynamodb=sum(v for k, v in self.requests.items() if k != "GetSecretValue"),
            secrets=1,  # once a container (read before the run, as the warm-up above did)
            in_moto=stack.aws_faults.upstream_seconds,
            invocations=len(batches),
        )
        assert stack.polyv.used(stack.userid) == n
        return run

    def naive(self, n: int, *, polyv_latency: float = 0.0) -> tuple[float, float]:
        """(wall seconds, this thread's CPU seconds) of the naive client sending ``n`` files (its
        secret is given: it reads it once, as the model counts)."""
        assert self.stack.polyv is not None
        self.stack.polyv.daily_limit = 10**9
        self.stack.polyv.latency = polyv_latency
        files = [FileRef(v, 2) for v in self.fresh_vids(n)]
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            accepted = prewarm_one_by_one(
                self.stack.polyv.url, self.stack.userid, self.stack.secretkey, files
            )
        finally:
            self.stack.polyv.latency = 0.0
        assert accepted == n
        return time.perf_counter() - wall, time.thread_time() - cpu

    def modelled(self, sizes: Sizes) -> list[Row]:
        """The product's requests and CPU, counted and measured on loopback, through the latency
        model; the naive client (one call per file, no ledger) through the same model."""
        _, naive_cpu = self.naive(max(sizes.naive_sample * 5, 50))
        naive_cpu_per_call = naive_cpu / max(sizes.naive_sample * 5, 50)
        rows = []
        for n in sizes.model_files:
            run = self.run_handler(n)
            self.runs[n] = run
            product = run.modelled()
            naive = n * (naive_cpu_per_call + POLYV_RTT) + SECRETS_RTT
            ratio = naive / product
            rows.append(
                Row(
                    f"{n:,} files, modelled (the latency model below)",
                    f"{ratio:.0f}x the naive client ({product:.1f} s vs {naive:,.0f} s): "
                    f"{run.polyv_calls} Polyv calls vs {n:,}, {run.dynamodb} DynamoDB requests vs none, CPU "
                    f"{run.cpu / n * 1e6:.0f} µs a file in the function's process (naive "
                    f"{naive_cpu_per_call * 1e6:.0f} µs a call)",
                    "≥ 50x",
                    ratio >= 50,
                )
            )
        return rows

    def measured(self, sizes: Sizes) -> list[Row]:
        """The same runs for real: the simulator answers after POLYV_RTT, and a proxy in front of
        moto adds DYNAMODB_RTT to every AWS request; wall time measured, moto's own time apart."""
        naive_wall, _ = self.naive(sizes.naive_sample, polyv_latency=POLYV_RTT)
        naive_rate = sizes.naive_sample / naive_wall
        rows = []
        for n in sizes.model_files:
            run = self.run_handler(n, polyv_latency=POLYV_RTT, aws_latency=DYNAMODB_RTT)
            outside = run.wall - run.in_moto
            rows.append(
                Row(
                    f"{n:,} files, measured with the same latencies injected (the simulator; a proxy "
                    "in front of moto)",
                    f"{n / naive_rate / run.wall:.0f}x the naive client's rate (wall {run.wall:.1f} s vs "
                    f"{n / naive_rate:,.0f} s, the naive rate measured on {sizes.naive_sample} files), of "
                    f"which {run.in_moto:.1f} s inside moto; without moto's own time "
                    f"{n / naive_rate / outside:.0f}x ({outside:.1f} s)",
                    "≥ 50x without moto",
                    n / naive_rate / outside >= 50,
                )
            )
        return rows

    # -- cost -----------------------------------------------------------------------------------
    def write_units_per_100(self, limit: int, used_before: int) -> tuple[int, int]:
        """(write units, largest item in bytes) of 100 files claimed, sent and recorded on a day
        whose counter already stands at ``used_before``. Only the counter's value depends on how
        far the day has gone (every file has an item of its own), so setting it is the day."""
        self.use(limit=limit)
        current = runtime.current()
        service = current.cases().prewarm
        day = quota_day(current.clock(), current.settings.timezone)
        if used_before:
            self.stack.client("dynamodb").put_item(
                TableName=self.stack.tables["QuotaTable"],
                Item={**quota_key(day), "used": {"N": str(used_before)}},
            )
        self.writes.clear()
        report = service.prewarm([FileRequest(v, 1, Origin("bench")) for v in self.fresh_vids(100)])
        assert report.counts() == {"submitted": 100}, report.counts()
        direct = self.stack.client("dynamodb")
        units, largest = 0, 0
        for action in self.writes:
            ((kind, body),) = action.items()
            if kind == "Put":
                item = body["Item"]
            else:  # an update is billed for the larger of the item before and after: after, here
                key = body["Key"]
                item = direct.get_item(TableName=body["TableName"], Key=key).get("Item") or key
            units += write_units(item_size(item), transactional=True)
            largest = max(largest, item_size(item))
        return units, largest

    def cost(self, sizes: Sizes) -> list[str]:
        """Markdown lines: write units per 100 files through a day, GB-seconds, and a month."""
        lines = [
            "| per 100 files | start of the day | end of the day | largest item |",
            "| --- | --- | --- | --- |",
        ]
        units_at: dict[int, int] = {}
        for limit in (2_000, 20_000):
            start, big_start = self.write_units_per_100(limit, 0)
            end, big_end = self.write_units_per_100(limit, limit - 100)
            units_at[limit] = max(start, end)
            largest = max(big_start, big_end)
            lines.append(
                f"| DynamoDB write units, a {limit:,}-file day | {start} | {end} | {largest} bytes |"
            )
        full = self.runs[max(self.runs)] if self.runs else self.run_handler(max(sizes.model_files))
        single = self.run_handler(30, files_per_invocation=3)
        shapes = {"full batches (100 files an invocation)": full, "one video (3 files) an invocation": single}
        for shape, run in shapes.items():
            seconds = (run.modelled() - run.secrets * SECRETS_RTT) / run.invocations
            gb_s = seconds * run.invocations / run.files * 100 * cost.MEMORY_GB
            lines.append(
                f"| Lambda GB-seconds, {shape} (modelled {seconds * 1000:.0f} ms an invocation) | "
                f"{gb_s:.3f} | {gb_s:.3f} | |"
            )
        lines += [
            "",
            "| a month (30 days) | traffic shape | Lambda | DynamoDB | SQS | callbacks | Secrets Manager | "
            "observability | total |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for per_day in (2_000, 20_000):
            for shape, run in shapes.items():
                seconds = (run.modelled() - run.secrets * SECRETS_RTT) / run.invocations
                month = cost.Traffic(
                    files_per_day=per_day,
                    files_per_invocation=run.files // run.invocations,
                    seconds_per_invocation=seconds,
                    write_units_per_100_files=units_at[2_000 if per_day <= 2_000 else 20_000],
                ).monthly()
                cells = " | ".join(f"${v:,.2f}" for v in month.values())
                lines.append(
                    f"| {per_day:,} files a day | {shape} | {cells} | **${sum(month.values()):,.2f}** |"
                )
        return lines

    def pure_cpu(self, sizes: Sizes) -> Row:
        """The least of three runs. The objects this benchmark process already holds (moto's tables
        among them) are frozen first, or every garbage collection would walk them too."""
        n = sizes.pure_files
        bodies = [
            json.dumps({"vids": [vid(m * 100 + i) for i in range(100)], "brIndexes": [1]})
            for m in range(n // 100)
        ]
        options = ParseOptions()
        gc.collect()
        gc.freeze()
        runs = []
        try:
            for _ in range(3):
                settings = Settings.from_env(
                    {
                        "POLYV_SECRET_ID": "bench",
                        "QUOTA_TABLE": "bench",
                        "DAILY_FILE_LIMIT": str(n),
                        "MANUAL_RESERVE": "0",
                    }
                )
                service = runtime.use_cases(
                    settings,
                    polyv=_SigningFakePolyv(),
                    ledger=InMemoryLedger(),
                    backlog=InMemoryBacklog(),
                    marks=InMemoryMarks(),
                    breaker=InMemoryBreaker(),
                    clock=lambda: datetime.now(UTC),
                    backoff=lambda _: 0.0,
                    sleep=lambda _: None,
                ).prewarm
                started = time.process_time()
                requests: list[FileRequest] = []
                for m, body in enumerate(bodies):
                    requests += parse_body(body, Origin("sqs", message_id=f"m{m}"), options).requests
                report = service.prewarm(requests)
                runs.append((time.process_time() - started) / n * 1e6)
                assert report.counts() == {"submitted": n}
        finally:
            gc.unfreeze()
        per_file_us = min(runs)
        return Row(
            f"CPU per file, parse → validate → dedup → plan → sign, in-memory fakes, {n:,} files "
            "(least of 3)",
            f"{per_file_us:.1f} µs (the three runs: {', '.join(f'{r:.1f}' for r in runs)})",
            "≤ 20 µs",
            per_file_us <= 20,
        )

    def memory(self, sizes: Sizes) -> Row:
        n = sizes.memory_files
        self.use(limit=2000)
        results: dict[str, float] = {}
        for mode in ("rss", "trace"):  # separate runs: tracing allocations inflates the RSS
            vids = self.fresh_vids(n)
            bodies = [
                json.dumps({"vids": vids[i : i + n // 10], "brIndexes": [1]}) for i in range(0, n, n // 10)
            ]
            event = {"Records": [_sqs_record(f"{mode}{i}", body) for i, body in enumerate(bodies)]}
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(event, f)
            out = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "memory_probe.py"), f.name, mode],
                env=self.child_env(),
                check=True,
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout
            Path(f.name).unlink()
            results.update(json.loads(out.strip().splitlines()[-1]))
            self.stack.reset(daily_limit=2000)  # the second run gets the same quota day afresh
        invocation = results["peak_rss_mb"] - results["imported_mb"]
        imports = results["imported_mb"] - results["bare_mb"]
        return Row(
            f"peak memory of one invocation carrying {n:,} files (up to 2,000 submitted, the rest deferred)",
            f"{invocation:.0f} MB of RSS above the process before the invocation "
            f"({results['invocation_peak_mb']:.1f} MB of Python allocations by tracemalloc); "
            f"the imports add {imports:.0f} MB to the bare interpreter",
            "≤ 64 MB",
            invocation <= 64,
        )

    @staticmethod
    def sizes() -> Row:
        code = _zip_size(ROOT / "functions" / "prewarm")
        built = ROOT / ".aws-sam" / "build"
        if (built / "DependenciesLayer").exists():
            shipped = (
                f"as `make sam-build` ships them, with bytecode: function "
                f"{_zip_size(built / 'PrewarmFunction', bytecode=True) / 1024:.0f} KB, layer "
                f"{_zip_size(built / 'DependenciesLayer', bytecode=True) / 2**20:.1f} MB zipped"
            )
        else:
            shipped = "the built artifacts: run `make sam-build` first"
        return Row(
            "deployment package sizes",
            f"function code {code / 1024:.0f} KB zipped (sources); {shipped}",
            "function code ≤ 100 KB",
            code <= 100 * 1024,
        )


class _SigningFakePolyv(FakePolyv):
    """The in-memory Polyv, signing each call as the real client does (signing is in the path)."""

    def push(self, files: Any) -> str:
        signed_form(userid=USERID, secretkey="bench-secret", files=files, ptime_ms=1764201600000)
        return super().push(files)


def _sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": message_id,
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1",
    }


def _zip_size(folder: Path, *, bytecode: bool = False) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and (bytecode or "__pycache__" not in path.parts):
                archive.write(path, path.relative_to(folder))
    return buffer.tell()


def _middle_half_ms(runs: list[float]) -> str:
    """The interquartile range of ``runs``, in ms: how far one run may say otherwise."""
    low, _, high = statistics.quantiles(runs, n=4)
    return f"{low * 1000:.0f} to {high * 1000:.0f} ms"


def compile_product() -> None:
    """Bytecode for the function's code, as ``make sam-build`` ships it (this machine sets
    PYTHONDONTWRITEBYTECODE, so imports would otherwise compile the sources every time)."""
    import compileall

    compileall.compile_dir(ROOT / "functions" / "prewarm", quiet=1)


def _product_import_ms(runs: int, *, compiled: bool = True) -> float:
    """Sum over the product's modules of their least self time in ``-X importtime``."""
    with tempfile.TemporaryDirectory() as scratch:
        where = ROOT / "functions" / "prewarm"
        if not compiled:  # a copy without __pycache__: every product module compiles its source
            where = Path(
                shutil.copytree(
                    where, Path(scratch) / "prewarm", ignore=shutil.ignore_patterns("__pycache__")
                )
            )
        return _least_import_ms(where, runs)


def _least_import_ms(where: Path, runs: int) -> float:
    least: dict[str, int] = {}
    for _ in range(runs):
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import app"],
            cwd=where,
            env={**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for line in stderr.splitlines():
            fields = line.removeprefix("import time:").split("|")
            name = fields[-1].strip() if len(fields) == 3 else ""
            if name == "app" or name.startswith("polyv_prewarm"):
                least[name] = min(least.get(name, 10**9), int(fields[0]))
    return sum(least.values()) / 1000


def _traced_env() -> dict[str, str]:
    """A child's environment as Lambda's with tracing Active: the X-Ray SDK in its Lambda mode,
    segments sent to a daemon address on loopback (nothing listens; UDP does not care)."""
    return {
        **Bench.child_env(),
        "POWERTOOLS_TRACE_DISABLED": "false",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "prewarm"),
        "_X_AMZN_TRACE_ID": "Root=1-6747a000-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (CI proves the benchmark still works)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    stack = DevStack().start()
    try:
        bench = Bench(stack)
        steps: list[Callable[[], Row | list[Row]]] = [
            lambda: bench.calls_for_n(sizes),
            bench.dynamodb_requests,
            lambda: bench.product_import(sizes),
            lambda: bench.cold_start(sizes),
            lambda: bench.modelled(sizes),
            lambda: bench.measured(sizes),
            lambda: bench.pure_cpu(sizes),
            lambda: bench.memory(sizes),
            bench.sizes,
        ]
        rows: list[Row] = []
        for step in steps:
            done = step()
            for row in done if isinstance(done, list) else [done]:
                print(f"  {row.figure}: {row.measured}", file=sys.stderr)
                rows.append(row)
        cost_lines = bench.cost(sizes)
    finally:
        stack.stop()
    table = ["| figure | measured | goal | verdict |", "| --- | --- | --- | --- |"]
    table += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    header = (
        f"# Benchmark results{' (quick sizes)' if args.quick else ''}\n\n"
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.system()}). Ratios and counts were measured side "
        "by side in this run; absolute times are medians on this machine only.\n\n"
    )
    model = (
        f"\n\nThe latency model: Polyv {POLYV_RTT * 1000:.0f} ms a call (assumed: a round trip from an AWS "
        f"region near Polyv), DynamoDB {DYNAMODB_RTT * 1000:.0f} ms a request, Secrets Manager "
        f"{SECRETS_RTT * 1000:.0f} ms once a container; CPU is the function's thread's, measured.\n\n"
        "## What it costs\n\nWrite units from the sizes DynamoDB bills for the items the function wrote "
        "(2 units a KB in a transaction); GB-seconds at 256 MB from the latency model; a month at us-east-1 "
        "list prices (bench/cost.py; they change).\n\n"
    )
    text = header + "\n".join(table) + model + "\n".join(cost_lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
