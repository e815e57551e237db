"""Every file of the daily quota goes to a unique, existing file; nothing over it is lost."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from polyv_prewarm import runtime
from polyv_prewarm.handler import InvalidEvent
from polyv_prewarm.lambda_context import LocalLambdaContext
from tests.helpers import EVENTS, pin_hour, set_limit, shift_days, sqs_event, vid

pytestmark = pytest.mark.integration

SCHEDULED = {"action": "drain", "source": "schedule"}  # what the DailyDrain schedule sends


@pytest.fixture
def videos(stack):
    for i in range(120):
        stack.polyv.add_video(vid(i))
    return [vid(i) for i in range(120)]


def test_the_same_message_delivered_twice_is_sent_once(stack, invoke, videos):
    event = sqs_event({"vids": videos[:5], "brIndexes": [1, 2]}, ids=["m-1"])
    assert invoke(event) == {"batchItemFailures": []}
    assert invoke(event) == {"batchItemFailures": []}  # SQS at-least-once: redelivered
    assert len(stack.polyv.accepted_files()) == 10
    assert len(stack.polyv.tasks()) == 1


def test_the_same_file_in_a_new_message_is_a_duplicate(stack, invoke, videos):
    invoke(sqs_event({"vid": videos[0], "brIndex": 1}, ids=["m-1"]))
    summary = invoke({"videos": [{"vid": videos[0], "brIndex": 1}, {"vid": videos[0], "brIndex": 2}]})
    fates = {(f["brIndex"], f["fate"]) for f in summary["files"]}
    assert fates == {(1, "duplicate"), (2, "submitted")}
    dup = next(f for f in summary["files"] if f["fate"] == "duplicate")
    assert stack.polyv.tasks()[0].task_id in dup["reason"]


def test_force_prewarms_again(stack, invoke, videos):
    invoke({"vids": videos[:2], "brIndexes": [1]})
    summary = invoke({"vids": videos[:2], "brIndexes": [1], "force": True})
    assert summary["counts"] == {"submitted": 2}
    assert len(stack.polyv.accepted_files()) == 4


def test_80_files_against_50_then_the_next_days_drain(stack, invoke, videos, monkeypatch):
    set_limit(stack, monkeypatch, 50)
    for v in videos:
        stack.polyv.add_video(v)
    bodies = [{"vids": videos[i : i + 8], "brIndexes": [1]} for i in range(0, 80, 8)]
    assert invoke(sqs_event(*bodies)) == {"batchItemFailures": []}
    day1 = stack.polyv.today()
    assert stack.polyv.used(stack.userid, day1) == 50
    assert len(stack.backlog_keys()) == 30

    shift_days(stack, monkeypatch, 1)
    summary = invoke(SCHEDULED)
    assert summary["counts"] == {"submitted": 30}
    assert stack.backlog_keys() == []
    sent = Counter(stack.polyv.accepted_files())
    assert set(sent) == {(v, 1) for v in videos[:80]}
    assert max(sent.values()) == 1
    assert stack.quota_used(stack.polyv.today()) == 30


def test_a_drain_interrupted_by_an_outage_loses_nothing_and_sends_nothing_twice(
    stack, invoke, videos, monkeypatch
):
    set_limit(stack, monkeypatch, 10)
    invoke({"vids": videos[:100], "brIndexes": [1]})  # 10 today, 90 deferred
    stack.polyv.daily_limit = 200
    monkeypatch.setenv("DAILY_FILE_LIMIT", "200")
    shift_days(stack, monkeypatch, 1)
    stack.polyv.inject("http_error", count=3, status=503)  # the drain's first call fails all attempts
    first = invoke({"action": "drain"})
    assert first["counts"] == {"deferred": 90}  # waiting out the outage, in the backlog
    assert len(stack.backlog_keys()) == 90
    stack.seconds_offset += 300  # the recovery schedule fires, past the breaker's opening
    second = invoke({"action": "recover", "source": "schedule"})
    assert second["counts"] == {"submitted": 90}
    assert stack.backlog_keys() == []
    sent = Counter(stack.polyv.accepted_files())
    assert len(sent) == 100
    assert max(sent.values()) == 1


def test_status_and_quota_actions(stack, invoke, videos, monkeypatch):
    set_limit(stack, monkeypatch, 2)
    invoke(sqs_event({"vid": videos[0]}, ids=["m-7"]))  # brIndexes 1, 2 submitted; 3 deferred
    status = invoke({"action": "status", "vid": videos[0]})
    today = stack.polyv.today()
    assert status["days"][today]["1"]["state"] == "submitted"
    assert status["days"][today]["1"]["origin"] == "m-7"
    assert status["days"][today]["2"]["taskId"] == stack.polyv.tasks()[0].task_id
    assert status["deferred"]["3"]["origin"] == "m-7"
    quota = invoke({"action": "quota"})
    assert quota == {
        "day": today,
        "used": 2,
        "limit": 2,
        "remaining": 0,
        "confirmed": 2,  # Polyv answered a taskId for both
        "inDoubt": 0,
        "backlog": {
            "files": 1,
            "oldestDeferredAt": quota["backlog"]["oldestDeferredAt"],
            "waiting": 0,
            "tiers": {"normal": 1, "later": 0, "backfill": 0, "resend": 0, "suspect": 0},
        },
        "polyv": {"available": True},
        "sweep": {  # the reserve returns at 23:00; the sweeps may then spend none (the day is spent)
            "reserveReleasedAt": f"{today}T23:00:00+08:00",
            "released": False,
            "willSpend": 0,
        },
    }
    assert invoke({"action": "quota", "day": "2020-01-01"})["used"] == 0


def test_unknown_action_is_a_typed_error(stack, invoke):
    from polyv_prewarm import handler as app

    with pytest.raises(app.InvalidEvent, match="unknown action"):
        invoke({"action": "explode"})
    with pytest.raises(app.InvalidEvent, match="vid"):
        invoke({"action": "status", "vid": "nope"})


def test_the_scheduled_drain_respects_the_deadline(stack, videos, monkeypatch):
    from polyv_prewarm import handler as app

    set_limit(stack, monkeypatch, 1)
    app.lambda_handler({"vids": videos[:3], "brIndexes": [1]}, LocalLambdaContext())
    shift_days(stack, monkeypatch, 1)
    summary = app.lambda_handler(SCHEDULED, LocalLambdaContext(timeout_s=3))
    assert summary["stoppedBecause"].startswith("too little time")
    assert len(stack.backlog_keys()) == 2


def test_a_scheduled_event_of_another_rule_drains_nothing(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 1)
    stack.polyv.add_video(vid(0x7100))
    stack.polyv.add_video(vid(0x7101))
    invoke({"vids": [vid(0x7100), vid(0x7101)], "brIndexes": [1]})  # one sent, one deferred
    shift_days(stack, monkeypatch, 1)
    answer = invoke(json.loads((EVENTS / "scheduled-event-other-rule.json").read_text()))
    assert answer["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/nightly-report"]
    assert "not this project's drain schedule" in answer["ignored"]
    assert len(stack.backlog_keys()) == 1  # still waiting for the real drain
    assert invoke(SCHEDULED)["counts"] == {"submitted": 1}


def test_a_day_spent_by_automatic_traffic_still_takes_a_priority_request(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 20)
    monkeypatch.setenv("MANUAL_RESERVE", "5")
    runtime.current.cache_clear()
    vids = [vid(0x7200 + i) for i in range(27)]
    for v in vids:
        stack.polyv.add_video(v)
    batch = sqs_event(*({"vids": vids[i : i + 5], "brIndexes": [1]} for i in range(0, 25, 5)))
    assert invoke(batch) == {"batchItemFailures": []}
    assert len(stack.polyv.accepted_files()) == 15  # the pipeline leaves the reserve alone
    plain = invoke({"vids": [vids[25]], "brIndexes": [1]})
    assert plain["counts"] == {"deferred": 1}
    urgent = invoke({"vids": [vids[26]], "brIndexes": [1], "priority": "high"})
    assert urgent["counts"] == {"submitted": 1}
    assert urgent["quota"]["reserve"] == {"files": 5, "used": 1}
    assert invoke({"action": "quota"})["reserve"] == {"files": 5, "used": 1}
    with pytest.raises(InvalidEvent, match="priority"):
        invoke({"vids": [vids[26]], "priority": "urgent"})


def test_expiry_and_drain_order_across_three_quota_days(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 2)
    monkeypatch.setenv("BACKLOG_MAX_AGE_DAYS", "2")
    monkeypatch.setenv("DRAIN_ORDER", "newest")
    vids = [vid(0x7300 + i) for i in range(6)]
    for v in vids:
        stack.polyv.add_video(v)
    ten = pin_hour(stack, monkeypatch, 10)  # an hour later stays in the same quota day
    invoke({"vids": vids[:4], "brIndexes": [1]})  # day 0: two sent, two deferred
    stack.seconds_offset = ten + 3600
    invoke({"vids": vids[4:], "brIndexes": [1]})  # an hour later: two more deferred
    sent_by_day = []
    for day in (1, 2):
        shift_days(stack, monkeypatch, day)
        stack.seconds_offset = ten + 3600
        before = len(stack.polyv.accepted_files())
        summary = invoke(SCHEDULED)
        sent_by_day.append([v for v, _ in stack.polyv.accepted_files()[before:]])
    assert sent_by_day[0] == [vids[5], vids[4]]  # day 1: the newest deferrals first
    assert sent_by_day[1] == []  # day 2: the day-0 deferrals are more than two days old
    expired = [f["vid"] for f in summary["files"] if f["fate"] == "expired"]
    assert expired == vids[2:4]
    assert stack.backlog_keys() == []
