"""Outages of hours on a simulated timeline (devstack/timeline.py): the queue's settings and the
schedules are the template's, the clock moves in minutes, and SQS redelivers what the function
hands back when its visibility says. Invariants, checked against the Polyv simulator: every file
accepted once, within 30 minutes of the recovery; nothing dead-lettered but what no parser can
read; Polyv never asked above its daily limit, nor in bursts near its rate limit."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from devstack.timeline import Timeline, template_schedules
from tests.helpers import dead_lettered, vid

pytestmark = pytest.mark.integration

RATE_LIMIT = 1500  # Polyv: requests per 10 s from one IP


@pytest.fixture
def timeline(stack):
    import app

    return Timeline(stack, app.lambda_handler)


def pipeline(stack, messages: int = 3, per_message: int = 10) -> tuple[list[dict], set[tuple[str, int]]]:
    bodies, wanted = [], set()
    for m in range(messages):
        vids = [vid(0x5000 + m * per_message + i) for i in range(per_message)]
        for v in vids:
            stack.polyv.add_video(v)
            wanted.add((v, 1))
        bodies.append({"vids": vids, "brIndexes": [1]})
    return bodies, wanted


def check(stack, wanted: set[tuple[str, int]], *, recovered_at, within=timedelta(minutes=30)) -> None:
    accepted = Counter(f for task in stack.polyv.tasks() for f in task.files)
    assert set(accepted) == wanted  # every file...
    assert max(accepted.values()) == 1  # ...once
    latest = max(task.at for task in stack.polyv.tasks())
    assert latest <= (recovered_at + within).timestamp(), "accepted more than 30 minutes after the recovery"
    assert "can't submit more than 2000 files one day" not in stack.polyv.answers()
    times = sorted(stack.polyv.requests_at())
    busiest = max((sum(1 for t in times[i:] if t < start + 10) for i, start in enumerate(times)), default=0)
    assert busiest < RATE_LIMIT / 10  # far below Polyv's rate limit, in any 10 s


def test_the_timeline_reads_the_templates_schedules():
    names = {s.name: s.expression for s in template_schedules()}
    assert names == {
        "DailyDrain": "cron(5 0 * * ? *)",
        "LateSweep": "cron(0/10 23 * * ? *)",  # ReserveReleaseHour at its default, 23
        "RecoveryDrain": "rate(5 minutes)",
        "Reconcile": "rate(15 minutes)",
    }


def test_polyv_down_for_three_hours_loses_nothing_and_needs_no_redrive(stack, timeline):
    t0 = timeline.now()  # 10:00 in Shanghai
    back = t0 + timedelta(hours=3)
    stack.polyv.outage(t0.timestamp(), back.timestamp(), status=503)
    bodies, wanted = pipeline(stack)
    timeline.send(*bodies)
    timeline.run_until(back + timedelta(minutes=30))
    check(stack, wanted, recovered_at=back)
    assert dead_lettered(stack) == {}
    during = [t for t in stack.polyv.requests_at() if t < back.timestamp()]
    assert len(during) <= 3 * (3 * 60 // 5 + 2)  # a probe (3 attempts) per breaker opening, at most
    assert stack.quota_used(stack.polyv.today()) == 30


def test_dynamodb_failing_every_request_for_ninety_minutes(stack, timeline):
    t0 = timeline.now()
    back = t0 + timedelta(minutes=90)
    stack.aws_faults.inject("error", "DynamoDB_20120810.*", until=back.timestamp())
    bodies, wanted = pipeline(stack)
    timeline.send(*bodies)
    timeline.run_until(back + timedelta(minutes=30))
    check(stack, wanted, recovered_at=back)
    assert dead_lettered(stack) == {}
    assert ("error", "TransactWriteItems") in stack.aws_faults.met or (
        "error",
        "GetItem",
    ) in stack.aws_faults.met


def test_a_poison_message_is_dead_lettered_at_once_and_its_batch_is_sent(stack, timeline):
    bodies, wanted = pipeline(stack)
    (poison,) = timeline.send("this is no message any parser reads")
    timeline.send(*bodies)
    t0 = timeline.now()
    timeline.run_until(t0 + timedelta(minutes=75))
    assert set(dead_lettered(stack)) == {poison}
    check(stack, wanted, recovered_at=t0)


def test_polyv_back_but_slow(stack, timeline):
    t0 = timeline.now()
    back = t0 + timedelta(hours=1)
    stack.polyv.outage(t0.timestamp(), back.timestamp(), status=502)
    stack.polyv.slow(back.timestamp(), (back + timedelta(hours=1)).timestamp(), delay=1.5)
    bodies, wanted = pipeline(stack, messages=5, per_message=40)
    timeline.send(*bodies)
    timeline.run_until(back + timedelta(minutes=30))
    check(stack, wanted, recovered_at=back)
    assert dead_lettered(stack) == {}


# -- Polyv's breaker as DynamoDB holds it -------------------------------------------------------
@pytest.fixture
def breaker(stack):
    from polyv_prewarm.adapters.breaker import DynamoBreaker

    table = stack.tables["QuotaTable"]
    client = stack.client("dynamodb")
    client.delete_item(TableName=table, Key={"pk": {"S": "BREAKER"}, "sk": {"S": "POLYV"}})
    return DynamoBreaker(table, client)


def test_the_dynamodb_breaker_grants_one_probe_at_a_time_and_again_after_its_lease(stack, breaker):
    from polyv_prewarm.domain.breaker import OPEN_FIRST, PROBE_LEASE

    now = stack.now()
    assert not breaker.state().open
    assert not breaker.try_probe("a", now=now)  # closed: nothing to probe
    opened = breaker.failed(now=now)
    assert (opened.open, opened.failures, opened.waiting(now)) == (True, 1, True)
    assert not breaker.try_probe("a", now=now)  # not its time yet
    later = now + OPEN_FIRST + timedelta(seconds=1)
    assert breaker.try_probe("a", now=later)
    assert not breaker.try_probe("b", now=later)
    assert breaker.try_probe("b", now=later + PROBE_LEASE + timedelta(seconds=1))  # a died
    again = breaker.failed(now=later)
    assert (again.failures, again.down_since) == (2, opened.down_since)
    breaker.recovered()
    assert not breaker.state().open


def test_a_run_killed_between_the_breakers_two_writes_leaves_a_breaker_that_can_be_probed(stack, breaker):
    now = stack.now()
    stack.client("dynamodb").put_item(  # what failed()'s first write leaves alone
        TableName=stack.tables["QuotaTable"],
        Item={
            "pk": {"S": "BREAKER"},
            "sk": {"S": "POLYV"},
            "downSince": {"S": now.isoformat()},
            "failures": {"N": "1"},
        },
    )
    assert breaker.state().open
    assert breaker.try_probe("a", now=now)


def test_the_dynamodb_breaker_closes_only_if_nothing_failed_since_it_was_read(stack, breaker):
    now = stack.now()
    seen = breaker.failed(now=now)
    breaker.failed(now=now)
    breaker.recovered(unless_failed_since=seen)
    assert breaker.state().failures == 2
    breaker.recovered(unless_failed_since=breaker.state())
    assert not breaker.state().open
