"""The commands: each reads its arguments, calls the function's use cases (or, for ``invoke``,
its Lambda handler) and prints a typed result (``render``) or its JSON (``summaries``)."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import boto3
from rich.progress import Progress

from .. import deployment, handler, runtime
from ..domain.accounts import no_account
from ..domain.claims import FORCE, NO_FLAGS
from ..domain.model import Fate, Origin, QuotaSummary, Report
from ..domain.plan import VID_RE
from ..events import InvalidEvent, file_requests
from ..handler import FilesHandedBack
from ..lambda_context import LocalLambdaContext
from ..summaries import summary
from .exits import EXIT_NOT_DONE, EXIT_OK, EXIT_REJECTED, EXIT_UNAVAILABLE, EXIT_USAGE, CliError, outcome
from .render import (
    BacklogListing,
    render_backfill,
    render_backlog,
    render_drain,
    render_quota,
    render_reconcile,
    render_report,
    render_status,
    render_url,
)
from .terminal import console, to_json

#: A command's deadline, as Lambda gives one to an invocation: its claims are leased until then
#: (plus a grace), so a command killed half way leaves claims that end, like a timed-out Lambda's.
CLI_TIMEOUT_MS = 900_000


def _emit(args: argparse.Namespace, data: Any, render: Callable[[Any, Any], None]) -> None:
    """Print ``data`` as JSON (its summary) or as ``render`` draws it."""
    if args.json:
        print(to_json(data if isinstance(data, dict) else summary(data)))
    else:
        render(console(), data)


def _emit_each(args: argparse.Namespace, each: dict[str, Any], render: Callable[[Any, Any], None]) -> None:
    """One account's result as :func:`_emit` prints it; several accounts' each under its userid
    (JSON: ``{"accounts": {userid: summary}}``)."""
    if len(each) == 1:
        _emit(args, next(iter(each.values())), render)
    elif args.json:
        print(to_json({"accounts": {userid: summary(data) for userid, data in each.items()}}))
    else:
        for userid, data in each.items():
            console().rule(f"account {userid}")
            render(console(), data)


def _accounts(args: argparse.Namespace, current: runtime.Runtime) -> list[str]:
    """The accounts a command is about: ``--account``'s (one the deployment serves), or all."""
    book = current.book()
    chosen = getattr(args, "account", None)
    return [a.userid for a in book] if chosen is None else [book.served(chosen).userid]


def _preflight(current: runtime.Runtime, args: argparse.Namespace) -> dict[str, QuotaSummary]:
    """Before a command that sends: the secret and the table can be read, so that a wrong name,
    a missing permission or a malformed secret stops it with exit 2 rather than handing every
    file back (an outage of either is exit 3); each account's quota of the day, as read."""
    return {userid: current.cases(userid).queries.quota() for userid in _accounts(args, current)}


def _outcome(report: Report) -> int:
    return outcome(report.results, report.stopped, report.stopped_because)


def cmd_submit(args: argparse.Namespace) -> int:
    current = runtime.current()
    _preflight(current, args)
    named = None if args.br is None else args.br.split(",")
    options = current.settings.parse_options
    requests = [r for vid in args.vids for r in file_requests(vid, named, Origin("cli"), options)]
    # --account: its prewarm alone, whose plan refuses another account's vids with their reason
    prewarm = (
        current.accounts.prewarm if args.account is None else current.cases(args.account).prewarm.prewarm
    )
    report = prewarm(
        requests,
        dry_run=args.dry_run,
        rule=FORCE if args.force else NO_FLAGS,
        deadline=current.deadline(CLI_TIMEOUT_MS),
        priority_high=args.priority == "high",
    )
    _emit(args, report, render_report)
    return _outcome(report)


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


def cmd_quota(args: argparse.Namespace) -> int:
    if args.day is not None:
        try:
            date.fromisoformat(args.day)
        except ValueError:
            raise CliError(f"--day must be YYYY-MM-DD, got {args.day!r}", EXIT_USAGE) from None
    current = runtime.current()
    each = {userid: current.cases(userid).queries.quota(args.day) for userid in _accounts(args, current)}
    _emit_each(args, each, render_quota)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    if not VID_RE.fullmatch(args.vid):
        raise CliError(f"{args.vid!r} is not a Polyv vid (32 chars [0-9a-z], '_', 1 char)", EXIT_USAGE)
    current = runtime.current()
    book = current.book()
    account = book.of(args.vid)
    if account is None or (args.account is not None and account.userid != book.served(args.account).userid):
        raise CliError(no_account(args.vid), EXIT_USAGE)
    _emit(args, current.cases(account.userid).queries.status(args.vid), render_status)
    return EXIT_OK


def cmd_backlog(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    current = runtime.current()
    each = {}
    for userid in _accounts(args, current):
        queries = current.cases(userid).queries
        each[userid] = BacklogListing(queries.backlog_figures(), queries.deferred(args.limit))
    _emit_each(args, each, render_backlog)
    return EXIT_OK


def cmd_drain(args: argparse.Namespace) -> int:
    current = runtime.current()
    before = _preflight(current, args).values()
    expected = sum(min(b.backlog.files, b.quota.remaining) for b in before)
    with Progress(transient=True, disable=args.json or expected == 0, console=console()) as progress:
        task = progress.add_task("draining the backlog", total=expected)

        def advance(report: Report) -> None:
            done = sum(1 for r in report.results if r.fate in (Fate.SUBMITTED, Fate.REJECTED, Fate.DUPLICATE))
            progress.update(task, completed=done)

        report = current.accounts.drain(
            sweep=args.sweep,
            on_slice=advance,
            deadline=current.deadline(CLI_TIMEOUT_MS),
            account=args.account,
        )
    _emit(args, report, render_drain)
    return _outcome(report)


def cmd_reconcile(args: argparse.Namespace) -> int:
    current = runtime.current()
    _preflight(current, args)
    since = None
    if args.since is not None:
        try:
            day = date.fromisoformat(args.since)
        except ValueError:
            raise CliError(f"--since must be YYYY-MM-DD, got {args.since!r}", EXIT_USAGE) from None
        since = datetime.combine(day, time(0), tzinfo=current.settings.timezone)
    run = current.accounts.reconcile(
        deadline=current.deadline(CLI_TIMEOUT_MS), account=args.account, since=since, dry_run=args.dry_run
    )
    _emit(args, run, render_reconcile)
    if run.failed():
        raise CliError(
            f"Polyv's list of new videos could not be read for {', '.join(run.failed())}", EXIT_UNAVAILABLE
        )
    return _outcome(run.report)


def cmd_backfill(args: argparse.Namespace) -> int:
    current = runtime.current()
    _preflight(current, args)
    backfill = functools.partial(current.accounts.backfill, dry_run=args.dry_run, account=args.account)
    if args.file == "-":
        report = backfill(sys.stdin, source="stdin")
    else:
        path = Path(args.file)
        try:
            with path.open(encoding="utf-8", newline="") as lines:
                report = backfill(lines, source=path.name)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {args.file!r}: {type(exc).__name__}", EXIT_USAGE) from None
    _emit(args, report, render_backfill)
    if report.catalogue.refused:  # the report lists each refused line; nothing refused is stored
        return EXIT_USAGE if not report.catalogue.files else EXIT_REJECTED
    return EXIT_OK


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
    _emit(args, {"stack": stack, "callbackUrl": url}, render_url)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "callback-url": cmd_callback_url,
    "submit": cmd_submit,
    "invoke": cmd_invoke,
    "quota": cmd_quota,
    "status": cmd_status,
    "backlog": cmd_backlog,
    "drain": cmd_drain,
    "reconcile": cmd_reconcile,
    "backfill": cmd_backfill,
}
