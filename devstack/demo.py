"""`make demo`: the whole job on the local stack, no AWS account.

Starts moto's server and the Polyv simulator, creates the template's resources, seeds a secret
and a catalogue of videos, runs every file in events/ through the Lambda handler, and prints
what happened to each event: files by fate, Polyv calls with their taskIds, and the quota.
The daily limit is small (12 files by default) so the demo also shows files being deferred;
then the clock moves to the next quota day and the scheduled drain submits them. Last, Polyv's own
callbacks: an upload the simulator transcodes, its signed notifications to the callback endpoint
on loopback, the queue, the prewarm function; one forged callback, refused; one replayed, answered
"already received". Then two Polyv accounts in one deployment, each filling its own quota.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import json
import os
import sys
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from polyv_prewarm.events import EventKind, QuotaAction, StatusAction, classify, parse_action
from polyv_prewarm.lambda_context import LocalLambdaContext

from .local_event_source import LocalEventSource
from .local_http_api import LocalHttpApi
from .polyv_simulator import callback, deliver
from .stack import QUOTA_TIMEZONE, ROOT, USERID, DevStack, template_default
from .timeline import Timeline

EVENTS = ROOT / "events"

#: Every part of the demo starts at this hour (in the quota's time zone) of a quota day of its
#: own: the story is the same whatever the hour it runs at (the day's outlook, the reserve's
#: release and the late sweeps read the hour; a part started late in the evening would cross
#: midnight).
STORY_HOUR = 10
#: The faults run with the template's default limit: on a 12-file day the day's outlook keeps a
#: re-send of a file in doubt for the late sweeps (domain/quota.py), which is another story.
FAULTS_DAILY_LIMIT = int(template_default("DailyFileLimit"))

# Run after the clock moves to the next quota day, in this order; every other file runs first.
NEXT_DAY = ("scheduled-drain.json", "action-status.json", "action-quota.json")

# The videos Polyv "has" in the demo: every vid in events/ of the demo account, except
# e6b23c6f51ffffffffffffffffffffff_e (so Polyv answers "illeagal vid"), and one video that was
# transcoded without its 超清 (3) bitrate (so Polyv answers "bitrate does not exist").
CATALOGUE: dict[str, tuple[int, ...]] = {
    "e6b23c6f513fbe025b94efdd10d7ab47_e": (1, 2, 3),
    "e6b23c6f51a1c2d3e4f5a6b7c8d9e0f1_e": (1, 2, 3),
    "e6b23c6f5100aa11bb22cc33dd44ee55_e": (1, 2, 3),
    "e6b23c6f51f00d5eedcafe0123456789_e": (1, 2, 3),
    "e6b23c6f5112ab34cd56ef7890abcdef_e": (1, 2, 3),
    "e6b23c6f519876543210fedcba987654_e": (1, 2, 3),
    "e6b23c6f517777aaaa8888bbbb9999cc_e": (1, 2, 3),
    "e6b23c6f51deadbeef00112233445566_e": (1, 2),
}


def capture_logs(handler_module: Any) -> io.StringIO:
    """Send the handler's structured (JSON) log lines to a buffer the report reads."""
    buffer = io.StringIO()
    for log_handler in handler_module.logger.handlers:
        log_handler.setStream(buffer)
    return buffer


def log_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    records = []
    for line in buffer.getvalue().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    buffer.seek(0)
    buffer.truncate()
    return records


def describe(
    name: str,
    event: dict[str, Any],
    outcome: Any,
    error: BaseException | None,
    logs: list[dict[str, Any]],
    new_tasks: list[Any],
) -> list[str]:
    """What one event came to. The event says which answer the handler gives (an action's, a
    batch response, or a report's summary), so each answer is read by its own function."""
    lines = [f"── {name}"]
    kind = classify(event)
    if kind is EventKind.ACTION and error is None:
        action = parse_action(event)
        if isinstance(action, QuotaAction):
            return lines + _quota_lines(outcome)
        if isinstance(action, StatusAction):
            return lines + _status_lines(outcome)
    if kind is EventKind.SCHEDULED and error is None:
        return [*lines, f"   ignored: {outcome['ignored']}"]
    # a report: the answer's summary, or (an SQS batch answers batchItemFailures) the logged one
    summary = outcome if isinstance(outcome, dict) and "counts" in outcome else None
    summary = summary or next((r.get("summary") for r in logs if "summary" in r), None)
    if summary:
        lines += _report_lines(summary)
    lines += _logged_lines(logs)
    lines += [f"   Polyv call: {len(task.files)} files -> taskId {task.task_id}" for task in new_tasks]
    if kind is EventKind.SQS and error is None:
        failed = [f["itemIdentifier"] for f in outcome["batchItemFailures"]]
        lines.append(f"   batchItemFailures: {failed or 'none'}")
    if error is not None:
        lines.append(f"   invocation error: {type(error).__name__}: {error}")
    return lines


def _report_lines(summary: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {fate}" for fate, n in summary.get("counts", {}).items()) or "no files"
    lines = [f"   files: {counts}"]
    if summary.get("dryRun"):
        planned = Counter(f["call"] for f in summary["files"] if f["fate"] == "planned")
        lines.append(f"   dry run: would make {len(planned)} call(s): {dict(planned)}")
    if "backlog" in summary:
        lines.append(f"   backlog now: {summary['backlog']['files']} files")
    return lines


def _logged_lines(logs: list[dict[str, Any]]) -> list[str]:
    """The log lines a reader wants to see: rejections, malformed messages, ignored records (the
    function logs each kind once per invocation, with a count and a few examples)."""
    lines = []
    for record in logs:
        if record.get("message") == "malformed message":
            lines.append(f"   malformed message: {record.get('message_id', '')} — {record.get('error')}")
        elif record.get("message") in ("files rejected", "ignored"):
            for example in record.get("examples", []):
                what = example.get("vid") or example.get("s3_key") or example.get("message_id", "")
                lines.append(f"   {record['message']}: {what} — {example.get('reason')}")
            if record.get("count", 0) > len(record.get("examples", [])):
                lines.append(f"   ... {record['count']} in all")
    return lines


def _quota_lines(quota: dict[str, Any]) -> list[str]:
    backlog = quota["backlog"]
    return [
        f"   quota {quota['day']}: used {quota['used']} of {quota['limit']}, "
        f"backlog {backlog['files']} files (oldest {backlog['oldestDeferredAt']})"
    ]


def _status_lines(status: dict[str, Any]) -> list[str]:
    lines = []
    for day, by_br in status["days"].items():
        states = ", ".join(f"brIndex {br}: {e['state']}" for br, e in by_br.items())
        lines.append(f"   {status['vid']} on {day}: {states}")
    if status["deferred"]:
        lines.append(f"   still deferred: brIndex {', '.join(status['deferred'])}")
    return lines


FAULT_VIDS = [f"{USERID}fa{i:020x}_e" for i in range(4)]


def show_faults(stack: DevStack, app: Any) -> None:
    """Each scenario sends one new file and prints its fate, the ledger's entry and both counts."""
    assert stack.polyv is not None
    assert stack.aws_faults is not None
    from polyv_prewarm import runtime

    stack.move_to_hour(STORY_HOUR, next_day=True)  # a quota day of their own: the days before are spent
    stack.daily_limit = stack.polyv.daily_limit = FAULTS_DAILY_LIMIT
    os.environ.update(stack.env())
    runtime.current.cache_clear()  # the function reads the new limit, as a redeploy would
    print(
        f"\n── faults (the ledger between the happy-path steps), on the quota day {stack.polyv.today()}, "
        f"limit {FAULTS_DAILY_LIMIT}"
    )
    for vid in FAULT_VIDS:
        stack.polyv.add_video(vid, (1,))
    scenarios = [
        ("DynamoDB commits a claim, its answer is lost, the SDK sends it again", "lose_answer", None),
        ("Polyv answers 200 without a taskId: in doubt, counted again, re-sent once", None, "no_task_id"),
        ("DynamoDB throttles the record 7 times: recorded on a later attempt", "throttle", None),
    ]
    for n, (title, aws_fault, polyv_fault) in enumerate(scenarios):
        if aws_fault == "lose_answer":
            stack.aws_faults.inject("lose_answer", "TransactWriteItems")
        elif aws_fault == "throttle":
            stack.aws_faults.inject("throttle", "TransactWriteItems", count=7, after=1)
        if polyv_fault is not None:
            stack.polyv.inject(polyv_fault)
        used_before = stack.polyv.used(stack.userid)
        answer = app.lambda_handler({"vids": [FAULT_VIDS[n]], "brIndexes": [1]}, LocalLambdaContext())
        _show_file(stack, title, answer, used_before)
    # Killed after Polyv accepted: the claim keeps its lease; once it ends, the file is in doubt.
    # (The tests kill a child process for real; here the call is made, then the claim is written
    # back as the killed invocation would have left it: claimed, leased until its deadline + 30 s.)
    current = runtime.current()
    report = current.accounts.prewarm([_request(FAULT_VIDS[3])], deadline=current.deadline(16_000))
    fates = [r.fate.value for r in report.results]
    if fates != ["submitted"]:  # the claim to write back is the one a submitted call leaves
        raise RuntimeError(f"the demo's call before the kill was not submitted: {fates}")
    stack.client("dynamodb").update_item(
        TableName=stack.tables["QuotaTable"],
        Key={"pk": {"S": f"DAY#{stack.polyv.today()}"}, "sk": {"S": f"FILE#{FAULT_VIDS[3]}#1"}},
        UpdateExpression="SET s = :c, l = :lease",
        ConditionExpression="attribute_exists(pk)",  # the call's own entry, never a new one
        ExpressionAttributeValues={
            ":c": {"S": "claimed"},
            ":lease": {"N": str(int((stack.now().timestamp() + 46) * 1000))},
        },
    )
    used_before = stack.polyv.used(stack.userid)
    held = app.lambda_handler({"vids": [FAULT_VIDS[3]], "brIndexes": [1]}, LocalLambdaContext())
    _show_file(
        stack,
        "An invocation killed after Polyv accepted (its claim as SIGKILL leaves it); asked again at once",
        held,
        used_before,
    )
    stack.seconds_offset += 720  # the SQS visibility timeout: the lease has ended
    used_before = stack.polyv.used(stack.userid)
    again = app.lambda_handler({"vids": [FAULT_VIDS[3]], "brIndexes": [1]}, LocalLambdaContext())
    _show_file(stack, "...and redelivered after the visibility timeout", again, used_before)
    stack.aws_faults.clear()


OUTAGE_VIDS = [f"{USERID}0da6e{i:017x}_e" for i in range(2)]


def show_outage(stack: DevStack, app: Any, buffer: io.StringIO) -> None:
    """Polyv down for two hours, on a simulated timeline (devstack/timeline.py: the template's
    schedules and queue settings, the clock moved a minute at a time): the messages succeed, their
    files wait in the backlog, and the recovery drain sends them once Polyv answers again."""
    assert stack.polyv is not None
    stack.move_to_hour(STORY_HOUR, next_day=True)  # a quota day of its own
    timeline = Timeline(stack, app.lambda_handler)
    start = timeline.now()
    back = start + timedelta(hours=2)
    local = start.astimezone(QUOTA_TIMEZONE)
    print(
        f"\n── Polyv answers 503 from {local:%H:%M} to {back.astimezone(QUOTA_TIMEZONE):%H:%M} "
        f"({local:%Y-%m-%d}, {QUOTA_TIMEZONE}), on a simulated timeline"
    )
    for vid in OUTAGE_VIDS:
        stack.polyv.add_video(vid, (1, 2))
    stack.polyv.outage(start.timestamp(), back.timestamp(), status=503)
    before, asked, dead = len(stack.polyv.tasks()), len(stack.polyv.requests_at()), dead_letters(stack)
    timeline.send({"vids": OUTAGE_VIDS, "brIndexes": [1, 2]}, {"vid": OUTAGE_VIDS[0], "brIndex": 1})
    timeline.run_until(back + timedelta(minutes=30))
    log_records(buffer)  # the function's log lines of those hours: not printed
    failed = sum(len(d.failed) for _, d in timeline.deliveries)
    print(
        f"   the queue delivered {sum(d.messages for _, d in timeline.deliveries)} message(s); "
        f"handed back: {failed}; the files waited in the backlog"
    )
    probes = len([t for t in stack.polyv.requests_at()[asked:] if t < back.timestamp()])
    runs = sum(1 for _, name in timeline.fired if name == "RecoveryDrain")
    print(f"   recovery drains run: {runs} (every 5 minutes); Polyv asked {probes} times while down")
    for task in stack.polyv.tasks()[before:]:
        at = datetime.fromtimestamp(task.at, QUOTA_TIMEZONE)
        print(f"   Polyv call: {len(task.files)} files at {at:%H:%M:%S} -> taskId {task.task_id}")
    print(f"   dead-lettered by the outage: {dead_letters(stack) - dead} message(s)")


def dead_letters(stack: DevStack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queues["PrewarmDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


CALLBACK_VID = f"{USERID}c0ffee0000111122223333_e"  # uploaded to Polyv during the demo


def show_callbacks(stack: DevStack, app: Any, buffer: io.StringIO, *, verbose: bool) -> None:
    """Polyv's own callbacks, end to end: an upload Polyv transcodes (two definitions, a third
    failed), its signed notifications to the endpoint, the queue, the prewarm function, Polyv; and
    one forged callback, refused."""
    assert stack.polyv is not None
    callback_app = importlib.import_module("callback_app")  # the endpoint's Lambda entry
    api = LocalHttpApi(callback_app.lambda_handler).start()
    source = LocalEventSource(stack.client("sqs"), stack.queues["PrewarmQueue"], app.lambda_handler)
    try:
        print(f"\n── Polyv's callbacks, to the endpoint on {api.url} (in AWS: the PolyvCallbackUrl output)")
        print(f"   an upload of {CALLBACK_VID}; Polyv transcodes 流畅 (1) and 高清 (2), 超清 (3) fails")
        before = len(stack.polyv.tasks())
        sent = stack.polyv.transcode(stack.userid, CALLBACK_VID, (1, 2), failed=(3,), callback_url=api.url)
        forged = callback("encode", CALLBACK_VID, "not-the-secretkey", format="mp4", df=3)
        sent.append(
            (forged._replace(kind="encode, forged (signed with a wrong secretkey)"), deliver(api.url, forged))
        )
        # the endpoint and the prewarm function log through one Powertools logger (one service)
        answers = [
            r for r in _logs(buffer, verbose) if str(r.get("message", "")).startswith("Polyv callback")
        ]
        for (notification, status), record in zip(sent, answers, strict=True):
            print(f"   Polyv -> {notification.method} {notification.kind}: HTTP {status}, {record['reason']}")
        for delivery in source.drain():
            summaries = [r["summary"] for r in _logs(buffer, verbose) if "summary" in r]
            counts = ", ".join(f"{n} {fate}" for s in summaries for fate, n in s["counts"].items())
            print(
                f"   the queue delivered {delivery.messages} message(s) to the prewarm function: "
                f"{counts}; handed back: {delivery.failed or 'none'}"
            )
        for task in stack.polyv.tasks()[before:]:
            brs = sorted(br for _, br in task.files)
            print(f"   Polyv call: {len(task.files)} files, brIndex {brs} -> taskId {task.task_id}")
        asked = stack.polyv.lookups()
        print(f"   TranscodeComplete's definitions were taken from Polyv's get-video-msg: {asked}")
        # a captured URL sent again (a proxy's log, a browser history): acted on once, ever
        encode = next(n for n, _ in sent if n.kind == "encode")
        calls = len(stack.polyv.tasks())
        status = deliver(api.url, encode)
        record = next(
            r for r in _logs(buffer, verbose) if str(r.get("message", "")).startswith("Polyv callback")
        )
        source.drain()
        print(
            f"   the same encode URL replayed: HTTP {status}, {record['reason']} "
            f"(Polyv calls since: {len(stack.polyv.tasks()) - calls})"
        )
    finally:
        api.stop()


LOST_VID = f"{USERID}1057500000000000000000_e"  # uploaded during the demo; its callbacks never arrive


def show_reconcile(stack: DevStack, app: Any, buffer: io.StringIO) -> None:
    """A video whose callbacks were lost (the endpoint never called), found in Polyv's own list of
    new videos by the next reconcile and warmed; the run after it finds nothing more."""
    assert stack.polyv is not None
    stack.move_to_hour(STORY_HOUR, next_day=True)  # a quota day of its own
    app.lambda_handler({"action": "reconcile"}, LocalLambdaContext())  # the account's first look
    stack.polyv.add_video(LOST_VID, (1, 2))
    print(f"\n── a lost callback: {LOST_VID} uploaded and transcoded (流畅, 高清), no callback arrives")
    before = len(stack.polyv.tasks())
    for minutes in (15, 30):
        stack.seconds_offset += 15 * 60
        answer = app.lambda_handler({"action": "reconcile"}, LocalLambdaContext())
        log_records(buffer)
        listed = sum(r["listed"] for r in answer["reconcile"].values())
        found = answer["filesFound"]
        print(f"   reconcile {minutes} min later: {listed} video(s) listed, {found} file(s) no event brought")
    for task in stack.polyv.tasks()[before:]:
        brs = sorted(br for _, br in task.files)
        print(f"   Polyv call: {len(task.files)} files, brIndex {brs} -> taskId {task.task_id}")


OTHER_ACCOUNT = "b7c41a09d2"  # a group's 分帐号: a userid, a secretkey and a quota of its own


def show_accounts(stack: DevStack, app: Any, buffer: io.StringIO) -> None:
    """Two Polyv accounts in one deployment (docs/ledger.md, "Accounts"): the secret holds both,
    one invocation carries files of each, every Polyv call is one account's, signed with its own
    secretkey, and each account fills its own quota; the next day's drain sends what each
    deferred; a callback for one account's vid signed with the other's secretkey is refused."""
    assert stack.polyv is not None
    from polyv_prewarm import callback_runtime, runtime

    stack.move_to_hour(STORY_HOUR, next_day=True)  # a quota day of its own
    stack.add_account(OTHER_ACCOUNT)
    runtime.current.cache_clear()  # a new container: the secret read afresh
    callback_runtime.current.cache_clear()
    limit, accounts = stack.daily_limit, (stack.userid, OTHER_ACCOUNT)
    vids = {u: [f"{u}acc{i:019x}_e" for i in range(limit + 4)] for u in accounts}
    for each in vids.values():
        for vid in each:
            stack.polyv.add_video(vid, (1,))
    print(
        f"\n── two Polyv accounts in one deployment: {' and '.join(accounts)}, {limit} files a day "
        f"each ({stack.polyv.today()}); the secret holds both, each with its own secretkey"
    )
    before = len(stack.polyv.tasks())
    files = [{"vid": vid, "brIndex": 1} for each in vids.values() for vid in each]
    answer = app.lambda_handler({"videos": files}, LocalLambdaContext())
    log_records(buffer)
    print(f"   one invocation of {len(files)} files, {limit + 4} of each account: {_counts(answer)}")
    _account_lines(stack, answer, before)
    stack.move_to_hour(STORY_HOUR, next_day=True)
    before = len(stack.polyv.tasks())
    answer = app.lambda_handler({"action": "drain"}, LocalLambdaContext())
    log_records(buffer)
    print(f"   the next day's drain ({stack.polyv.today()}): {_counts(answer)}")
    _account_lines(stack, answer, before)
    callback_app = importlib.import_module("callback_app")
    api = LocalHttpApi(callback_app.lambda_handler).start()
    try:
        theirs = vids[OTHER_ACCOUNT][0]
        forged = callback("encode", theirs, stack.secretkey, format="mp4", df=1)
        status = deliver(api.url, forged)
        reason = next(r["reason"] for r in log_records(buffer) if "reason" in r)
        print(
            f"   a callback for {OTHER_ACCOUNT}'s vid signed with {stack.userid}'s secretkey: "
            f"HTTP {status}, {reason}"
        )
    finally:
        api.stop()


def _counts(summary: dict[str, Any]) -> str:
    return ", ".join(f"{n} {fate}" for fate, n in summary["counts"].items()) or "no files"


def _account_lines(stack: DevStack, summary: dict[str, Any], before: int) -> None:
    assert stack.polyv is not None
    for task in stack.polyv.tasks()[before:]:
        owners = sorted({vid[:10] for vid, _ in task.files})
        print(f"   Polyv call signed by {task.userid}: {len(task.files)} files, vids of {', '.join(owners)}")
    for userid, each in summary["accounts"].items():
        quota = each["quota"]
        print(
            f"   account {userid}: {_counts(each)}; quota used {quota['used']} of {quota['limit']}, "
            f"Polyv counted {stack.polyv.used(userid)}"
        )


def _logs(buffer: io.StringIO, verbose: bool) -> list[dict[str, Any]]:
    records = log_records(buffer)
    if verbose:
        for record in records:
            print("   " + json.dumps(record, ensure_ascii=False))
    return records


def _request(vid: str) -> Any:
    from polyv_prewarm.domain.model import FileRequest, Origin

    return FileRequest(vid, 1, Origin("direct"))


def _show_file(stack: DevStack, title: str, answer: dict[str, Any], used_before: int) -> None:
    assert stack.polyv is not None
    file = answer["files"][0]
    day = stack.polyv.today()
    entry = (
        stack.client("dynamodb")
        .get_item(
            TableName=stack.tables["QuotaTable"],
            Key={"pk": {"S": f"DAY#{day}"}, "sk": {"S": f"FILE#{file['vid']}#1"}},
            ConsistentRead=True,
        )
        .get("Item", {"s": {"S": "none"}})
    )
    print(f"── {title}")
    print(f"   fate: {file['fate']}{' — ' + file['reason'] if file.get('reason') else ''}")
    polyv_used = stack.polyv.used(stack.userid)
    print(f"   ledger entry: {entry['s']['S']}; Polyv accepted {polyv_used - used_before} now")
    print(f"   quota {day}: DynamoDB counter {stack.quota_used(day)}, Polyv counted {polyv_used}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--verbose", action="store_true", help="also print the handler's JSON log lines")
    parser.add_argument("--daily-limit", type=int, default=12, help="files per quota day (default 12)")
    parser.add_argument(
        "--faults",
        action="store_true",
        help="then show the ledger through faults: a lost DynamoDB answer, a 200 without a taskId, "
        "a throttled record, an invocation killed after Polyv accepted",
    )
    args = parser.parse_args(argv)

    stack = DevStack(daily_limit=args.daily_limit).start()
    try:
        assert stack.polyv is not None
        story_starts = stack.move_to_hour(STORY_HOUR)
        for vid, brs in CATALOGUE.items():  # uploaded a month ago: not new to the reconcile
            stack.polyv.add_video(vid, brs, uploaded_at=stack.now().timestamp() - 30 * 86_400)
        os.environ.update(stack.env())
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        sys.path.insert(0, str(ROOT / "functions" / "prewarm"))
        app = importlib.import_module("app")  # the Lambda entry, as template.yaml names it
        handler = importlib.import_module("polyv_prewarm.handler")
        from polyv_prewarm import runtime

        # the function runs on the stack's clock, so the demo can move to the next quota day
        runtime.current = functools.cache(lambda: runtime.build_runtime(os.environ, clock=stack.now))
        buffer = capture_logs(handler)

        print(f"Local stack: moto server {stack.aws_endpoint}, Polyv simulator {stack.polyv.url}")
        event_files = [p for p in sorted(EVENTS.glob("*.json")) if p.name not in NEXT_DAY]
        event_files += [EVENTS / "action-quota.json"] + [EVENTS / name for name in NEXT_DAY]
        print(
            f"Account {stack.userid}, limit {stack.daily_limit}/day; {len(event_files)} events from events/; "
            f"the stack's clock starts at {story_starts:%Y-%m-%d %H:%M} ({story_starts.tzinfo})\n"
        )
        for i, path in enumerate(event_files):
            if i == len(event_files) - len(NEXT_DAY):
                stack.move_to_hour(STORY_HOUR, next_day=True)
                print(f"\n── the next quota day begins: {stack.polyv.today()} ({QUOTA_TIMEZONE})")
            event = json.loads(path.read_text(encoding="utf-8"))
            before = len(stack.polyv.tasks())
            outcome: Any = None
            error: BaseException | None = None
            try:
                outcome = app.lambda_handler(event, LocalLambdaContext())
            except Exception as exc:  # an invocation error is part of what the demo shows
                error = exc
            logs = log_records(buffer)
            if args.verbose:
                for record in logs:
                    print("   " + json.dumps(record, ensure_ascii=False))
            print("\n".join(describe(path.name, event, outcome, error, logs, stack.polyv.tasks()[before:])))
        print()
        for days_back in (1, 0):
            day = (stack.now() - timedelta(days=days_back)).astimezone(QUOTA_TIMEZONE).date().isoformat()
            print(
                f"Quota day {day}: DynamoDB counter {stack.quota_used(day)}, "
                f"Polyv counted {stack.polyv.used(stack.userid, day)}, limit {stack.daily_limit}"
            )
        show_callbacks(stack, app, buffer, verbose=args.verbose)
        show_outage(stack, app, buffer)
        show_reconcile(stack, app, buffer)
        show_accounts(stack, app, buffer)
        print()
        tasks = stack.polyv.tasks()
        files = [f for t in tasks for f in t.files]
        print(
            f"Polyv calls accepted: {len(tasks)}; files prewarmed: {len(files)} ({len(set(files))} distinct)"
        )
        answers = stack.polyv.answers()
        refused = [a for a in answers if a != "success" and not a.startswith("[outage]")]
        print(f"Polyv refusals (each isolated by bisection): {refused or 'none'}")
        print(f"Polyv's outage answers (HTTP 503): {sum(a.startswith('[outage]') for a in answers)}")
        if args.faults:
            show_faults(stack, app)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
