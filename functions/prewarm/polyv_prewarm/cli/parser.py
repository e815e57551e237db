"""The command line's grammar: global options (before or after the command) and the commands."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from .exits import EXIT_CODES

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
  polyv-prewarm quota --account e6b23c6f51
  polyv-prewarm submit e6b23c6f513fbe025b94efdd10d7ab47_e --br 1,2 --dry-run
  polyv-prewarm invoke events/sqs-pipeline-messages.json
  polyv-prewarm status e6b23c6f513fbe025b94efdd10d7ab47_e
  polyv-prewarm backlog --limit 20
  polyv-prewarm drain
  polyv-prewarm reconcile --since 2026-12-01 --dry-run
  polyv-prewarm backfill catalogue.csv --dry-run
  polyv-prewarm callback-url --stack polyv-prewarm
"""
)


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
        "--account",
        metavar="USERID",
        help="one Polyv account of the deployment's: its quota, backlog, drain or backfill; a submit "
        "or status of its vids only (default: every account, each vid to its own)",
        **unset,
    )
    parser.add_argument(
        "--secret-id", help="Secrets Manager secret with the Polyv accounts (POLYV_SECRET_ID)", **unset
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

    reconcile = add(
        "reconcile",
        help="warm what Polyv lists as uploaded that no event brought",
        description="Read each account's list of new videos from Polyv (get-new-list, signed with "
        "its own secretkey; no prewarm quota) and queue the published files that no event has brought "
        "into the ledger or the backlog, as ordinary automatic work. Without --since: from the "
        "account's mark, which it then moves (what the function's reconcile action does); the same "
        "bounds either way (10 pages of 100 videos an account).",
    )
    reconcile.add_argument(
        "--since",
        metavar="YYYY-MM-DD",
        help="look at the uploads from this day (in QUOTA_TIMEZONE) on; the account's mark stays",
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="say what would be queued; queue nothing, move no mark"
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
