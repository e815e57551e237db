"""The Lambda handler: Powertools decorators, then route by event kind.

Thin: each route reads its event into file requests or an action (``polyv_prewarm.events``), lets
the use cases (``runtime``) do the work, records the report's metrics (``polyv_prewarm.telemetry``)
and turns the report into the answer its event source expects. ``functions/prewarm/app.py`` exposes it to
Lambda; the CLI's ``invoke`` calls it directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from polyv_prewarm import SERVICE, runtime, telemetry
from polyv_prewarm.domain.accounts import no_account
from polyv_prewarm.domain.model import Origin, Report
from polyv_prewarm.domain.ports import CredentialsError, PrewarmError, QueueUnavailable
from polyv_prewarm.domain.preview import preview
from polyv_prewarm.events import (
    MAX_FILES_PER_MESSAGE,
    DirectFlags,
    DrainAction,
    EventKind,
    InvalidEvent,
    InvalidMessage,
    Parsed,
    ParseOptions,
    QuotaAction,
    ReconcileAction,
    RecoverAction,
    Remark,
    SweepAction,
    UnsupportedEvent,
    classify,
    direct_flags,
    parse_action,
    parse_body,
    parse_document,
)
from polyv_prewarm.logic.run import log_tally
from polyv_prewarm.summaries import report_summary, summary
from polyv_prewarm.telemetry import metrics
from polyv_prewarm.tracing import tracer

logger = Logger(service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# An invocation rejected before any work (an unknown event) has no metrics; that is expected.
warnings.filterwarnings("ignore", message="No application metrics to publish")
NO_FLAGS = DirectFlags()  # S3, SNS, EventBridge and SQS requests: no dry run, no force, no priority
#: The most files one invocation reads. The queue's batches (BatchSize 10 in template.yaml) of
#: messages of at most MAX_FILES_PER_MESSAGE never reach it; it bounds a batch size raised by hand.
MAX_FILES_PER_INVOCATION = 10 * MAX_FILES_PER_MESSAGE
CORRELATION_ID_MAX = 256  # characters of an S3 key or message id kept as the correlation id


class FilesHandedBack(PrewarmError):
    """Raised for asynchronous invocations (S3, SNS, EventBridge) whose files are not all done,
    so Lambda retries the event and, after that, sends it to the on-failure destination."""


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
    sqs_event = SQSEvent(event)
    batch = _read_messages(sqs_event)
    # with the secret unreadable nothing can be planned (nor sent): every readable message comes back
    report = Report() if batch.secret_error else _prewarm(batch.parsed, context)
    to_retry = report.messages_to_retry()
    dead_lettered = _dead_letter(sqs_event, batch.malformed)
    # a message every answered file of which Polyv refused: a copy on the DLQ with why, once (it
    # succeeds: its suspects, if any, wait in the backlog; a human should look at the producer)
    poison = {m: why for m, why in report.poison_messages().items() if m not in to_retry}
    dead_lettered |= _dead_letter(sqs_event, poison, log="poison message: a copy dead-lettered")

    def verdict(record: SQSRecord) -> None:
        if record.message_id in batch.malformed and record.message_id not in dead_lettered:
            raise InvalidMessage(batch.malformed[record.message_id])
        if record.message_id in batch.unread:
            raise FilesHandedBack(batch.unread[record.message_id])
        if record.message_id in to_retry:
            raise FilesHandedBack("holds files that were not submitted (Polyv or the ledger unavailable)")

    response = process_partial_response(
        event=event, record_handler=verdict, processor=processor, context=context
    )
    handed_back = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    _back_off([r for r in sqs_event.records if r.message_id in handed_back])
    telemetry.record_messages_handed_back(len(handed_back))
    telemetry.record_dead_lettered(len(dead_lettered))
    telemetry.record_polyv_down(report)
    logger.info(
        "batch done",
        extra={
            "summary": _log_summary(report),
            "malformed": len(batch.malformed),
            "dead_lettered": len(dead_lettered),
            "unread": len(batch.unread),
            "handed_back": len(handed_back),
        },
    )
    return dict(response)


#: A handed-back message comes again after VISIBILITY_FIRST seconds, doubling per receive up to
#: VISIBILITY_MOST: an outage of the ledger (or the secret) of hours is waited out with a message
#: every quarter of an hour at most, and its work is done within that after the outage ends,
#: while the queue's maxReceiveCount (100) dead-letters nothing within a day (test_template).
VISIBILITY_FIRST, VISIBILITY_MOST = 60, 900


def visibility_after(receive_count: int) -> int:
    """Seconds until a message handed back at its ``receive_count``-th receive comes again."""
    return int(min(VISIBILITY_MOST, VISIBILITY_FIRST * 2 ** max(0, min(receive_count - 1, 16))))


def receive_count(record: SQSRecord) -> int:
    """How often SQS has delivered the message: its ``ApproximateReceiveCount``, or SQS's own
    value for a first delivery (1) when the record carries no ``attributes`` or no usable count
    (SQS always sends them; a person's hand-written test event often does not)."""
    attributes = record.raw_event.get("attributes") if isinstance(record.raw_event, dict) else None
    raw = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    try:
        return max(1, int(raw)) if raw is not None else 1
    except (TypeError, ValueError):
        return 1


def _dead_letter(
    batch: SQSEvent, malformed: dict[str, str], *, log: str = "malformed message dead-lettered"
) -> set[str]:
    """Put the messages no parser can read (or all of whose files were refused) on the dead-letter
    queue now (a human is needed; no redelivery can help): the ids of those it took. Those it
    could not take fail as before (a malformed one), or just succeed (a poison one: its files
    have their fates)."""
    messages = runtime.current().messages
    if not malformed or messages is None:
        return set()
    taken = set()
    for record in batch.records:
        if record.message_id not in malformed:
            continue
        try:
            messages.dead_letter(
                record.body or "",
                reason=malformed[record.message_id],
                message_id=record.message_id,
                receive_count=receive_count(record),
            )
        except QueueUnavailable as exc:
            logger.error("could not dead-letter a malformed message", extra={"error": str(exc)})
            continue
        taken.add(record.message_id)
        logger.warning(log, extra={"message_id": record.message_id, "error": malformed[record.message_id]})
    return taken


def _back_off(records: Sequence[SQSRecord]) -> None:
    """Handed-back messages come again after a delay that grows with their receives, instead of
    the queue's 12 minutes each (best effort: a failure leaves the queue's visibility timeout)."""
    messages = runtime.current().messages
    if messages is None:
        return
    for record in records:
        source, receipt = record.raw_event.get("eventSourceARN"), record.raw_event.get("receiptHandle")
        if not (isinstance(source, str) and source.endswith(f":{messages.queue_name}") and receipt):
            continue  # a queue of another stack wired to this function, or a hand-written record
        receives = receive_count(record)
        try:
            messages.delay(str(receipt), visibility_after(receives))
        except QueueUnavailable as exc:
            logger.warning("could not delay a handed-back message", extra={"error": str(exc)})
            return


class BatchRead(NamedTuple):
    parsed: Parsed  # every readable message's file requests
    malformed: dict[str, str]  # message id -> why it cannot be read: fails alone
    unread: dict[str, str]  # message id -> why it is handed back unread (a later delivery reads it)
    secret_error: str | None = None  # the Polyv secret could not be read


UNREAD_OVER_BUDGET = "not read: this invocation already holds its most files"
UNREAD_CREDENTIALS_DOWN = "not read: the Polyv secret is unreadable (it tells the accounts' vids)"


def _read_messages(batch: SQSEvent) -> BatchRead:
    """Every message's file requests, and the malformed messages (id -> why): a message that
    cannot be read fails alone, whatever the reason, never its batch. Messages that would take
    the invocation past MAX_FILES_PER_INVOCATION are handed back unread (a later batch takes
    them), and so is every readable message while the Polyv secret cannot be read (an outage
    like any other: it must not fail the batch, and the malformed messages still fail alone)."""
    try:
        options, secret_error = _parse_options(), None
    except CredentialsError as exc:
        logger.error("cannot read the Polyv secret: handing the batch back", extra={"error": str(exc)})
        options, secret_error = runtime.current().settings.parse_options, str(exc)
    read = BatchRead(Parsed(), {}, {}, secret_error)
    for record in batch.records:
        message_id = record.raw_event.get("messageId") if isinstance(record.raw_event, dict) else None
        if not isinstance(message_id, str) or not message_id:
            # Lambda never sends this; without a messageId no record could be handed back alone.
            raise InvalidEvent("an SQS record has no messageId")
        message = _read_message(record, message_id, options, read.malformed)
        if message is None:
            continue
        if secret_error is not None:
            read.unread[message_id] = UNREAD_CREDENTIALS_DOWN
        elif read.parsed.files + message.files > MAX_FILES_PER_INVOCATION:
            read.unread[message_id] = UNREAD_OVER_BUDGET
        else:
            read.parsed.extend(message)
    if read.unread:
        logger.warning(
            "handing back messages unread",
            extra={"messages": len(read.unread), "reason": next(iter(read.unread.values()))},
        )
    return read


def _read_message(
    record: SQSRecord, message_id: str, options: ParseOptions, malformed: dict[str, str]
) -> Parsed | None:
    """One message's requests; None (and the reason in ``malformed``) when it cannot be read."""
    try:
        return parse_body(record.raw_event.get("body"), Origin("sqs", message_id=message_id), options)
    except InvalidMessage as exc:
        malformed[message_id] = str(exc)
        logger.warning("malformed message", extra={"message_id": message_id, "error": str(exc)})
    except Exception as exc:  # a defect in a parser must fail this message alone, not its batch
        malformed[message_id] = f"message could not be read ({type(exc).__name__})"
        logger.exception("message could not be read", extra={"message_id": message_id})
    return None


def _notification(event: dict[str, Any], kind: EventKind, context: LambdaContext) -> dict[str, Any]:
    parsed = _read_document(event, Origin(kind.value))
    report = _prewarm(parsed, context)
    not_done = sum(r.fate.needs_retry for r in report.results)
    if not_done:
        logger.warning(
            "files not done: failing the invocation so Lambda retries it", extra=_log_summary(report)
        )
        raise FilesHandedBack(f"{not_done} files were not submitted (Polyv or the ledger unavailable)")
    logger.info("notification done", extra={"summary": _log_summary(report)})
    return _summary(report, parsed)


def _direct(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    flags = direct_flags(event)
    parsed = _read_document(event, Origin("direct"))
    report = _prewarm(parsed, context, flags)
    logger.info("direct invocation done", extra={"summary": _log_summary(report)})
    return _summary(report, parsed)


def _action(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = parse_action(event)
    current = runtime.current()
    if isinstance(action, DrainAction | SweepAction | RecoverAction):
        deadline = current.deadline(context.get_remaining_time_in_millis())
        recover = isinstance(action, RecoverAction)
        if recover:
            report = current.accounts.recover(deadline=deadline)
        else:
            report = current.accounts.drain(deadline=deadline, sweep=isinstance(action, SweepAction))
        telemetry.record_report(report)
        telemetry.record_polyv_down(report, always=recover)
        done = {
            DrainAction: "drain done",
            SweepAction: "late sweep done",
            RecoverAction: "recovery drain done",
        }
        logger.info(done[type(action)], extra={"summary": _log_summary(report)})
        return summary(report)
    if isinstance(action, ReconcileAction):
        run = current.accounts.reconcile(deadline=current.deadline(context.get_remaining_time_in_millis()))
        telemetry.record_report(run.report)
        telemetry.record_reconcile(
            run.files_found, len(run.failed()), max(f.mark.failures for f in run.found.values())
        )
        logger.info(
            "reconcile done",
            extra={
                "files_found": run.files_found,
                "failed": run.failed(),
                "summary": _log_summary(run.report),
            },
        )
        return summary(run)
    if isinstance(action, QuotaAction):
        quotas = {a.userid: current.cases(a.userid).queries.quota(action.day) for a in current.book()}
        for userid, quota in quotas.items():
            telemetry.record_backlog(quota.backlog, account=userid)
        return (
            summary(next(iter(quotas.values())))
            if len(quotas) == 1
            else {"accounts": {userid: summary(quota) for userid, quota in quotas.items()}}
        )
    account = current.book().of(action.vid)
    if account is None:  # a status of no account's ledger: say so, as the CLI does
        raise InvalidEvent(no_account(action.vid))
    return summary(current.cases(account.userid).queries.status(action.vid))


def _other_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge rule's ``Scheduled Event``. The drain runs on this project's own schedule
    (DailyDrain sends ``{"action": "drain", "source": "schedule"}``); another rule that targets
    the function by mistake must not drain the backlog at its own hours. Nothing is done, and the
    answer (not an error, so EventBridge does not retry it) says why."""
    resources = event.get("resources")
    rules = [preview(r, 256) for r in resources[:5]] if isinstance(resources, list) else []
    logger.warning("a scheduled event of another rule: nothing done", extra={"resources": rules})
    return {
        "ignored": 'not this project\'s drain schedule: the drain runs on {"action": "drain"}',
        "resources": rules,
    }


@tracer.capture_method
def _prewarm(parsed: Parsed, context: LambdaContext, flags: DirectFlags = NO_FLAGS) -> Report:
    current = runtime.current()
    deadline = current.deadline(context.get_remaining_time_in_millis())
    if parsed.lookups:  # a TranscodeComplete's definitions: Polyv says which exist
        confirmed = current.accounts.confirm(parsed.lookups, deadline=deadline)
        parsed.requests += confirmed.requests
        parsed.ignored += [Remark(lookup.origin, why) for lookup, why in confirmed.ignored]
        parsed.lookups.clear()
    log_tally("ignored", parsed.ignored, summary)
    log_tally("read from the event", parsed.notes, summary)
    report = current.accounts.prewarm(
        parsed.requests,
        dry_run=flags.dry_run,
        rule=flags.rule,
        deadline=deadline,
        priority_high=flags.priority_high,
    )
    telemetry.record_report(report)
    return report


def _read_document(event: dict[str, Any], origin: Origin) -> Parsed:
    try:
        return parse_document(event, origin, _parse_options())
    except InvalidMessage as exc:
        raise InvalidEvent(str(exc)) from None


def _parse_options() -> ParseOptions:
    """The configured options, with the accounts' userids: S3 keys yield only their vids."""
    current = runtime.current()
    return current.settings.parse_options._replace(userids=tuple(a.userid for a in current.book()))


def _correlation_id(event: dict[str, Any], kind: EventKind, context: LambdaContext) -> str:
    """What ties this invocation's log lines to its cause: the (first) SQS message id or S3 key;
    otherwise Lambda's request id. Per-file lines also carry their own message_id / s3_key."""
    records = event.get("Records")
    first = records[0] if isinstance(records, list) and records and isinstance(records[0], dict) else {}
    if kind is EventKind.SQS and isinstance(first.get("messageId"), str):
        return str(first["messageId"])[:CORRELATION_ID_MAX]
    if kind is EventKind.S3:
        s3 = first.get("s3")
        s3_object = s3.get("object") if isinstance(s3, dict) else None
        key = s3_object.get("key") if isinstance(s3_object, dict) else None
        if isinstance(key, str):
            return key[:CORRELATION_ID_MAX]
    return str(getattr(context, "aws_request_id", "") or "local")


def _summary(report: Report, parsed: Parsed) -> dict[str, Any]:
    return {**summary(report), "ignored": [summary(item) for item in parsed.ignored]}


def _log_summary(report: Report) -> dict[str, Any]:
    """The summary without the per-file list, which can be 10,000 entries long."""
    return report_summary(report, files=False)


__all__ = ["FilesHandedBack", "InvalidEvent", "UnsupportedEvent", "lambda_handler"]
