"""The Lambda handler: Powertools decorators, then route by event kind.

Thin on purpose: it turns each event into file requests (``polyv_prewarm.events``), lets the
service do the work, and turns the report into the answer the event source expects.
``functions/prewarm/app.py`` exposes it to Lambda; the CLI's ``invoke`` calls it directly.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from polyv_prewarm import NAMESPACE, SERVICE, runtime
from polyv_prewarm.events import (
    EventKind,
    InvalidMessage,
    Parsed,
    ParseOptions,
    UnsupportedEvent,
    classify,
    parse_body,
    parse_document,
)
from polyv_prewarm.model import Fate, Origin, Report
from polyv_prewarm.plan import VID_RE
from polyv_prewarm.ports import PrewarmError
from polyv_prewarm.telemetry import count_by

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# An invocation rejected before any work (an unknown event) has no metrics; that is expected.
warnings.filterwarnings("ignore", message="No application metrics to publish")


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class FilesHandedBack(PrewarmError):
    """Raised for asynchronous invocations (S3, SNS, EventBridge) whose files are not all done,
    so Lambda retries the event and, after that, sends it to the on-failure destination."""


class InvalidEvent(PrewarmError):
    """An event of a known kind whose content cannot be read (a direct invocation, a notification
    delivered directly, an SQS record without a messageId)."""


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    kind = classify(event)
    logger.append_keys(event_kind=kind.value)
    logger.set_correlation_id(_correlation_id(event, kind, context))
    if kind is EventKind.SQS:
        return _sqs_batch(event, context)
    if kind is EventKind.DIRECT:
        return _direct(event, context)
    if kind is EventKind.SCHEDULED:
        return _other_schedule(event)
    if kind is EventKind.ACTION:
        return _action(event, context)
    return _notification(event, kind, context)


def _sqs_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Dedup and chunking span the whole batch, so every message is read before any call; the
    verdicts then go through Powertools' batch processor, which builds ``batchItemFailures``."""
    options = _parse_options()
    parsed = Parsed()
    malformed: dict[str, str] = {}
    for record in SQSEvent(event).records:
        message_id = record.raw_event.get("messageId") if isinstance(record.raw_event, dict) else None
        if not isinstance(message_id, str) or not message_id:
            # Lambda never sends this; without a messageId no record could be handed back alone.
            raise InvalidEvent("an SQS record has no messageId")
        try:
            parsed.extend(
                parse_body(record.raw_event.get("body"), Origin("sqs", message_id=message_id), options)
            )
        except InvalidMessage as exc:
            malformed[message_id] = str(exc)
            logger.warning("malformed message", extra={"message_id": message_id, "error": str(exc)})
        except Exception as exc:  # a defect in a parser must fail this message alone, not its batch
            malformed[message_id] = f"message could not be read ({type(exc).__name__})"
            logger.exception("message could not be read", extra={"message_id": message_id})
    report = _prewarm(parsed, context)
    to_retry = report.messages_to_retry()

    def verdict(record: SQSRecord) -> None:
        if record.message_id in malformed:
            raise InvalidMessage(malformed[record.message_id])
        if record.message_id in to_retry:
            raise FilesHandedBack("holds files that were not submitted (Polyv or the ledger unavailable)")

    response = process_partial_response(
        event=event, record_handler=verdict, processor=processor, context=context
    )
    metrics.add_metric(
        name="MessagesHandedBack", unit=MetricUnit.Count, value=len(response["batchItemFailures"])
    )
    logger.info(
        "batch done",
        extra={
            "summary": _log_summary(report),
            "malformed": len(malformed),
            "handed_back": len(response["batchItemFailures"]),
        },
    )
    return dict(response)


def _notification(event: dict[str, Any], kind: EventKind, context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse_document(event, Origin(kind.value), _parse_options())
    except InvalidMessage as exc:
        raise InvalidEvent(str(exc)) from None
    report = _prewarm(parsed, context)
    summary = _summary(report, parsed)
    not_done = sum(r.fate.needs_retry for r in report.results)
    if not_done:
        logger.warning(
            "files not done: failing the invocation so Lambda retries it", extra=_log_summary(report)
        )
        raise FilesHandedBack(f"{not_done} files were not submitted (Polyv or the ledger unavailable)")
    logger.info("notification done", extra={"summary": _log_summary(report)})
    return summary


def _direct(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    dry_run, force = _flag(event, "dryRun"), _flag(event, "force")
    priority = event.get("priority", "normal")
    if priority not in ("normal", "high"):
        raise InvalidEvent('priority must be "high" or "normal"')
    try:
        parsed = parse_document(event, Origin("direct"), _parse_options())
    except InvalidMessage as exc:
        raise InvalidEvent(str(exc)) from None
    report = _prewarm(parsed, context, dry_run=dry_run, force=force, priority_high=priority == "high")
    logger.info("direct invocation done", extra={"summary": _log_summary(report)})
    return _summary(report, parsed)


def _parse_options() -> ParseOptions:
    """The configured options, with the account's userid: S3 keys yield only its vids."""
    current = runtime.current()
    return replace(current.settings.parse_options, userid=current.service.userid())


def _flag(event: dict[str, Any], name: str) -> bool:
    value = event.get(name, False)
    if not isinstance(value, bool):
        raise InvalidEvent(f"{name} must be true or false")
    return value


def _correlation_id(event: dict[str, Any], kind: EventKind, context: LambdaContext) -> str:
    """What ties this invocation's log lines to its cause: the (first) SQS message id or S3 key;
    otherwise Lambda's request id. Per-file lines also carry their own message_id / s3_key."""
    records = event.get("Records")
    first = records[0] if isinstance(records, list) and records and isinstance(records[0], dict) else {}
    if kind is EventKind.SQS and isinstance(first.get("messageId"), str):
        return str(first["messageId"])
    if kind is EventKind.S3:
        s3 = first.get("s3")
        s3_object = s3.get("object") if isinstance(s3, dict) else None
        key = s3_object.get("key") if isinstance(s3_object, dict) else None
        if isinstance(key, str):
            return key
    return str(getattr(context, "aws_request_id", "") or "local")


def _drain(context: LambdaContext) -> dict[str, Any]:
    service = runtime.current().service
    report = service.drain(time_left_ms=context.get_remaining_time_in_millis)
    _record_metrics(report)
    summary = report.to_summary()
    summary["backlog"] = _record_backlog(service.quota()["backlog"])
    logger.info("drain done", extra={"summary": _log_summary(report), "backlog": summary["backlog"]})
    return summary


def _other_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge rule's ``Scheduled Event``. The drain runs on this project's own schedule
    (DailyDrain sends ``{"action": "drain", "source": "schedule"}``); another rule that targets
    the function by mistake must not drain the backlog at its own hours. Nothing is done, and the
    answer (not an error, so EventBridge does not retry it) says why."""
    resources = event.get("resources")
    rules = [str(r)[:256] for r in resources[:5]] if isinstance(resources, list) else []
    logger.warning("a scheduled event of another rule: nothing done", extra={"resources": rules})
    return {
        "ignored": 'not this project\'s drain schedule: the drain runs on {"action": "drain"}',
        "resources": rules,
    }


def _action(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action")
    service = runtime.current().service
    if action == "drain":
        return _drain(context)
    if action == "quota":
        day = event.get("day")
        if day is not None and not (isinstance(day, str) and _DAY.fullmatch(day)):
            raise InvalidEvent("day must be a YYYY-MM-DD string")
        quota = service.quota(day)
        _record_backlog(quota["backlog"])
        return quota
    if action == "status":
        vid = event.get("vid")
        if not isinstance(vid, str) or not VID_RE.fullmatch(vid):
            raise InvalidEvent("status needs a vid of the Polyv shape")
        return service.status(vid)
    raise InvalidEvent(f"unknown action {str(action)[:32]!r}: expected drain, status or quota")


@tracer.capture_method
def _prewarm(
    parsed: Parsed,
    context: LambdaContext,
    *,
    dry_run: bool = False,
    force: bool = False,
    priority_high: bool = False,
) -> Report:
    for item in parsed.ignored:
        logger.info("ignored", extra=item.to_summary())
    for item in parsed.notes:
        logger.info("read from the event", extra=item.to_summary())
    report = runtime.current().service.prewarm(
        parsed.requests,
        dry_run=dry_run,
        force=force,
        time_left_ms=context.get_remaining_time_in_millis,
        priority_high=priority_high,
    )
    _record_metrics(report)
    return report


FATE_METRICS = {
    Fate.SUBMITTED: "FilesSubmitted",
    Fate.DUPLICATE: "FilesDuplicate",
    Fate.DEFERRED: "FilesDeferred",
    Fate.REJECTED: "FilesRejected",
    Fate.RETRY: "FilesHandedBack",
    Fate.EXPIRED: "FilesExpired",
}


def rejection_reason(reason: str | None) -> str:
    """A short, bounded label for the FilesRejectedByReason dimension."""
    text = reason or "unknown"
    if "another Polyv account" in text:
        return "vid of another account"
    if text.startswith("vid"):
        return "invalid vid"
    if text.startswith("brIndex"):
        return "invalid brIndex"
    return text[:60]


def _record_metrics(report: Report) -> None:
    if report.dry_run:
        return
    for fate, name in FATE_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.count(fate))
    reasons = Counter(rejection_reason(r.reason) for r in report.results if r.fate is Fate.REJECTED)
    for reason, count in reasons.items():
        count_by("FilesRejectedByReason", count, "reason", reason)
    metrics.add_metric(name="PolyvCalls", unit=MetricUnit.Count, value=len(report.calls))
    if report.quota is not None:
        metrics.add_metric(name="QuotaUsed", unit=MetricUnit.Count, value=report.quota.used)
        metrics.add_metric(name="QuotaRemaining", unit=MetricUnit.Count, value=report.quota.remaining)
        percent = 100.0 * report.quota.used / report.quota.limit if report.quota.limit else 0.0
        metrics.add_metric(name="QuotaUsedPercent", unit=MetricUnit.Percent, value=round(percent, 1))


def _record_backlog(backlog: dict[str, Any]) -> dict[str, Any]:
    metrics.add_metric(name="BacklogSize", unit=MetricUnit.Count, value=backlog["files"])
    oldest = backlog.get("oldestDeferredAt")
    age_hours = 0.0
    if oldest:
        age_hours = (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds() / 3600
    metrics.add_metric(
        name="BacklogOldestAgeHours", unit=MetricUnit.Count, value=round(max(0.0, age_hours), 2)
    )
    return backlog


def _summary(report: Report, parsed: Parsed) -> dict[str, Any]:
    summary = report.to_summary()
    summary["ignored"] = [item.to_summary() for item in parsed.ignored]
    return summary


def _log_summary(report: Report) -> dict[str, Any]:
    """The summary without the per-file list, which can be 10,000 entries long."""
    summary = report.to_summary()
    summary.pop("files")
    return summary


__all__ = ["UnsupportedEvent", "lambda_handler"]
