"""The handler end to end: events in, signed calls to the Polyv simulator out, quota in moto."""

from __future__ import annotations

import json

import pytest

from polyv_prewarm.events import UnsupportedEvent
from tests.helpers import EVENTS, dead_lettered, load_event, set_limit, sqs_event, vid

pytestmark = pytest.mark.integration

V1 = "e6b23c6f513fbe025b94efdd10d7ab47_e"
V2 = "e6b23c6f51a1c2d3e4f5a6b7c8d9e0f1_e"
V3 = "e6b23c6f5100aa11bb22cc33dd44ee55_e"


def test_one_sqs_batch_with_every_body_shape(stack, invoke):
    records = []
    for path in sorted(EVENTS.glob("sqs-*.json")):
        for record in json.loads(path.read_text())["Records"]:
            records.append({**record, "messageId": f"{path.stem}/{record['messageId']}"})
    malformed = [r["messageId"] for r in records if r["body"].startswith("this is not")]
    assert len(malformed) == 1

    response = invoke({"Records": records})

    # only the malformed message is dead-lettered (by the function, at once: no redelivery can read
    # it); rejected files (foreign or unknown vid) do not fail theirs
    assert response == {"batchItemFailures": []}
    assert set(dead_lettered(stack)) == {malformed[0]}
    accepted = stack.polyv.accepted_files()
    assert len(accepted) == len(set(accepted))  # V1 brIndex 1 is named twice, sent once
    assert (V1, 1) in accepted
    assert (V2, 2) in accepted
    assert (V3, 2) in accepted
    assert ("e6b23c6f51ffffffffffffffffffffff_e", 1) not in accepted
    vids = {v for v, _ in accepted}
    for expected in (
        "e6b23c6f51f00d5eedcafe0123456789_e",  # S3 -> SQS
        "e6b23c6f5112ab34cd56ef7890abcdef_e",  # S3 -> SNS -> SQS, URL-encoded key
        "e6b23c6f519876543210fedcba987654_e",  # EventBridge -> SQS
        "e6b23c6f517777aaaa8888bbbb9999cc_e",  # Polyv callback query string
        "e6b23c6f51deadbeef00112233445566_e",
    ):  # Polyv callback JSON
        assert expected in vids
    assert all(len(task.files) <= 100 for task in stack.polyv.tasks())
    day = stack.polyv.today()
    assert stack.quota_used(day) == stack.polyv.used(stack.userid, day) == len(accepted)


def test_direct_s3_notification(stack, invoke):
    summary = invoke(load_event("s3-object-created.json"))
    assert summary["counts"] == {"submitted": 3}
    assert {f["s3_key"] for f in summary["files"]} == {f"transcoded/{V2}/{V2}.zip"}
    assert [t.task_id for t in stack.polyv.tasks()] == [c["taskId"] for c in summary["calls"]]


def test_direct_eventbridge_event(stack, invoke):
    summary = invoke(load_event("eventbridge-s3-object-created.json"))
    assert summary["counts"] == {"submitted": 3}


def test_direct_invocation_reports_every_file(stack, invoke):
    summary = invoke(
        {
            "videos": [
                {"vid": V1, "brIndex": 2},
                {"vid": V1, "brIndex": 2},
                {"vid": "1b448be3231111222233334444555566_1", "brIndex": 1},
                {"vid": V3, "brIndex": 7},
            ]
        }
    )
    fates = [(f["vid"], f["fate"]) for f in summary["files"]]
    assert sorted(fates) == sorted(
        [
            (V1, "submitted"),
            (V1, "duplicate"),
            ("1b448be3231111222233334444555566_1", "rejected"),
            (V3, "rejected"),
        ]
    )
    submitted = next(f for f in summary["files"] if f["fate"] == "submitted")
    assert submitted["taskId"] == stack.polyv.tasks()[0].task_id
    assert summary["quota"]["used"] == 1
    assert summary["quota"]["remaining"] == 1999
    assert stack.polyv.accepted_files() == [(V1, 2)]


def test_direct_vids_with_br_indexes(stack, invoke):
    summary = invoke(load_event("direct-vids.json"))
    assert summary["counts"] == {"submitted": 4}
    assert sorted(br for _, br in stack.polyv.accepted_files()) == [1, 1, 2, 2]


def test_dry_run_sends_nothing_and_spends_nothing(stack, invoke):
    summary = invoke({"vids": [vid(i) for i in range(150)], "brIndexes": [1], "dryRun": True})
    assert summary["dryRun"] is True
    assert summary["counts"] == {"planned": 150}
    assert sorted({f["call"] for f in summary["files"]}) == [1, 2]
    assert stack.polyv.tasks() == []
    assert summary["quota"]["used"] == 0


def test_unknown_event_is_a_typed_error(stack, invoke):
    with pytest.raises(UnsupportedEvent, match="unknown event"):
        invoke({"hello": "world"})


def test_invalid_direct_invocation_is_a_typed_error(stack, invoke):
    from polyv_prewarm import handler as app

    with pytest.raises(app.InvalidEvent, match="vids must be a list"):
        invoke({"vids": "e6b23c6f513fbe025b94efdd10d7ab47_e"})
    with pytest.raises(app.InvalidEvent, match="dryRun"):
        invoke({"vids": [V1], "dryRun": "yes"})


def test_quota_boundary_reached_exactly_never_exceeded(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 250)
    for i in range(400):
        stack.polyv.add_video(vid(i))
    first = invoke({"vids": [vid(i) for i in range(300)], "brIndexes": [1]})
    assert first["counts"] == {"submitted": 250, "deferred": 50}
    assert [t for t in map(lambda t: len(t.files), stack.polyv.tasks())] == [100, 100, 50]
    day = stack.polyv.today()
    assert stack.quota_used(day) == 250 == stack.polyv.used(stack.userid, day)

    second = invoke({"vids": [vid(i) for i in range(300, 310)], "brIndexes": [1]})
    assert second["counts"] == {"deferred": 10}
    assert len(stack.polyv.tasks()) == 3
    assert stack.quota_used(day) == 250


def test_over_quota_files_are_deferred_and_their_messages_succeed(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 5)
    for i in range(10):
        stack.polyv.add_video(vid(i))
    bodies = [{"vids": [vid(i)], "brIndexes": [1, 2]} for i in range(4)]  # 8 files, 5 fit
    response = invoke(sqs_event(*bodies))
    assert response == {"batchItemFailures": []}
    assert len(stack.polyv.accepted_files()) == 5
    assert sorted(stack.backlog_keys()) == sorted([f"{vid(2)}#2", f"{vid(3)}#1", f"{vid(3)}#2"])


def test_s3_direct_event_over_quota_is_deferred(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 1)
    summary = invoke(load_event("s3-object-created.json"))
    assert summary["counts"] == {"submitted": 1, "deferred": 2}
    assert len(stack.backlog_keys()) == 2


def test_direct_sns_notification_around_s3(stack, invoke):
    summary = invoke(load_event("sns-s3-notification.json"))
    assert summary["counts"] == {"submitted": 3}
    assert summary["files"][0]["s3_key"] == "courses/课程 1/e6b23c6f5112ab34cd56ef7890abcdef_e.zip"
