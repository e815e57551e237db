"""``polyv-prewarm``: the operator's command line, on the function's own code.

Every subcommand goes through the same use cases (or, for ``invoke``, the same Lambda handler) as
the deployed function, against real AWS (standard profile/region settings) or the local stack
(standard endpoint settings, e.g. ``AWS_ENDPOINT_URL``). With ``--stack`` it takes its settings
from the deployed function, so that it claims, drains and expires with what production runs.

Exit codes (EXIT_CODES): 0 done; 1 files handed back for a retry; 2 configuration or usage, a
person must fix it; 3 a service unavailable, a retry later may work; 4 files rejected; 70 a bug.
Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from . import SERVICE, deployment, handler, runtime
from .adapters.aws_errors import misconfigured
from .config import ConfigurationError
from .domain.catalogue import REFUSED_SHOWN
from .domain.model import Fate, Origin, QuotaSummary, VideoStatus
from .domain.plan import VID_RE
from .domain.ports import CredentialsError, PolyvConfigurationError, PolyvError, StoreUnavailable
from .events import InvalidEvent, UnsupportedEvent, file_requests
from .handler import FilesHandedBack
from .lambda_context import LocalLambdaContext

EXIT_OK, EXIT_NOT_DONE, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_REJECTED, EXIT_BUG = 0, 1, 2, 3, 4, 70
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_NOT_DONE: "files were handed back for a retry (run it again later, or let the queue retry)",
    EXIT_USAGE: "bad usage or configuration (a table, a secret, a permission, a flag): fix what it says",
    EXIT_UNAVAILABLE: "AWS or Polyv unavailable: a retry later may work",
    EXIT_REJECTED: "some files were rejected (an invalid or foreign vid, a bitrate Polyv does not have)",
    EXIT_BUG: "an unexpected error: please report it (-v shows the traceback)",
}

ENVIRONMENT_OPTIONS = {
    # option -> the environment variable it sets (the function's own configuration)
    "secret_id": "POLYV_SECRET_ID",
    "table": "QUOTA_TABLE",
    "api_url": "POLYV_API_URL",
    "daily_limit": "DAILY_FILE_LIMIT",
    "manual_reserve": "MANUAL_RESERVE",
    "drain_order": "DRAIN_ORDER",
    "backlog_max_age_days": "BACKLOG_MAX_AGE_DAYS",
    "priority_br_indexes": "PRIORITY_BR_INDEXES",
    "timezone": "QUOTA_TIMEZONE",
}
AWS_OPTIONS = {"profile": "AWS_PROFILE", "region": "AWS_REGION"}

EPILOG = (
    """\
settings: with --stack NAME, every setting is the deployed function's (its environment, read
with GetFunctionConfiguration) and the table is the stack's; a flag that contradicts the
deployment is refused. Without --stack, each option falls back to the function's environment
variable (POLYV_SECRET_ID, QUOTA_TABLE, DAILY_FILE_LIMIT, ...), then to the code's default, and
AWS's standard settings apply (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL for the local stack);
with neither --stack nor a table, ./samconfig.toml's stack is used. Options go before or after
the command.

exit codes:
"""
    + "\n".join(f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES.items())
    + """

examples:
  polyv-prewarm --stack polyv-prewarm quota
  polyv-prewarm quota --day 2026-11-27 --json
  polyv-prewarm submit e6b23c6f513fbe025b94efdd10d7ab47_e --br 1,2 --dry-run
  polyv-prewarm invoke events/sqs-pipeline-messages.json
  polyv-prewarm status e6b23c6f513fbe025b94efdd10d7ab47_e
  polyv-prewarm backlog --limit 20
  polyv-prewarm drain
  polyv-prewarm backfill catalogue.csv --dry-run
  polyv-prewarm callback-url --stack polyv-prewarm
"""
)


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _global_options(parser: argparse.ArgumentParser, *, after_the_command: bool) -> None:
    """The options every command takes, before it (the main parser) or after it (each command's,
    whose unset options leave the main parser's values alone)."""
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after_the_command else {}
    flag: dict[str, Any] = {"default": argparse.SUPPRESS} if after_the_command else {"default": False}
    parser.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of tables", **flag
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print the function's log lines", **flag
    )
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help="the deployed CloudFormation stack: its table and its function's settings",
        **unset,
    )
    parser.add_argument(
        "--secret-id", help="Secrets Manager secret with userid and secretkey (POLYV_SECRET_ID)", **unset
    )
    parser.add_argument("--table", help="the DynamoDB table of the deployed stack (QUOTA_TABLE)", **unset)
    parser.add_argument("--api-url", help="Polyv refresh-cdn-cache endpoint (POLYV_API_URL)", **unset)
    parser.add_argument("--daily-limit", type=int, help="files per quota day (DAILY_FILE_LIMIT)", **unset)
    parser.add_argument(
        "--manual-reserve", type=int, help="files only priority requests may use (MANUAL_RESERVE)", **unset
    )
    parser.add_argument(
        "--drain-order", choices=("newest", "oldest"), help="the drains' order (DRAIN_ORDER)", **unset
    )
    parser.add_argument(
        "--backlog-max-age-days", type=int, help="deferred files expire after (BACKLOG_MAX_AGE_DAYS)", **unset
    )
    parser.add_argument(
        "--priority-br-indexes", metavar="2", help="first-rank definitions (PRIORITY_BR_INDEXES)", **unset
    )
    parser.add_argument("--timezone", help="zone in which the quota day resets (QUOTA_TIMEZONE)", **unset)
    parser.add_argument("--profile", help="AWS profile (AWS_PROFILE)", **unset)
    parser.add_argument("--region", help="AWS region (AWS_REGION)", **unset)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line in one declaration (long, but without a branch): read top to bottom
    it is the command's help, which a split into one function per subcommand would scatter."""
    parser = argparse.ArgumentParser(
        prog="polyv-prewarm",
        description="Prewarm Polyv VOD CDN caches and inspect the daily quota, the ledger of file fates "
        "and the deferred backlog, with the deployed function's own code.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, after_the_command=False)
    after = argparse.ArgumentParser(add_help=False)
    _global_options(after, after_the_command=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(commands.add_parser, parents=[after])

    submit = add(
        "submit", help="prewarm videos by hand", description="Prewarm the given videos' zip files now."
    )
    submit.add_argument("vids", nargs="+", metavar="VID", help="Polyv video ids")
    submit.add_argument(
        "--br",
        default=None,
        metavar="1,2,3",
        help="bitrate indexes: 1 流畅, 2 高清, 3 超清 (default: DEFAULT_BR_INDEXES)",
    )
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="show the planned calls (files per call) without sending or spending quota",
    )
    submit.add_argument("--force", action="store_true", help="send again files already submitted today")
    submit.add_argument(
        "--priority",
        choices=("normal", "high"),
        default="normal",
        help="high: may use the MANUAL_RESERVE of today's quota, which automatic traffic leaves alone",
    )

    invoke = add(
        "invoke",
        help="run the Lambda handler locally with an event file",
        description="Run the function's handler in this process with an event (what `sam local invoke -e` "
        "would do, without Docker) and print its answer: the summary or the batch response.",
    )
    invoke.add_argument("event", type=Path, metavar="EVENT.json", help="an event, e.g. a file from events/")

    quota = add(
        "quota",
        help="the day's quota: used, remaining, backlog",
        description="Files counted against a quota day, and the deferred backlog.",
    )
    quota.add_argument("--day", metavar="YYYY-MM-DD", help="quota day (default: today in QUOTA_TIMEZONE)")

    status = add(
        "status",
        help="a video's file fates",
        description="What happened to each bitrate of a video, per retained day.",
    )
    status.add_argument("vid", metavar="VID")

    backlog = add(
        "backlog",
        help="the deferred files, oldest first",
        description="Files waiting for a later quota day, oldest first.",
    )
    backlog.add_argument("--limit", type=int, default=50, help="how many to list (default 50)")

    add(
        "callback-url",
        help="the deployed callback endpoint, to paste into Polyv's console",
        description="Print the URL of the deployed stack's callback endpoint (its PolyvCallbackUrl "
        "output): paste it into Polyv's console, 设置 > 回调设置. The stack: --stack, else stack_name "
        "in ./samconfig.toml, else polyv-prewarm.",
    )

    drain = add(
        "drain",
        help="submit deferred files now, as today's quota allows",
        description="Do what the daily schedule does: expire files older than BACKLOG_MAX_AGE_DAYS, "
        "then submit deferred files in DRAIN_ORDER, as many as today's quota allows, with a progress bar.",
    )
    drain.add_argument(
        "--sweep",
        action="store_true",
        help="do what the late sweeps do: every tier (held-back definitions, backfill, files in doubt), "
        "the reserve included once RESERVE_RELEASE_AT has passed",
    )

    backfill = add(
        "backfill",
        help="warm an existing catalogue over the next days, from what fresh traffic leaves",
        description="Put a catalogue's files in the backlog's lowest tier: only the late sweeps spend "
        "it, after every fresh file and beyond what the rest of the day's fresh traffic is expected to "
        "need; it expires after BACKFILL_MAX_AGE_DAYS. FILE: one vid per line, or CSV vid,brIndex "
        "(a vid alone: DEFAULT_BR_INDEXES); '-' reads standard input. Running it twice stores nothing twice.",
    )
    backfill.add_argument("file", metavar="FILE", help="the catalogue, or - for standard input")
    backfill.add_argument(
        "--dry-run",
        action="store_true",
        help="read and check it, say how many files and how many quota days at today's rate; store nothing",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for option, variable in AWS_OPTIONS.items():
        if getattr(args, option) is not None:
            os.environ[variable] = str(getattr(args, option))
    # Outside Lambda: no EMF metrics on stdout, no X-Ray, and logs only when asked for.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    try:
        _configure(args)
        return _run(args)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_NOT_DONE)
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        if args.verbose:
            traceback.print_exc()
        return _fail(f"unexpected {type(exc).__name__}: {plain(exc)} (a bug: please report it)", EXIT_BUG)


def _fail(message: str, code: int) -> int:
    print(f"polyv-prewarm: error: {message}", file=sys.stderr)
    return code


def _warn(message: str) -> None:
    print(f"polyv-prewarm: warning: {message}", file=sys.stderr)


def _flags(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as options, as their environment variables."""
    return {
        variable: str(getattr(args, option))
        for option, variable in ENVIRONMENT_OPTIONS.items()
        if getattr(args, option) is not None
    }


def _configure(args: argparse.Namespace) -> None:
    """The environment the use cases are built from: the deployed stack's, or the options' over
    the shell's. With neither --stack nor a table anywhere, samconfig.toml's stack."""
    flags = _flags(args)
    stack = args.stack
    unset = "QUOTA_TABLE" not in {**os.environ, **flags}
    if stack is None and args.command != "callback-url" and unset and Path("samconfig.toml").is_file():
        stack = deployment.default_stack_name()
    if stack is not None and args.command != "callback-url":
        _apply_deployment(stack, flags)
    else:
        os.environ.update(flags)


def _apply_deployment(stack: str, flags: dict[str, str]) -> None:
    """Read the stack, refuse a flag that contradicts it, and put its settings in the environment
    (a shell's variable that differs is replaced, loudly; one it does not set is dropped)."""
    try:
        deployed = deployment.read_deployment(stack, boto3.client("cloudformation"), boto3.client("lambda"))
    except deployment.DeploymentUnavailable as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    except (deployment.DeploymentError, BotoCoreError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    settings = deployed.settings
    for variable, value in flags.items():
        if variable in settings and not _same(settings[variable], value):
            option = next(f"--{o.replace('_', '-')}" for o, v in ENVIRONMENT_OPTIONS.items() if v == variable)
            raise CliError(
                f"{option} {value} contradicts stack {stack!r}, whose function runs with "
                f"{variable}={settings[variable]!r}: drop the option (or --stack to act on other settings)",
                EXIT_USAGE,
            )
    for variable in sorted(deployment.SETTINGS_VARIABLES):
        shell = os.environ.get(variable)
        if variable in settings:
            if shell is not None and not _same(shell, settings[variable]) and variable not in flags:
                _warn(f"{variable} of the environment ignored: {stack!r} runs with {settings[variable]!r}")
            os.environ[variable] = settings[variable]
        elif variable in flags:
            os.environ[variable] = flags[variable]  # a setting the stack leaves to the code's default
        elif shell is not None:
            _warn(f"{variable} from the environment ignored: stack {stack!r} does not set it")
            del os.environ[variable]


def _same(a: str, b: str) -> bool:
    """Two spellings of one setting's value (``2000`` and ``2000.0``, ``2, 3`` and ``2,3``)."""

    def norm(value: str) -> str:
        parts = [p.strip() for p in value.split(",")]
        try:
            return ",".join(str(float(p)) for p in parts)
        except ValueError:
            return ",".join(parts)

    return norm(a) == norm(b)


def _run(args: argparse.Namespace) -> int:
    # The function's JSON log lines go to stderr, so stdout holds only the command's answer.
    service_logger = logging.getLogger(SERVICE)  # Powertools names its logger after the service
    streams = [h for h in service_logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [(h.stream, h.level) for h in streams]
    for log_handler in streams:
        log_handler.stream = sys.stderr  # not setStream(): it flushes the old stream, maybe closed
        # on the handler, not the logger: the modules' child loggers propagate their records here
        log_handler.setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    try:
        return COMMANDS[args.command](args)
    except (ConfigurationError, UnsupportedEvent, PolyvConfigurationError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except (StoreUnavailable, CredentialsError) as exc:
        raise CliError(_reason(exc), EXIT_USAGE if exc.misconfigured else EXIT_UNAVAILABLE) from None
    except (PolyvError, BotoCoreError, ClientError) as exc:
        code = EXIT_USAGE if misconfigured(exc) else EXIT_UNAVAILABLE
        raise CliError(f"{type(exc).__name__}: {exc}", code) from None
    finally:
        for log_handler, (stream, level) in zip(streams, previous, strict=True):
            log_handler.stream = stream
            log_handler.setLevel(level)


#: What to fix, for the configuration errors a person meets first.
_FIXES = {
    "ResourceNotFoundException": "no such table or secret: check --table/QUOTA_TABLE and "
    "--secret-id/POLYV_SECRET_ID, or use --stack",
    "AccessDeniedException": "access denied: your AWS identity needs the stack's table and secret "
    "(--profile, --region)",
}


def _reason(exc: StoreUnavailable | CredentialsError) -> str:
    """The error's line, with what to fix when it is a configuration a person meets often."""
    message = f"{type(exc).__name__}: {exc}"
    if exc.misconfigured:
        fix = next((f for code, f in _FIXES.items() if code in str(exc)), None)
        if fix:
            message += f" ({fix})"
    return message


def _preflight(current: runtime.Runtime) -> QuotaSummary:
    """Before a command that sends: the table and the secret can be read, so that a wrong name,
    a missing permission or a malformed secret stops it with exit 2 rather than handing every
    file back. Two reads (an outage of either is exit 3); the day's quota, as read."""
    quota = current.cases.queries.quota()
    current.userid()
    return quota


def _outcome(report: Any) -> int:
    """A report's exit code: a configuration error that stopped the calls (the secretkey Polyv
    refuses) before files handed back, before files rejected."""
    stopped = report.stopped_because or ""
    if stopped.startswith("configuration error"):
        raise CliError(
            f"{stopped} (update the secret's secretkey, or POLYV_SECRET_ID; nothing more was sent)",
            EXIT_USAGE,
        )
    if any(r.fate.needs_retry for r in report.results):
        return EXIT_NOT_DONE
    if any(r.fate is Fate.REJECTED for r in report.results):
        return EXIT_REJECTED
    return EXIT_OK


def _console() -> Any:
    """A console that reads no markup: ``[bold]`` in an S3 key or a Polyv message is text."""
    return Console(markup=False, highlight=False, emoji=False)


def plain(value: object, limit: int = 300) -> str:
    """Untrusted text (a vid, an S3 key, a Polyv message) for the terminal: cut to ``limit``,
    every control or invisible character shown as its escape (``\\x1b``), so that nothing a
    producer or Polyv sent can move the cursor, retitle the window or hide itself."""
    text = (value if isinstance(value, str) else str(value))[:limit]
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _row(table: Any, *cells: object) -> None:
    table.add_row(*(plain(cell) for cell in cells))


def _say(console: Any, line: str) -> None:
    console.print(plain(line, limit=2000))


#: Characters json.dumps(ensure_ascii=False) leaves raw that a terminal may act on (C1 controls,
#: DEL, line and paragraph separators, bidirectional overrides).
_JSON_UNSAFE = re.compile("[\\x7f-\\x9f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]")


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON for scripts: readable non-ASCII text, every control character escaped."""
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _emit(args: argparse.Namespace, data: Any, render: Any) -> None:
    """Print ``data`` as JSON (its ``to_summary()`` if it has one) or as ``render`` draws it."""
    if args.json:
        summary = data.to_summary() if hasattr(data, "to_summary") else data
        print(to_json(summary))
    else:
        render(_console(), data)


# -- submit ---------------------------------------------------------------------------------------
def cmd_submit(args: argparse.Namespace) -> int:
    current = runtime.current()
    _preflight(current)
    named = None if args.br is None else args.br.split(",")
    options = current.settings.parse_options
    requests = [r for vid in args.vids for r in file_requests(vid, named, Origin("cli"), options)]
    report = current.cases.prewarm.prewarm(
        requests,
        dry_run=args.dry_run,
        force=args.force,
        deadline=current.deadline(CLI_TIMEOUT_MS),
        priority_high=args.priority == "high",
    )
    summary = report.to_summary()
    _emit(args, summary, _render_report)
    return _outcome(report)


def _render_report(console: Any, summary: dict[str, Any]) -> None:
    table = Table(title="dry run: planned calls" if summary["dryRun"] else "files")
    for column in ("vid", "brIndex", "fate", "call", "taskId / reason"):
        table.add_column(column)
    for f in summary["files"]:
        _row(
            table,
            str(f["vid"]),
            str(f["brIndex"]),
            f["fate"],
            str(f.get("call", "")),
            f.get("taskId") or f.get("reason", ""),
        )
    console.print(table)
    if summary["dryRun"]:
        calls: dict[int, int] = {}
        for f in summary["files"]:
            if f.get("call"):
                calls[f["call"]] = calls.get(f["call"], 0) + 1
        plan = ", ".join(f"call {n}: {count} files" for n, count in sorted(calls.items())) or "no call"
        _say(console, f"would make {len(calls)} call(s) — {plan}")
    else:
        _say(
            console,
            f"{len(summary['calls'])} Polyv call(s); "
            + ", ".join(f"{n} {fate}" for fate, n in summary["counts"].items()),
        )
    if "quota" in summary:
        q = summary["quota"]
        _say(console, f"quota {q['day']}: {q['used']} of {q['limit']} used, {q['remaining']} remaining")


#: A command's deadline, as Lambda gives one to an invocation: its claims are leased until then
#: (plus a grace), so a command killed half way leaves claims that end, like a timed-out Lambda's.
CLI_TIMEOUT_MS = 900_000


# -- invoke ---------------------------------------------------------------------------------------
def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {args.event}: {exc.strerror}", EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(f"{args.event} is not JSON: {exc}", EXIT_USAGE) from None
    try:
        answer = handler.lambda_handler(event, LocalLambdaContext())
    except InvalidEvent as exc:
        raise CliError(f"InvalidEvent: {exc}", EXIT_USAGE) from None
    except FilesHandedBack as exc:
        raise CliError(f"FilesHandedBack: {exc} (Lambda would retry this event)", EXIT_NOT_DONE) from None
    print(to_json(answer, indent=None if args.json else 2))
    return EXIT_NOT_DONE if answer.get("batchItemFailures") else EXIT_OK


# -- quota, status, backlog -------------------------------------------------------------------------
def cmd_quota(args: argparse.Namespace) -> int:
    if args.day is not None:
        try:
            date.fromisoformat(args.day)
        except ValueError:
            raise CliError(f"--day must be YYYY-MM-DD, got {args.day!r}", EXIT_USAGE) from None
    _emit(args, runtime.current().cases.queries.quota(args.day), _render_quota)
    return EXIT_OK


def _render_quota(console: Any, summary: QuotaSummary) -> None:
    q, backlog = summary.quota, summary.backlog
    table = Table(title=f"quota day {q.day}", show_header=False)
    _row(table, "used", f"{q.used} of {q.limit}")
    if q.confirmed is not None:
        _row(table, "confirmed by Polyv", f"{q.confirmed} ({q.in_doubt} held by calls in doubt)")
    _row(table, "remaining", str(q.remaining) + (" (Polyv says the day is spent)" if q.exhausted else ""))
    if q.reserve:
        _row(table, "manual reserve", f"{q.reserve} files")
    if summary.sweep is not None:
        sweep = summary.sweep
        when = "released" if sweep.released else "released at"
        _row(table, f"reserve {when}", sweep.reserve_released_at)
        _row(table, "the late sweeps will spend", f"{min(sweep.units, sweep.files)} files")
    _row(table, "deferred backlog", f"{backlog.files} files")
    for tier, files in backlog.tiers.items():
        _row(table, f"  {tier.value}", f"{files} files")
    _row(table, "waiting for the recovery drain", f"{backlog.waiting} files (an outage, or a deadline)")
    _row(table, "oldest deferral", str(backlog.oldest_deferred_at or "—"))
    if summary.polyv is not None:
        polyv = "available" if not summary.polyv.open else f"down since {summary.polyv.down_since}"
        _row(table, "Polyv", polyv)
    console.print(table)


def cmd_status(args: argparse.Namespace) -> int:
    if not VID_RE.fullmatch(args.vid):
        raise CliError(f"{args.vid!r} is not a Polyv vid (32 chars [0-9a-z], '_', 1 char)", EXIT_USAGE)
    _emit(args, runtime.current().cases.queries.status(args.vid), _render_status)
    return EXIT_OK


def _render_status(console: Any, status: VideoStatus) -> None:
    table = Table(title=f"video {status.vid}")
    for column in ("day", "brIndex", "state", "at", "taskId / reason", "origin", "lease / failures"):
        table.add_column(column)
    for day, by_br in status.to_summary()["days"].items():
        for br, e in by_br.items():
            _row(
                table,
                day,
                br,
                e["state"],
                e["at"],
                e.get("taskId") or e.get("reason", ""),
                e.get("origin", ""),
                e.get("leaseUntil", ""),
            )
    for br, d in sorted(status.deferred.items()):
        state = "parked" if d.parked else "deferred"
        failures = f"{d.failures} drains failed" if d.failures else ""
        _row(table, "(backlog)", str(br), state, d.deferred_at, d.last_error or "", d.origin, failures)
    if table.row_count:
        console.print(table)
    else:
        _say(console, f"nothing known of {status.vid} in the retained days")


def cmd_backlog(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    queries = runtime.current().cases.queries
    files = [
        {"vid": d.file.vid, "brIndex": d.file.br_index, **d.to_summary()}
        for d in queries.deferred(args.limit)
    ]
    figures = queries.backlog_figures()
    tiers = {tier.value: n for tier, n in figures.tiers.items()}
    _emit(args, {"files": figures.files, "tiers": tiers, "oldest": files}, _render_backlog)
    return EXIT_OK


def _render_backlog(console: Any, data: dict[str, Any]) -> None:
    by_tier = ", ".join(f"{n} {tier}" for tier, n in data["tiers"].items())
    table = Table(
        title=f"deferred backlog: {data['files']} files ({by_tier}); by tier in the drains' order, oldest "
        "first, then those waiting out an outage, then the parked ones"
    )
    for column in ("vid", "brIndex", "tier", "deferredAt", "origin", "state"):
        table.add_column(column)
    for f in data["oldest"]:
        if f.get("parked"):
            state = "parked: " + str(f.get("lastError"))
        elif f.get("retryAt"):
            state = f"waiting until {f['retryAt']}: {f.get('waitReason', '')}"
        else:
            state = "forced" if f.get("force") else ""
        _row(table, f["vid"], str(f["brIndex"]), f.get("tier", "normal"), f["deferredAt"], f["origin"], state)
    console.print(table)


# -- drain ----------------------------------------------------------------------------------------
def cmd_drain(args: argparse.Namespace) -> int:
    current = runtime.current()
    before = _preflight(current)
    expected = min(before.backlog.files, before.quota.remaining)
    with Progress(transient=True, disable=args.json or expected == 0, console=_console()) as progress:
        task = progress.add_task("draining the backlog", total=expected)

        def advance(report: Any) -> None:
            done = sum(1 for r in report.results if r.fate in (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE))
            progress.update(task, completed=done)

        report = current.cases.drain.run(
            sweep=args.sweep, on_slice=advance, deadline=current.deadline(CLI_TIMEOUT_MS)
        )
    _emit(args, report.to_summary(), _render_drain)
    return _outcome(report)


def _render_drain(console: Any, summary: dict[str, Any]) -> None:
    counts = ", ".join(f"{n} {fate}" for fate, n in summary["counts"].items()) or "nothing to drain"
    _say(console, f"drain: {counts}; {len(summary['calls'])} Polyv call(s)")
    if summary.get("stoppedBecause"):
        _say(console, f"stopped: {summary['stoppedBecause']}")
    if "backlog" in summary:
        _say(console, f"backlog now: {summary['backlog']['files']} files")


# -- backfill -------------------------------------------------------------------------------------
def cmd_backfill(args: argparse.Namespace) -> int:
    current = runtime.current()
    _preflight(current)
    backfill = current.cases.backfill
    if args.file == "-":
        report = backfill.run(sys.stdin, source="stdin", dry_run=args.dry_run)
    else:
        path = Path(args.file)
        try:
            with path.open(encoding="utf-8", newline="") as lines:
                report = backfill.run(lines, source=path.name, dry_run=args.dry_run)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {args.file!r}: {type(exc).__name__}", EXIT_USAGE) from None
    _emit(args, report, _render_backfill)
    if report.catalogue.refused:  # the report lists each refused line; nothing refused is stored
        return EXIT_USAGE if not report.catalogue.files else EXIT_REJECTED
    return EXIT_OK


def _render_backfill(console: Any, report: Any) -> None:
    catalogue = report.catalogue
    _say(
        console,
        f"{catalogue.lines} lines: {len(catalogue.files)} files of this account"
        + (f" ({catalogue.repeated} named more than once)" if catalogue.repeated else "")
        + (f", {len(catalogue.refused)} lines refused" if catalogue.refused else ""),
    )
    for refused in catalogue.refused[:REFUSED_SHOWN]:
        _say(console, f"  line {refused.line}: {refused.reason}: {refused.text}")
    if len(catalogue.refused) > REFUSED_SHOWN:
        _say(console, f"  ... and {len(catalogue.refused) - REFUSED_SHOWN} more")
    days = report.days
    pace = (
        f"about {days} quota day(s) at today's rate ({report.spare_per_day} spare units a day)"
        if days is not None
        else "no end at today's rate: fresh traffic takes every unit of the day"
    )
    if report.dry_run:
        _say(console, f"dry run: nothing stored; it would take {pace}")
    else:
        _say(
            console,
            f"stored {report.stored} new in the backlog's backfill tier "
            f"({len(catalogue.files) - report.stored} were there already); {pace}",
        )


# -- callback-url ---------------------------------------------------------------------------------
def cmd_callback_url(args: argparse.Namespace) -> int:
    stack = args.stack or deployment.default_stack_name()
    try:
        outputs = deployment.stack_outputs(stack, boto3.client("cloudformation"))
    except deployment.DeploymentUnavailable as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    url = outputs.get("PolyvCallbackUrl")
    if url is None:
        raise CliError(
            f"stack {stack!r} has no callback endpoint (deployed with PolyvCallback=Disabled?)", EXIT_USAGE
        )
    _emit(
        args, {"stack": stack, "callbackUrl": url}, lambda console, data: _say(console, data["callbackUrl"])
    )
    return EXIT_OK


COMMANDS = {
    "callback-url": cmd_callback_url,
    "submit": cmd_submit,
    "invoke": cmd_invoke,
    "quota": cmd_quota,
    "status": cmd_status,
    "backlog": cmd_backlog,
    "drain": cmd_drain,
    "backfill": cmd_backfill,
}


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
