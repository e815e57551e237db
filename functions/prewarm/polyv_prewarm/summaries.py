"""The JSON answers: what the function returns and what ``polyv-prewarm --json`` prints, one
function, :func:`summary`, for every typed result. The domain's values know nothing of them
(their field names, camelCase, are this module's); the handler and the CLI call it."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import singledispatch
from typing import Any

from .domain.breaker import BreakerState
from .domain.catalogue import REFUSED_SHOWN, Catalogue
from .domain.model import (
    BacklogFigures,
    DeferredFile,
    EntryState,
    FileResult,
    LedgerEntry,
    QuotaSummary,
    QuotaView,
    Report,
    SweepPlan,
    Tier,
    VideoStatus,
)
from .domain.preview import shown
from .events import Remark
from .logic.accounts import Reconciled
from .logic.backfill import BackfillReport


@singledispatch
def summary(value: Any) -> dict[str, Any]:
    raise TypeError(f"no summary of a {type(value).__name__}")


@summary.register
def _file(r: FileResult) -> dict[str, Any]:
    out: dict[str, Any] = {  # an invalid request's values as the event had them, cut short
        "vid": r.file.vid if r.file else shown(r.request.vid),
        "brIndex": r.file.br_index if r.file else shown(r.request.br_index),
        "fate": r.fate.value,
    }
    if r.reason is not None:
        out["reason"] = r.reason
    if r.task_id is not None:
        out["taskId"] = r.task_id
    if r.call is not None:
        out["call"] = r.call
    out.update(r.request.origin.log_keys())
    return out


@summary.register
def _entry(entry: LedgerEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"state": entry.state.value, "at": entry.at}
    for name, value in (("taskId", entry.task_id), ("reason", entry.reason), ("origin", entry.origin)):
        if value:
            out[name] = value
    if entry.state is EntryState.CLAIMED and entry.lease_until_ms is not None:
        out["leaseUntil"] = datetime.fromtimestamp(entry.lease_until_ms / 1000, UTC).isoformat()
    return out


@summary.register
def _deferred(d: DeferredFile) -> dict[str, Any]:
    out: dict[str, Any] = {"deferredAt": d.deferred_at, "origin": d.origin}
    if d.tier is not Tier.NORMAL:
        out["tier"] = d.tier.value
    if d.force:
        out["force"] = True
    if d.explicit:
        out["explicit"] = True
    if d.priority_high:
        out["priority"] = "high"
    if d.retry_at is not None:
        out["retryAt"] = d.retry_at
        out["waitReason"] = d.wait_reason
    if d.failures:
        out["failures"] = d.failures
        out["lastError"] = d.last_error
    if d.parked:
        out["parked"] = True
    return out


@summary.register
def _quota(view: QuotaView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "day": view.day,
        "used": view.used,
        "limit": view.limit,
        "remaining": view.remaining,
    }
    if view.confirmed is not None:
        out |= {"confirmed": view.confirmed, "inDoubt": view.in_doubt}
    if view.exhausted:
        out["exhausted"] = True
    if view.reserve:
        out["reserve"] = {"files": view.reserve, "used": view.reserve_used}
    return out


@summary.register
def _figures(figures: BacklogFigures) -> dict[str, Any]:
    return {
        "files": figures.files,
        "oldestDeferredAt": figures.oldest_deferred_at,
        "waiting": figures.waiting,
        "tiers": {tier.value: figures.tiers.get(tier, 0) for tier in Tier},
    }


@summary.register
def _sweep(plan: SweepPlan) -> dict[str, Any]:
    return {
        "reserveReleasedAt": plan.reserve_released_at,
        "released": plan.released,
        "willSpend": min(plan.units, plan.files),
    }


@summary.register
def _breaker(state: BreakerState) -> dict[str, Any]:
    if not state.open:
        return {"available": True}
    return {
        "available": False,
        "downSince": state.down_since,
        "failures": state.failures,
        "nextProbeMs": state.down_until_ms,
    }


@summary.register
def _quota_summary(q: QuotaSummary) -> dict[str, Any]:
    out = {**summary(q.quota), "backlog": summary(q.backlog)}
    if q.polyv is not None:
        out["polyv"] = summary(q.polyv)
    if q.sweep is not None:
        out["sweep"] = summary(q.sweep)
    return out


@summary.register
def _status(status: VideoStatus) -> dict[str, Any]:
    return {
        "vid": status.vid,
        "days": {
            day: {str(br): summary(entry) for br, entry in sorted(by_br.items())}
            for day, by_br in sorted(status.days.items(), reverse=True)
        },
        "deferred": {str(br): summary(d) for br, d in sorted(status.deferred.items())},
    }


@summary.register
def _catalogue(c: Catalogue) -> dict[str, Any]:
    return {
        "lines": c.lines,
        "files": len(c.files),
        "repeated": c.repeated,
        "refused": len(c.refused),
        "refusedLines": [r._asdict() for r in c.refused[:REFUSED_SHOWN]],
    }


@summary.register
def _backfill(report: BackfillReport) -> dict[str, Any]:
    out = {**summary(report.catalogue), "dryRun": report.dry_run, "sparePerDay": report.spare_per_day}
    out["days"] = report.days
    if not report.dry_run:
        out["stored"] = report.stored
        out["alreadyInBacklog"] = len(report.catalogue.files) - report.stored
    return out


@summary.register
def _remark(remark: Remark) -> dict[str, Any]:
    return {"reason": remark.reason, **remark.origin.log_keys()}


def report_summary(report: Report, *, files: bool = True) -> dict[str, Any]:
    """``files=False``: without the per-file list, which can be 10,000 entries long (logs)."""
    out: dict[str, Any] = {
        "dryRun": report.dry_run,
        "counts": report.counts(),
        "calls": [{"taskId": c.task_id, "files": c.files} for c in report.calls],
    }
    if files:
        out["files"] = [summary(r) for r in report.results]
    if report.quota is not None:
        out["quota"] = summary(report.quota)
    if report.stopped_because is not None:
        out["stoppedBecause"] = report.stopped_because
    if report.backlog is not None:
        out["backlog"] = summary(report.backlog)
    if report.polyv_down_since is not None:
        out["polyvDownSince"] = report.polyv_down_since
    if report.accounts:  # a run of several accounts: each one's counts, calls, quota and backlog
        out["accounts"] = {
            userid: {k: v for k, v in report_summary(each, files=False).items() if k != "dryRun"}
            for userid, each in report.accounts.items()
        }
    return out


summary.register(Report, report_summary)


@summary.register
def _reconciled(run: Reconciled) -> dict[str, Any]:
    """A reconcile's files (as a report's) and, per account, what Polyv listed and where the next
    run starts."""
    out = {**report_summary(run.report), "filesFound": run.files_found}
    out["reconcile"] = {
        userid: {
            "listed": found.listed,
            "pages": found.pages,
            "complete": found.complete,
            "found": len(found.requests),
            "nextSince": found.mark.since.isoformat(),
            **({"error": found.error, "failuresInARow": found.mark.failures} if found.error else {}),
        }
        for userid, found in run.found.items()
    }
    return out
