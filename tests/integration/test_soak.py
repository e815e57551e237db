"""A seeded soak on the simulated timeline (devstack/timeline.py: every schedule of template.yaml
firing on time, the queue's settings from the template), over moto and the Polyv simulator, with
faults drawn at random around the day's busy hours: Polyv answering 503, calls lost on the way
(no answer), calls Polyv accepted whose answer was lost, 200s without a taskId, DynamoDB errors,
throttling and lost answers (a claim or a record whose writer never heard back, as if killed).
A binding quota (limit 100, the template's default reserve) and 150 files arriving around 10:00,
over three quota days. Faults queue up in the simulator and meet the next calls, so a quiet hour's
faults fall on the next busy one. What must hold (docs/ledger.md, "Every spare unit spent"):

* no day ends with more than 5 units unused at Polyv while files wait;
* no unit goes to a file already asked of Polyv (in doubt, or accepted before) while a file never
  asked of Polyv waits;
* every file is accepted within three quota days.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from devstack.stack import QUOTA_TIMEZONE
from devstack.timeline import Timeline
from polyv_prewarm.adapters.ledger import LedgerTable, reads
from tests.helpers import pin_hour, set_limit, vid

pytestmark = pytest.mark.integration

LIMIT, FILES, SEED = 100, 150, 20261204
MARGIN = 5  # units a day may leave unused while files wait (docs/ledger.md)
#: Answers that tell the function that nothing was processed: its files stay never-sent. Any other
#: (accepted, an answer lost on the way, a 200 without a taskId) leaves them asked.
NOT_PROCESSED = (
    "[outage]",
    "[fault] http_error",
    "[fault] error",
    "can't submit more than 2000 files one day",
    "ptime is too old",
    "the sign is not right.",
)


def busy(now: datetime) -> bool:
    """The hours with traffic: the arrival, the late sweeps, the morning drain."""
    local = now.astimezone(QUOTA_TIMEZONE)
    return local.hour in (9, 10, 11, 23, 0)


def inject(stack, rng: random.Random) -> str:
    kind = rng.choice(
        ["503", "503", "lost", "accepted-then-lost", "no-task-id", "dynamo-500", "throttle", "killed"]
    )
    if kind == "503":
        stack.polyv.inject("http_error", count=rng.randint(1, 3), status=503)
    elif kind == "lost":
        stack.polyv.inject("blackhole", delay=2.2)  # past the stack's 2 s read timeout: no answer
    elif kind == "accepted-then-lost":
        stack.polyv.inject("reset", process=True)
    elif kind == "no-task-id":
        stack.polyv.inject("no_task_id")
    elif kind == "dynamo-500":
        stack.aws_faults.inject("error", "TransactWriteItems", count=rng.randint(1, 6))
    elif kind == "throttle":
        stack.aws_faults.inject("throttle", "DynamoDB_20120810.*", count=rng.randint(1, 6))
    else:  # the claim's or the record's writer never hears back: its claims live on their lease
        stack.aws_faults.inject("lose_answer", "TransactWriteItems", count=1)
    return kind


def test_a_seeded_soak_of_faults_under_a_binding_quota(stack, monkeypatch):
    import app

    monkeypatch.setenv("MANUAL_RESERVE", "")  # the template's default: 5 % of the limit
    set_limit(stack, monkeypatch, LIMIT)
    pin_hour(stack, monkeypatch, 9)
    rng = random.Random(SEED)
    timeline = Timeline(stack, app.lambda_handler, step=timedelta(minutes=5))
    videos = [vid(0x9000 + i) for i in range(FILES)]
    for v in videos:
        stack.polyv.add_video(v, (1,))
    workload = {(v, 1) for v in videos}
    start = timeline.now()
    days = [stack.polyv.today()]
    injected: list[str] = []

    def faults(now: datetime) -> None:
        if busy(now) and rng.random() < 0.2 and len(injected) < 40:
            injected.append(inject(stack, rng))

    for i in range(3):  # 150 files, 10 a message, from 09:50 to 10:10
        timeline.run_until(start + timedelta(minutes=50 + 10 * i), every_step=faults)
        timeline.send(
            *({"vids": videos[j : j + 10], "brIndexes": [1]} for j in range(50 * i, 50 * i + 50, 10))
        )
    ends = []
    for n in range(3):
        day_end = datetime.fromisoformat(days[0]).replace(tzinfo=QUOTA_TIMEZONE) + timedelta(days=n + 1)
        timeline.run_until(day_end - timedelta(minutes=1), every_step=faults)
        ends.append((stack.polyv.today(), {f for t in stack.polyv.tasks() for f in t.files}))

        timeline.run_until(day_end + timedelta(minutes=1), every_step=faults)

    for day, accepted in ends:  # the figures (pytest -s): Polyv's, the function's count, confirmed
        counter = (
            stack.client("dynamodb")
            .get_item(
                TableName=stack.tables["QuotaTable"], Key={"pk": {"S": f"DAY#{day}"}, "sk": {"S": "QUOTA"}}
            )
            .get("Item", {})
        )
        confirmed = reads.confirmed(stack.client("dynamodb"), LedgerTable(stack.tables["QuotaTable"]), day)
        print(
            f"soak {day}: Polyv accepted {stack.polyv.used(stack.userid, day)} of {LIMIT}, "
            f"the count {counter.get('used', {}).get('N')}, confirmed {confirmed}, "
            f"waiting at the end {len(workload - accepted)}"
        )
    print(f"soak faults: {len(injected)} {sorted(set(injected))}")

    # every file accepted within three quota days
    accepted_by_day3 = ends[-1][1]
    assert accepted_by_day3 >= workload, (injected, sorted(workload - accepted_by_day3)[:5])
    # no day ends with more than MARGIN units unused at Polyv while files wait
    for day, accepted in ends:
        waiting = workload - accepted
        if waiting:
            assert LIMIT - stack.polyv.used(stack.userid, day) <= MARGIN, (day, len(waiting), injected)
    # no unit on a file asked before while a file never asked waits
    asked: set[tuple[str, int]] = set()
    for _, files, outcome in stack.polyv.asked():
        if outcome.startswith("accepted"):
            again = [f for f in files if f in asked]
            if again:
                never_asked = workload - asked
                assert not never_asked, (len(again), len(never_asked), outcome)
        if not outcome.startswith(NOT_PROCESSED):
            asked |= set(files)
    assert len(injected) >= 10  # the soak did meet faults
