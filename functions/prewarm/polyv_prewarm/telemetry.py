"""The function's metrics: one Powertools ``Metrics`` set per invocation (flushed by the handler's
decorator), and what each report, backlog and batch adds to it.

Metrics that need a dimension of their own (a rejection reason, a Polyv error message) go in an
EMF document of their own: Powertools' ``Metrics`` gives every metric of an invocation the same
dimensions. (Powertools' ``single_metric`` does the same but prints even when
``POWERTOOLS_METRICS_DISABLED`` is set, which the CLI and the tests rely on.)
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from . import NAMESPACE, SERVICE
from .domain.model import BacklogFigures, Fate, FileResult, QuotaView, Report

#: Powertools keeps one metric set per namespace, shared by every ``Metrics`` of the process.
metrics = Metrics(namespace=NAMESPACE)

FATE_METRICS = {
    Fate.SUBMITTED: "FilesSubmitted",
    Fate.DUPLICATE: "FilesDuplicate",
    Fate.DEFERRED: "FilesDeferred",
    Fate.REJECTED: "FilesRejected",
    Fate.HANDED_BACK: "FilesHandedBack",
    Fate.EXPIRED: "FilesExpired",
}


def per_call_metrics_enabled() -> bool:
    """Whether to record a metric once per Polyv attempt. Powertools prints a metric's values as
    soon as it holds 100 of them, even with ``POWERTOOLS_METRICS_DISABLED`` set: long CLI drains
    would then print EMF documents into the command's output."""
    return not is_metrics_disabled()


def count_by(name: str, value: float, dimension: str, label: str) -> None:
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=SERVICE)
    provider.add_metric(name=name, unit=MetricUnit.Count, value=value)
    provider.add_dimension(name="service", value=SERVICE)
    provider.add_dimension(name=dimension, value=label[:100] or "unknown")
    provider.flush_metrics()


#: The figures a person needs per account (the dashboard's "by account" widgets and the per-account
#: QuotaNearlySpentAlarm), each a custom metric of its own per account: kept to these seven
#: (CloudWatch bills each metric; docs/operations.md, "Metrics by account").
ACCOUNT_METRICS = (
    "QuotaUsed",
    "QuotaRemaining",
    "QuotaUsedPercent",
    "FilesSubmitted",
    "FilesDeferred",
    "BacklogSize",
    "PolyvErrors",
)


def record_account(userid: str, figures: dict[str, float]) -> None:
    """One EMF document of an account's figures (of :data:`ACCOUNT_METRICS`), dimensions
    ``service`` and ``account``."""
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=SERVICE)
    for name, value in figures.items():
        unit = MetricUnit.Percent if name.endswith("Percent") else MetricUnit.Count
        provider.add_metric(name=name, unit=unit, value=value)
    provider.add_dimension(name="service", value=SERVICE)
    provider.add_dimension(name="account", value=userid)
    provider.flush_metrics()


def _account_figures(report: Report) -> dict[str, float]:
    figures: dict[str, float] = {
        "FilesSubmitted": report.count(Fate.SUBMITTED),
        "FilesDeferred": report.count(Fate.DEFERRED),
    }
    if report.quota is not None:
        figures |= {
            "QuotaUsed": report.quota.used,
            "QuotaRemaining": report.quota.remaining,
            "QuotaUsedPercent": used_percent(report.quota),
        }
    return figures


def used_percent(quota: QuotaView) -> float:
    return round(100.0 * quota.used / quota.limit, 1) if quota.limit else 0.0


def rejection_reason(result: FileResult) -> str:
    """A short, bounded label for the FilesRejectedByReason dimension: the rejection's own, else
    its reason cut short (Polyv's, which is one of a few)."""
    return result.label or (result.reason or "unknown")[:60]


def record_report(report: Report) -> None:
    """Files per fate, rejections per reason, Polyv calls and the day's quota (a dry run: none)."""
    if report.dry_run:
        return
    for fate, name in FATE_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.count(fate))
    reasons = Counter(rejection_reason(r) for r in report.results if r.fate is Fate.REJECTED)
    for reason, count in reasons.items():
        count_by("FilesRejectedByReason", count, "reason", reason)
    metrics.add_metric(name="PolyvCalls", unit=MetricUnit.Count, value=len(report.calls))
    # what re-sending files in doubt cost: units spent on files Polyv may have had already
    metrics.add_metric(name="FilesResentInDoubt", unit=MetricUnit.Count, value=report.resent_in_doubt)
    each = list(report.accounts.values()) or [report]  # a run of several accounts: each one's
    _record_quota([r.quota for r in each if r.quota is not None])
    for account in each:
        _record_day_closed(account)
        if account.account is not None:
            record_account(account.account, _account_figures(account))
        if account.backlog is not None:
            record_backlog(account.backlog, account=account.account)


def _record_quota(quotas: list[QuotaView]) -> None:
    """QuotaUsed and QuotaRemaining, of several accounts their sums; QuotaUsedPercent (the
    alarm's), of several accounts the fullest one's."""
    if not quotas:
        return
    metrics.add_metric(name="QuotaUsed", unit=MetricUnit.Count, value=sum(q.used for q in quotas))
    metrics.add_metric(name="QuotaRemaining", unit=MetricUnit.Count, value=sum(q.remaining for q in quotas))
    metrics.add_metric(name="QuotaUsedPercent", unit=MetricUnit.Percent, value=max(map(used_percent, quotas)))


def _record_day_closed(report: Report) -> None:
    if report.day_closed is not None:  # the morning drain: the quota day that just ended
        metrics.add_metric(name="QuotaUnused", unit=MetricUnit.Count, value=report.day_closed.remaining)
        if report.day_closed.confirmed is not None:  # what Polyv accepted, against the own count
            metrics.add_metric(
                name="QuotaConfirmed", unit=MetricUnit.Count, value=report.day_closed.confirmed
            )


#: A reconcile's figures: the files every event source missed (EventsMissedAlarm), the accounts
#: whose listing failed this run, and the longest run of failures of any account
#: (ReconcileFailingAlarm).
RECONCILE_METRICS = ("FilesFoundByReconcile", "ReconcileListingFailed", "ReconcileFailuresInARow")


def record_reconcile(files_found: int, failed: int, failures_in_a_row: int) -> None:
    for name, value in zip(RECONCILE_METRICS, (files_found, failed, failures_in_a_row), strict=True):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def record_backlog(backlog: BacklogFigures, *, account: str | None = None) -> None:
    """BacklogSize, BacklogWaiting, BacklogOldestAgeHours (the dashboard's and the alarms') and
    BacklogFiles by tier; with ``account``, its BacklogSize by account too (several accounts'
    backlogs in one invocation add up, and the oldest age is the oldest of them)."""
    if account is not None:
        record_account(account, {"BacklogSize": backlog.files})
    metrics.add_metric(name="BacklogSize", unit=MetricUnit.Count, value=backlog.files)
    metrics.add_metric(name="BacklogWaiting", unit=MetricUnit.Count, value=backlog.waiting)
    for tier, files in backlog.tiers.items():
        count_by("BacklogFiles", files, "tier", tier.value)
    age_hours = 0.0
    if backlog.oldest_deferred_at:
        oldest = datetime.fromisoformat(backlog.oldest_deferred_at)
        age_hours = (datetime.now(UTC) - oldest).total_seconds() / 3600
    metrics.add_metric(
        name="BacklogOldestAgeHours", unit=MetricUnit.Count, value=round(max(0.0, age_hours), 2)
    )


def record_polyv_down(report: Report, *, always: bool = False) -> None:
    """PolyvDownMinutes: how long Polyv's breaker has been open (0 once closed), from every run that
    found it open, and from every recovery drain (``always``: the alarm's steady five-minute figure)."""
    if report.polyv_down_minutes is None and not always:
        return
    minutes = round(report.polyv_down_minutes or 0.0, 1)
    metrics.add_metric(name="PolyvDownMinutes", unit=MetricUnit.Count, value=minutes)


def count_malformed() -> None:
    """LedgerItemsMalformed: a ledger item no write of this package made, read as in doubt."""
    metrics.add_metric(name="LedgerItemsMalformed", unit=MetricUnit.Count, value=1)


def record_dead_lettered(count: int) -> None:
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=count)


def record_messages_handed_back(count: int) -> None:
    metrics.add_metric(name="MessagesHandedBack", unit=MetricUnit.Count, value=count)


#: The callback endpoint's answers, by outcome (``logic/receive_callback.Outcome``: the alarms and
#: the dashboard read these).
CALLBACK_METRICS = {
    "queued": "CallbacksQueued",  # verified, and its definitions are on the prewarm queue
    "replayed": "CallbacksReplayed",  # verified, and its signed content was queued before (200)
    "ignored": "CallbacksIgnored",  # a kind that asks for no prewarm (200, nothing queued)
    "forged": "CallbacksForged",  # absent or wrong sign (403)
    "unverified": "CallbacksUnverified",  # a mismatch the spent re-read budget left unchecked (503)
    "malformed": "CallbacksMalformed",  # not a well-formed notification (400, 413)
    "unavailable": "CallbacksUnavailable",  # the secret unreadable or SQS down (503)
}


def record_callback(outcome: str) -> None:
    metrics.add_metric(name=CALLBACK_METRICS[outcome], unit=MetricUnit.Count, value=1)
