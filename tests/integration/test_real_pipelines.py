"""What real pipelines send, through the handler on the local stack: a bitrate that appears later
the same day, vids among other tokens in S3 keys, folder markers and empty objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import pin_hour, sqs_event, vid

pytestmark = pytest.mark.integration

FOREIGN = "0123456789abcdef0123456789abcdef_0"


def s3_record(key: str, size: int = 1_048_576) -> dict:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-27T03:04:05.678Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "transcoded",
            "bucket": {"name": "vod-output", "arn": "arn:aws:s3:::vod-output"},
            "object": {
                "key": key,
                "size": size,
                "eTag": "0123456789abcdef",
                "sequencer": "0A1B2C3D4E5F678901",
            },
        },
    }


def s3_message(*records: dict) -> str:
    return json.dumps({"Records": list(records)})


def test_a_bitrate_transcoded_an_hour_later_is_prewarmed_the_same_day(stack, invoke, monkeypatch):
    v = vid(0x7000)
    stack.polyv.add_video(v, (1, 2))  # 超清 is still being transcoded
    ten = pin_hour(stack, monkeypatch, 10)  # the hour later stays in the same quota day
    first = invoke(sqs_event(s3_message(s3_record(f"transcoded/{v}.zip")), ids=["s3-put"]))
    assert first == {"batchItemFailures": []}
    assert sorted(br for _, br in stack.polyv.accepted_files()) == [1, 2]
    stack.polyv.add_video(v, (1, 2, 3))  # an hour later the encode callback for df=3 arrives
    stack.seconds_offset = ten + 3600
    callback = invoke(sqs_event(f"vid={v}&df=3&type=encode", ids=["callback"]))
    assert callback == {"batchItemFailures": []}
    assert sorted(br for _, br in stack.polyv.accepted_files()) == [1, 2, 3]
    day = stack.polyv.today()
    assert stack.quota_used(day) == 3 == stack.polyv.used(stack.userid, day)  # the refusal cost nothing


def test_a_refused_bitrate_named_by_defaults_waits_its_turn_without_a_call(stack, invoke):
    v = vid(0x7001)
    stack.polyv.add_video(v, (1, 2))
    invoke({"vids": [v]})
    calls = len(stack.polyv.answers())
    again = invoke({"vids": [v]})  # the same defaults at once: not asked again yet
    assert len(stack.polyv.answers()) == calls
    by_br = {f["brIndex"]: f for f in again["files"]}
    assert by_br[3]["fate"] == "duplicate"
    assert "asked again after" in by_br[3]["reason"]


def test_keys_yield_every_vid_of_this_account_and_nothing_foreign(stack, invoke):
    ours, other = vid(0x7002), vid(0x7003)
    for v in (ours, other):
        stack.polyv.add_video(v)
    event = sqs_event(
        s3_message(s3_record(f"exports/{FOREIGN}_0/{ours}.zip")),
        s3_message(s3_record(f"pairs/{ours}-{other}/master.zip")),
        s3_message(s3_record(f"exports/{FOREIGN}.zip")),
        ids=["foreign-first", "two-of-ours", "only-foreign"],
    )
    assert invoke(event) == {"batchItemFailures": []}
    sent = {v for v, _ in stack.polyv.accepted_files()}
    assert sent == {ours, other}  # nothing foreign was asked for
    assert "illeagal vid" not in stack.polyv.answers()


def test_folder_markers_and_empty_objects_send_nothing(stack, invoke):
    v = vid(0x7004)
    stack.polyv.add_video(v)
    event = sqs_event(
        s3_message(s3_record(f"transcoded/{v}/", size=0)),
        s3_message(s3_record(f"transcoded/{v}.zip", size=0)),
        ids=["marker", "empty"],
    )
    assert invoke(event) == {"batchItemFailures": []}
    assert stack.polyv.answers() == []


PIPELINE_FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "pipelines").glob("*.json"))


@pytest.mark.parametrize("path", PIPELINE_FIXTURES, ids=lambda p: p.stem)
def test_real_payloads_through_the_handler(stack, invoke, path):
    """Each fixture: a payload in the shape AWS or Polyv sends it, how it arrives, and which files
    Polyv must have been asked for (none: it is ignored, with a reason, and fails nothing)."""
    fixture = json.loads(path.read_text(encoding="utf-8"))
    for vid_ in {v for v, _ in fixture["sent"]}:  # Polyv has the definitions it must be asked for
        stack.polyv.add_video(vid_, fixture.get("polyv_has", {}).get(vid_, (1, 2, 3)))
    payload = fixture["payload"]
    if fixture["deliver"] == "sqs":
        body = payload if isinstance(payload, str) else json.dumps(payload)
        assert invoke(sqs_event(body, ids=["m"])) == {"batchItemFailures": []}, fixture["what"]
    else:
        invoke(payload)
    assert sorted(map(list, stack.polyv.accepted_files())) == sorted(fixture["sent"]), fixture["what"]
    assert not any(a for a in stack.polyv.answers() if a != "success")
