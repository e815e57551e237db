"""The crash and fault matrix, over real HTTP (moto's server behind the AWS fault proxy, and the
Polyv simulator). Each case runs the real handler in a child process with a real Lambda deadline,
kills it (SIGKILL) where the case says, then redelivers its messages after the queue's
visibility timeout (the stack's clock moves ahead by template.yaml's VisibilityTimeout), until
SQS would have nothing left; files waiting in the backlog are sent by the recovery drain, run at
its schedule's period (template.yaml's RecoveryDrain).

Then the invariants, checked against what the simulator recorded:
* every file is accepted at least once, or rejected with Polyv's reason;
* a file is accepted twice only when its earlier calls' outcome was unknown to the caller;
* Polyv is never asked for more than its daily limit (it never refuses a call for the limit);
* nothing is reported ``duplicate`` that Polyv did not accept (or refuse);
* the ledger never counts fewer files for a day than Polyv did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cfnlint.decode import cfn_yaml

from devstack.polyv_simulator import DAILY_LIMIT
from devstack.stack import QUOTA_TIMEZONE, TEMPLATE, DevStack
from devstack.timeline import template_schedules
from tests.helpers import ROOT, set_limit, sqs_event, vid

#: The late sweeps' hour (template.yaml's LateSweep, from ReserveReleaseHour): the only one whose
#: calls may ask Polyv beyond the function's own count.
SWEEP_HOUR = int(cfn_yaml.load(str(TEMPLATE))["Parameters"]["ReserveReleaseHour"]["Default"])

pytestmark = pytest.mark.integration

_QUEUE = cfn_yaml.load(str(TEMPLATE))["Resources"]["PrewarmQueue"]["Properties"]
VISIBILITY_TIMEOUT = int(_QUEUE["VisibilityTimeout"])  # SQS hands a killed invocation's messages back then
POLYV_REFUSALS = ("illeagal vid", "bitrate does not exist")
File = tuple[str, int]


@dataclass
class Invocation:
    answer: dict[str, Any] | None  # None: killed
    stderr: str

    @property
    def failed_messages(self) -> set[str]:
        assert self.answer is not None
        return {f["itemIdentifier"] for f in self.answer.get("batchItemFailures", [])}


STARTUP_LIMIT_S = 120  # a child's imports and set-up, however busy the machine
RECOVERY_PERIOD = next(s.period for s in template_schedules() if s.name == "RecoveryDrain")


class Harness:
    def __init__(self, stack: DevStack, tmp_path: Path) -> None:
        self.stack = stack
        self.tmp = tmp_path
        self.reports = tmp_path / "reports.jsonl"
        self.env: dict[str, str] = {}
        self._n = 0

    def invoke(
        self, event: dict[str, Any], *, timeout: float = 30.0, kill_when: Callable[[], bool] | None = None
    ) -> Invocation:
        """One invocation in a child process. Killed by SIGKILL when ``kill_when`` says so, or at
        its deadline, as Lambda would. The deadline runs from the moment the child is ready (its
        imports done, as Lambda's runs from the handler's start), which it tells through a file:
        a slow start on a busy machine takes nothing from the invocation's time."""
        self._n += 1
        path = self.tmp / f"event-{self._n}.json"
        path.write_text(json.dumps(event))
        ready = self.tmp / f"ready-{self._n}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "prewarm")]),
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
            **self.env,
        }
        command = [sys.executable, "-m", "tests.integration.invoke_worker", str(path)]
        command += ["--offset-seconds", str(self.stack.offset().total_seconds()), "--timeout", str(timeout)]
        command += ["--reports", str(self.reports), "--ready-file", str(ready)]
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline, started = None, time.time()
        killed = False
        while proc.poll() is None:
            if deadline is None and ready.exists():
                deadline = float(ready.read_text())  # the child's own: its Lambda context's
            elif deadline is None and time.time() - started > STARTUP_LIMIT_S:
                deadline = time.time()  # it never got ready: a hung start is killed too
            if (kill_when is not None and kill_when()) or (deadline is not None and time.time() >= deadline):
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        out, err = proc.communicate(timeout=60)
        if killed:
            return Invocation(None, err)
        assert proc.returncode == 0, err[-3000:]
        return Invocation(json.loads(out.strip().splitlines()[-1]), err)

    def redeliver_until_done(self, event: dict[str, Any], failed: Iterable[str], *, rounds: int = 8) -> None:
        """SQS hands the failed messages (all of a killed invocation's) back after the visibility
        timeout, until none fails."""
        pending = set(failed)
        for _ in range(rounds):
            if not pending:
                return
            self.stack.seconds_offset += VISIBILITY_TIMEOUT
            retry = {"Records": [r for r in event["Records"] if r["messageId"] in pending]}
            pending = self.invoke(retry).failed_messages
        raise AssertionError(f"messages still handed back after {rounds} redeliveries: {sorted(pending)}")

    def recover_until_done(self, *, rounds: int = 8, timeout: float = 30.0) -> None:
        """The recovery schedule fires (every RECOVERY_PERIOD) until no file waits in the backlog."""
        for _ in range(rounds):
            if not self.stack.backlog_keys():
                return
            self.stack.seconds_offset += RECOVERY_PERIOD
            self.invoke({"action": "recover", "source": "schedule"}, timeout=timeout)
        raise AssertionError(
            f"files still waiting after {rounds} recovery drains: {self.stack.backlog_keys()}"
        )

    def results(self) -> list[dict[str, Any]]:
        if not self.reports.exists():
            return []
        return [f for line in self.reports.read_text().splitlines() for f in json.loads(line)["files"]]


def all_ids(event: dict[str, Any]) -> list[str]:
    return [r["messageId"] for r in event["Records"]]


def check_invariants(
    stack: DevStack, harness: Harness, wanted: set[File], bad: set[File] = frozenset()
) -> None:
    assert stack.polyv is not None
    acceptances: dict[File, list[Any]] = defaultdict(list)
    for task in stack.polyv.tasks():
        for file in task.files:
            acceptances[file].append(task)
    results = harness.results()
    rejected_by_polyv = {
        (r["vid"], r["brIndex"])
        for r in results
        if r["fate"] == "rejected" and r.get("reason") in POLYV_REFUSALS
    }
    for file in wanted - bad:
        assert acceptances[file], f"{file} was never accepted by Polyv"
    for file in bad:
        assert file in rejected_by_polyv, f"{file} was not rejected with Polyv's reason"
        assert not acceptances[file]
    for file, tasks in acceptances.items():
        assert all(t.faulted for t in tasks[:-1]), f"{file} accepted {len(tasks)} times after a clear answer"
    # Polyv refuses a call for the daily limit only when the late sweeps ask beyond the function's
    # own count (calls in doubt hold it at the limit: docs/ledger.md, "Every spare unit spent"),
    # never a call claimed within the count
    for when, _, outcome in stack.polyv.asked():
        if outcome == DAILY_LIMIT:
            hour = datetime.fromtimestamp(when, QUOTA_TIMEZONE).hour
            assert hour == SWEEP_HOUR, f"Polyv had to refuse a call for the daily limit at {hour}:00"
    for r in results:
        if r["fate"] == "duplicate" and r.get("reason") != "already requested in this invocation":
            file = (r["vid"], r["brIndex"])
            assert acceptances[file] or file in rejected_by_polyv, (
                f"{file} reported duplicate, never accepted"
            )
    for day in {t.day for t in stack.polyv.tasks()}:
        assert stack.quota_used(day) >= stack.polyv.used(stack.userid, day), f"ledger under-counts {day}"


def pipeline_event(
    stack: DevStack, messages: int, per_message: int, start: int = 0
) -> tuple[dict[str, Any], set[File]]:
    assert stack.polyv is not None
    bodies, wanted = [], set()
    for m in range(messages):
        vids = [vid(start + m * per_message + i) for i in range(per_message)]
        for v in vids:
            stack.polyv.add_video(v)
            wanted.add((v, 1))
        bodies.append({"vids": vids, "brIndexes": [1]})
    return sqs_event(*bodies, ids=[f"m{m}" for m in range(messages)]), wanted


@pytest.fixture
def harness(stack: DevStack, tmp_path: Path) -> Harness:
    return Harness(stack, tmp_path)


# -- the matrix ------------------------------------------------------------------------------------


def test_the_first_request_lost_and_the_invocation_killed(stack, harness):
    event, wanted = pipeline_event(stack, 3, 10)
    stack.polyv.inject("blackhole", delay=60)
    harness.env = {"POLYV_ATTEMPTS": "1", "POLYV_READ_TIMEOUT_SECONDS": "20"}
    first = harness.invoke(event, timeout=25, kill_when=lambda: "[fault] blackhole" in stack.polyv.answers())
    assert first.answer is None
    assert stack.polyv.tasks() == []  # the request never reached Polyv
    harness.env = {}
    harness.redeliver_until_done(event, all_ids(event))
    check_invariants(stack, harness, wanted)
    assert len(stack.polyv.accepted_files()) == 30  # sent once: the lost call was never accepted


def test_polyv_accepted_and_the_invocation_killed_before_the_answer(stack, harness):
    event, wanted = pipeline_event(stack, 2, 20)
    stack.polyv.inject("slow", process=True, delay=60)
    first = harness.invoke(event, timeout=30, kill_when=lambda: len(stack.polyv.tasks()) >= 1)
    assert first.answer is None
    harness.redeliver_until_done(event, all_ids(event))
    check_invariants(stack, harness, wanted)
    assert len(stack.polyv.tasks()) == 2  # in doubt, so sent again: the only case allowed twice


@pytest.mark.parametrize(
    ("kind", "count"),
    [("error", None), ("throttle", 8)],
    ids=["http-500-for-good", "throttled-for-a-while"],
)
def test_the_store_failing_after_the_first_accepted_call_of_a_250_file_batch(stack, harness, kind, count):
    assert stack.aws_faults is not None
    event, wanted = pipeline_event(stack, 10, 25)  # 250 files: chunks of 100, 100, 50
    # the first chunk's two claim transactions go through; every write after them meets the fault
    stack.aws_faults.inject(kind, "TransactWriteItems", count=count, after=2)
    first = harness.invoke(event, timeout=40)
    assert len(stack.polyv.tasks()) >= 1
    if kind == "error":
        # the first chunk's record could not be written: its files keep Polyv's fate (submitted),
        # so their messages are not handed back; everything not yet sent is
        assert first.failed_messages == {f"m{m}" for m in range(4, 10)}
    stack.aws_faults.clear()
    harness.redeliver_until_done(event, first.failed_messages)
    check_invariants(stack, harness, wanted)
    assert len(stack.polyv.accepted_files()) == 250  # none twice


def test_claim_answers_lost_after_commit_and_conflicts_are_ours_not_duplicates(stack, harness):
    assert stack.aws_faults is not None
    event, wanted = pipeline_event(stack, 4, 30)
    stack.aws_faults.inject("lose_answer", "TransactWriteItems", count=1)  # the SDK sends it again
    stack.aws_faults.inject("conflict", "TransactWriteItems", count=2, after=1)
    first = harness.invoke(event)
    assert first.failed_messages == set()
    assert ("lose_answer", "TransactWriteItems") in stack.aws_faults.met
    assert [r["fate"] for r in harness.results()].count("submitted") == 120
    check_invariants(stack, harness, wanted)
    assert len(stack.polyv.accepted_files()) == 120


def test_the_secret_unreadable_while_it_is_read_again_after_a_refused_signature(stack, harness):
    assert stack.aws_faults is not None
    assert stack.polyv is not None
    event, wanted = pipeline_event(stack, 2, 5)
    stack.polyv.add_account(stack.userid, "rotated-in-polyv-only")  # Polyv now refuses our sign
    stack.aws_faults.inject("error", "GetSecretValue", count=None, after=1)  # the re-read fails
    first = harness.invoke(event)
    assert first.failed_messages == set()  # the files wait in the backlog: the messages succeed
    assert stack.polyv.tasks() == []
    assert stack.quota_used(stack.polyv.today()) == 0  # parked: the claims were released
    assert {r["fate"] for r in harness.results()} == {"deferred"}
    stack.aws_faults.clear()
    stack.rotate_secret()  # the operator finishes the rotation
    harness.recover_until_done()
    check_invariants(stack, harness, wanted)


def test_the_deadline_reached_during_bisection(stack, harness):
    assert stack.polyv is not None
    good = [vid(i) for i in range(20)]
    unknown = [vid(0xBAD000 + i) for i in range(40)]  # Polyv does not know them: 'illeagal vid'
    assert not set(unknown) & set(stack.polyv.state.videos)  # the simulator keeps videos across tests
    for v in good:
        stack.polyv.add_video(v)
    mixed = [v for pair in zip(unknown[::2], unknown[1::2], good, strict=True) for v in pair]
    event = sqs_event({"vids": mixed, "brIndexes": [1]}, ids=["m0"])
    stack.polyv.latency = 0.25
    harness.env = {
        "POLYV_ATTEMPTS": "1",
        "POLYV_CONNECT_TIMEOUT_SECONDS": "0.5",
        # the deadline, not the bisection budgets, must stop it (test_hostile_input has those)
        "BISECTION_CALLS_PER_CHUNK": "10000",
        "BISECTION_CALLS_PER_INVOCATION": "10000",
    }
    try:
        first = harness.invoke(event, timeout=12)
        assert first.answer is not None, "the invocation ran into its deadline"
        assert first.failed_messages == set()  # it stopped calling in time and parked the rest
        assert stack.backlog_keys()
        harness.recover_until_done(rounds=12, timeout=12)
    finally:
        stack.polyv.latency = 0.0
    check_invariants(stack, harness, {(v, 1) for v in good + unknown}, bad={(v, 1) for v in unknown})
    assert len(stack.polyv.accepted_files()) == 20


def test_a_200_without_a_task_id_is_in_doubt(stack, harness):
    event, wanted = pipeline_event(stack, 1, 10)
    stack.polyv.inject("no_task_id")
    first = harness.invoke(event)
    assert first.failed_messages == set()  # re-sent once after counting again, then accepted
    check_invariants(stack, harness, wanted)
    assert len(stack.polyv.tasks()) == 2
    assert stack.quota_used(stack.polyv.today()) == 20  # both attempts counted


def test_a_call_that_straddles_midnight(stack, harness):
    assert stack.polyv is not None
    shanghai = ZoneInfo("Asia/Shanghai")
    now = stack.now().astimezone(shanghai)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=shanghai)
    # The child needs a second or two to start: midnight comes 6 s after it is launched, while
    # Polyv takes 10 s to answer. The claim is made before midnight, the answer comes after it.
    stack.seconds_offset += (midnight - now).total_seconds() - 6.0
    event, wanted = pipeline_event(stack, 1, 1)
    old_day, new_day = now.date().isoformat(), midnight.date().isoformat()
    stack.polyv.latency = 10.0
    harness.env = {"POLYV_ATTEMPTS": "1", "POLYV_READ_TIMEOUT_SECONDS": "15"}
    try:
        harness.invoke(event, timeout=60)
    finally:
        stack.polyv.latency = 0.0
        harness.env = {}
    assert [t.day for t in stack.polyv.tasks()] == [new_day]
    assert stack.quota_used(new_day) == 1  # counted in the day Polyv answered in
    assert stack.quota_used(old_day) == 1  # and the old day keeps its claim (over, never under)
    stack.seconds_offset += 5
    again = harness.invoke(sqs_event({"vids": [vid(0)], "brIndexes": [1]}, ids=["later"]))
    assert again.failed_messages == set()
    assert harness.results()[-1]["fate"] == "duplicate"
    check_invariants(stack, harness, wanted)
    assert len(stack.polyv.tasks()) == 1


def test_a_drain_killed_mid_slice(stack, harness, monkeypatch):
    assert stack.polyv is not None
    set_limit(stack, monkeypatch, 100)
    harness.env = {"DAILY_FILE_LIMIT": "100"}
    event, wanted = pipeline_event(stack, 10, 25)  # 250 files: 100 today, 150 deferred
    assert harness.invoke(event).failed_messages == set()
    assert len(stack.backlog_keys()) == 150
    drain = {"action": "drain", "source": "schedule"}
    stack.day_offset = 1
    stack.polyv.inject("slow", process=True, delay=60)
    killed = harness.invoke(drain, timeout=30, kill_when=lambda: len(stack.polyv.tasks()) >= 2)
    assert killed.answer is None
    stack.seconds_offset += 120  # Lambda retries a failed asynchronous invocation within minutes
    retried = harness.invoke(drain)
    assert retried.answer is not None
    # the killed drain's claims are in doubt: never-sent files go first, they wait as resends
    sweep = {"action": "sweep", "source": "schedule"}
    for day in (1, 2, 3):  # each day's late sweep, and the next days' scheduled drains
        stack.day_offset = day
        if day > 1:
            harness.invoke(drain)
        stack.seconds_offset += 13 * 3600  # 23:00, when the reserve is released
        harness.invoke(sweep)
        stack.seconds_offset -= 13 * 3600
    assert stack.backlog_keys() == []
    check_invariants(stack, harness, wanted)


def test_a_recovery_drain_killed_after_polyv_accepted_its_first_slice(stack, harness):
    """The probe of an outage's end, killed with its answer in flight: its probe lease and claims
    end, the next recovery drain probes again and sends the rest; nothing accepted twice but the
    call whose answer was lost."""
    assert stack.polyv is not None
    event, wanted = pipeline_event(stack, 3, 50)  # 150 files: two slices of the recovery drain
    now = stack.now().timestamp()
    stack.polyv.outage(now, now + 600, status=503)
    assert harness.invoke(event).failed_messages == set()  # they wait in the backlog
    assert len(stack.backlog_keys()) == 150
    stack.seconds_offset += 600 + RECOVERY_PERIOD
    stack.polyv.inject("slow", process=True, delay=60)
    recover = {"action": "recover", "source": "schedule"}
    killed = harness.invoke(recover, timeout=30, kill_when=lambda: len(stack.polyv.tasks()) >= 1)
    assert killed.answer is None
    harness.recover_until_done()
    check_invariants(stack, harness, wanted)
    assert stack.backlog_keys() == []


def test_a_day_of_killed_calls_then_the_next_days_drain_sends_never_sent_files_first(
    stack, harness, monkeypatch
):
    """Calls killed after Polyv accepted them leave their files in doubt; on a day with no room
    left, the redelivery parks those as resends and the never-sent ones as normal deferrals. The
    next day's drain sends every never-sent file before any unit goes to a file in doubt."""
    assert stack.polyv is not None
    set_limit(stack, monkeypatch, 100)
    harness.env = {"DAILY_FILE_LIMIT": "100"}
    event, wanted = pipeline_event(stack, 3, 50)  # 150 files: one call of 100, then no room
    stack.polyv.inject("slow", process=True, delay=60)
    killed = harness.invoke(event, timeout=30, kill_when=lambda: len(stack.polyv.tasks()) >= 1)
    assert killed.answer is None
    in_doubt = set(stack.polyv.tasks()[0].files)
    never_sent = wanted - in_doubt
    harness.redeliver_until_done(event, all_ids(event))  # messages succeed: their files wait
    assert len(stack.backlog_keys()) == 150
    sweep, drain = {"action": "sweep", "source": "schedule"}, {"action": "drain", "source": "schedule"}
    for day in (0, 1, 2):
        stack.day_offset = day
        if day:
            harness.invoke(drain)
        stack.seconds_offset += 13 * 3600  # 23:00: the late sweep
        harness.invoke(sweep)
        stack.seconds_offset -= 13 * 3600
    assert stack.backlog_keys() == []
    check_invariants(stack, harness, wanted)
    later = stack.polyv.tasks()[1:]
    first_for = {f: t.at for t in reversed(later) for f in t.files}
    resent = [first_for[f] for f in in_doubt]
    assert max(first_for[f] for f in never_sent) < min(resent)  # never-sent files first
    assert len(resent) == 100  # and then, from what the days left, the files in doubt
