"""The terminal's tables of typed results (``--json`` prints their ``summaries.summary``)."""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from rich.table import Table

from ..domain.catalogue import REFUSED_SHOWN
from ..domain.model import BacklogFigures, DeferredFile, QuotaSummary, Report, VideoStatus
from ..logic.accounts import Reconciled
from ..logic.backfill import BackfillReport
from ..summaries import summary
from .terminal import row, say


class BacklogListing(NamedTuple):
    """The backlog's figures and its first files, in the drains' order."""

    figures: BacklogFigures
    files: list[DeferredFile]


@summary.register
def _listing(listing: BacklogListing) -> dict[str, Any]:
    return {
        "files": listing.figures.files,
        "tiers": {tier.value: n for tier, n in listing.figures.tiers.items()},
        "oldest": [{"vid": d.file.vid, "brIndex": d.file.br_index, **summary(d)} for d in listing.files],
    }


def counts_line(report: Report) -> str:
    return ", ".join(f"{n} {fate}" for fate, n in report.counts().items())


def render_report(console: Any, report: Report) -> None:
    table = Table(title="dry run: planned calls" if report.dry_run else "files")
    for column in ("vid", "brIndex", "fate", "call", "taskId / reason"):
        table.add_column(column)
    for r in report.results:
        file = summary(r)
        row(
            table,
            str(file["vid"]),
            str(file["brIndex"]),
            r.fate.value,
            str(r.call or ""),
            r.task_id or r.reason or "",
        )
    console.print(table)
    if report.dry_run:
        calls = Counter(r.call for r in report.results if r.call)
        plan = ", ".join(f"call {n}: {count} files" for n, count in sorted(calls.items())) or "no call"
        say(console, f"would make {len(calls)} call(s) — {plan}")
    else:
        say(console, f"{len(report.calls)} Polyv call(s); {counts_line(report)}")
    if (q := report.quota) is not None:
        say(console, f"quota {q.day}: {q.used} of {q.limit} used, {q.remaining} remaining")


def render_quota(console: Any, answer: QuotaSummary) -> None:
    q, backlog = answer.quota, answer.backlog
    table = Table(title=f"quota day {q.day}", show_header=False)
    row(table, "used", f"{q.used} of {q.limit}")
    if q.confirmed is not None:
        row(table, "confirmed by Polyv", f"{q.confirmed} ({q.in_doubt} held by calls in doubt)")
    row(table, "remaining", str(q.remaining) + (" (Polyv says the day is spent)" if q.exhausted else ""))
    if q.reserve:
        row(table, "manual reserve", f"{q.reserve} files")
    if answer.sweep is not None:
        sweep = answer.sweep
        when = "released" if sweep.released else "released at"
        row(table, f"reserve {when}", sweep.reserve_released_at)
        row(table, "the late sweeps will spend", f"{min(sweep.units, sweep.files)} files")
    row(table, "deferred backlog", f"{backlog.files} files")
    for tier, files in backlog.tiers.items():
        row(table, f"  {tier.value}", f"{files} files")
    row(table, "waiting for the recovery drain", f"{backlog.waiting} files (an outage, or a deadline)")
    row(table, "oldest deferral", str(backlog.oldest_deferred_at or "—"))
    if answer.polyv is not None:
        polyv = "available" if not answer.polyv.open else f"down since {answer.polyv.down_since}"
        row(table, "Polyv", polyv)
    console.print(table)


def render_status(console: Any, status: VideoStatus) -> None:
    table = Table(title=f"video {status.vid}")
    for column in ("day", "brIndex", "state", "at", "taskId / reason", "origin", "lease / failures"):
        table.add_column(column)
    for day, by_br in summary(status)["days"].items():
        for br, e in by_br.items():
            row(
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
        row(table, "(backlog)", str(br), state, d.deferred_at, d.last_error or "", d.origin, failures)
    if table.row_count:
        console.print(table)
    else:
        say(console, f"nothing known of {status.vid} in the retained days")


def render_backlog(console: Any, listing: BacklogListing) -> None:
    by_tier = ", ".join(f"{n} {tier.value}" for tier, n in listing.figures.tiers.items())
    table = Table(
        title=f"deferred backlog: {listing.figures.files} files ({by_tier}); by tier in the drains' order, "
        "oldest first, then those waiting out an outage, then the parked ones"
    )
    for column in ("vid", "brIndex", "tier", "deferredAt", "origin", "state"):
        table.add_column(column)
    for d in listing.files:
        if d.parked:
            state = f"parked: {d.last_error}"
        elif d.retry_at:
            state = f"waiting until {d.retry_at}: {d.wait_reason or ''}"
        else:
            state = "forced" if d.force else ""
        row(table, d.file.vid, str(d.file.br_index), d.tier.value, d.deferred_at, d.origin, state)
    console.print(table)


def render_drain(console: Any, report: Report) -> None:
    say(console, f"drain: {counts_line(report) or 'nothing to drain'}; {len(report.calls)} Polyv call(s)")
    if report.stopped_because:
        say(console, f"stopped: {report.stopped_because}")
    if report.backlog is not None:
        say(console, f"backlog now: {report.backlog.files} files")


def render_reconcile(console: Any, run: Reconciled) -> None:
    for userid, found in run.found.items():
        state = f"failed: {found.error}" if found.error else f"{found.listed} listed in {found.pages} page(s)"
        say(console, f"account {userid}: {state}; {len(found.requests)} file(s) no event brought")
    say(
        console,
        f"reconcile: {counts_line(run.report) or 'nothing to queue'}; {len(run.report.calls)} Polyv call(s)",
    )


def render_backfill(console: Any, report: BackfillReport) -> None:
    catalogue = report.catalogue
    say(
        console,
        f"{catalogue.lines} lines: {len(catalogue.files)} files of this account"
        + (f" ({catalogue.repeated} named more than once)" if catalogue.repeated else "")
        + (f", {len(catalogue.refused)} lines refused" if catalogue.refused else ""),
    )
    for refused in catalogue.refused[:REFUSED_SHOWN]:
        say(console, f"  line {refused.line}: {refused.reason}: {refused.text}")
    if len(catalogue.refused) > REFUSED_SHOWN:
        say(console, f"  ... and {len(catalogue.refused) - REFUSED_SHOWN} more")
    days = report.days
    pace = (
        f"about {days} quota day(s) at today's rate ({report.spare_per_day} spare units a day)"
        if days is not None
        else "no end at today's rate: fresh traffic takes every unit of the day"
    )
    if report.dry_run:
        say(console, f"dry run: nothing stored; it would take {pace}")
    else:
        say(
            console,
            f"stored {report.stored} new in the backlog's backfill tier "
            f"({len(catalogue.files) - report.stored} were there already); {pace}",
        )


def render_url(console: Any, answer: dict[str, str]) -> None:
    say(console, answer["callbackUrl"])
