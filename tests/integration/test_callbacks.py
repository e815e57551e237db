"""Polyv's callbacks over real HTTP to the endpoint on the local stack (the template's CallbackApi
routes, the callback handler in this process), to moto's SQS, and from there through the queue's
event source to the prewarm handler and the Polyv simulator. The notifications are built and
signed by the simulator (devstack/polyv_simulator.py: its own MD5 code), as Polyv sends them."""

from __future__ import annotations

import io
import json
from urllib.parse import parse_qsl, urlencode

import pytest

from devstack.polyv_simulator import Callback, callback, deliver
from polyv_prewarm import callback_handler
from tests.helpers import pin_hour, vid

pytestmark = pytest.mark.integration

FOREIGN = "1b448be3231111222233334444555566_1"


def queued(stack) -> list[dict]:
    """Every message on the prewarm queue (received, so then invisible), read directly."""
    messages = stack.client("sqs").receive_message(
        QueueUrl=stack.queues["PrewarmQueue"], MaxNumberOfMessages=10
    )
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def tampered(notification: Callback, **changes: str) -> Callback:
    fields = dict(parse_qsl(notification.query, keep_blank_values=True))
    fields.update(changes)
    return notification._replace(query=urlencode({k: v for k, v in fields.items() if v is not None}))


def signed(stack, kind: str, file_vid: str, **fields) -> Callback:
    return callback(kind, file_vid, stack.secretkey, **fields)


@pytest.fixture
def video(stack) -> str:
    stack.polyv.add_video(vid(1), (1, 2))
    return vid(1)


KINDS = {
    # case -> (kind, fields, the status Polyv gets, what is queued)
    "encode": ("encode", {"format": "mp4", "df": 2}, 200, [{"brIndex": 2}]),
    "encode m3u8": ("encode", {"format": "m3u8", "df": 1}, 200, [{"brIndex": 1}]),
    "encode_failed": ("encode_failed", {"format": "mp4", "df": 3}, 200, []),
    "TranscodeComplete": (
        "TranscodeComplete",
        {
            "videoInfos": [
                {"status": "success", "df": 1},
                {"status": "fail", "df": 3},
                {"status": "success", "df": 2},
            ]
        },
        200,
        [{"brIndexes": [1, 2]}],
    ),
    "upload": ("upload", {"state": "anything the uploader passed"}, 200, []),
    "invalidVideo": ("invalidVideo", {"state": ""}, 200, []),
    "pass": ("pass", {}, 200, []),
    "nopass": ("nopass", {}, 200, []),
    "DeleteMediaComplete": ("DeleteMediaComplete", {}, 200, []),
}


@pytest.mark.parametrize(("kind", "fields", "status", "expected"), KINDS.values(), ids=KINDS.keys())
def test_each_kind_over_http(stack, callback_api, video, kind, fields, status, expected):
    assert deliver(callback_api.url, signed(stack, kind, video, **fields)) == status
    messages = queued(stack)
    assert [{k: v for k, v in m.items() if k in ("brIndex", "brIndexes")} for m in messages] == expected
    assert all(m["vid"] == video for m in messages)


def test_forged_absent_and_other_rule_signs_are_403_and_queue_nothing(stack, callback_api, video):
    good = signed(stack, "encode", video, format="mp4", df=1)
    other_rule = signed(stack, "upload", video)  # a real sign, of another kind's rule
    forged = [
        tampered(good, sign="0" * 32),
        tampered(good, sign=None),
        tampered(good, sign=dict(parse_qsl(other_rule.query))["sign"]),
        tampered(good, df="2"),  # a real sign for df 1, replayed with df 2
        callback("encode", video, "a-guessed-secretkey", format="mp4", df=1),
        Callback("encode", "GET", urlencode({"vid": video, "df": "1"})),  # the unsigned 2014 form
        callback("TranscodeComplete", video, "guessed", videoInfos=[{"status": "success", "df": 1}]),
    ]
    statuses = [deliver(callback_api.url, notification) for notification in forged]
    # refused while a re-read may still confirm the mismatch, then 503: a genuine callback signed
    # with a rotated secretkey would not be told 403 before it could be checked (RereadBudget)
    assert statuses[:3] == [403, 403, 403]
    assert set(statuses) <= {403, 503}
    assert queued(stack) == []
    assert stack.polyv.answers() == []


def test_hostile_requests_are_4xx_and_queue_nothing(stack, callback_api, video):
    good = signed(stack, "encode", video, format="mp4", df=1)
    hostile = [
        (signed(stack, "encode", FOREIGN, format="mp4", df=1), 400),  # signed right, another account's
        (signed(stack, "encode", video, format="mp4", df=0), 400),
        (signed(stack, "encode", video, format="mp4", df=4), 400),
        (signed(stack, "encode", video, format="mp4", df="x"), 400),
        (tampered(good, vid="../../etc/passwd"), 400),
        (tampered(good, type="encode\nX-Evil: 1"), 400),
        (tampered(good, format="mp4\r\n"), 400),
        (good._replace(query=good.query + "&df=2"), 400),  # a parameter twice
        (Callback("x", "POST", "", json.dumps([1, 2, 3]).encode()), 400),
        (Callback("x", "POST", "", b"{not json"), 400),
        (Callback("x", "POST", "", json.dumps({"eventType": "x", "pad": "y" * 2_000_000}).encode()), 413),
    ]
    for notification, status in hostile:
        assert deliver(callback_api.url, notification) == status, notification.query[:80]
    assert queued(stack) == []
    assert 500 not in callback_api.answered


def test_other_routes_are_not_served(stack, callback_api):
    notification = Callback("encode", "PUT", "")
    assert deliver(callback_api.url, notification) == 404
    assert deliver(callback_api.url.replace("/polyv/callback", "/other"), Callback("x", "GET", "")) == 404


def test_sqs_failing_is_503_nothing_is_queued_and_polyvs_retry_goes_through(
    stack, callback_api, video, prewarm_queue
):
    notification = signed(stack, "encode", video, format="mp4", df=1)
    stack.aws_faults.inject("error", "SendMessage", count=None)
    assert deliver(callback_api.url, notification) == 503
    stack.aws_faults.clear()
    assert prewarm_queue.drain() == []
    assert stack.quota_used(stack.polyv.today()) == 0
    assert ("error", "SendMessage") in stack.aws_faults.met
    assert deliver(callback_api.url, notification) == 200  # Polyv's retry: nothing was recorded
    prewarm_queue.drain()
    assert stack.polyv.accepted_files() == [(video, 1)]


def test_a_callback_delivered_three_times_is_prewarmed_once(
    stack, callback_api, video, prewarm_queue, monkeypatch
):
    pin_hour(stack, monkeypatch, 10)
    notification = signed(stack, "encode", video, format="mp4", df=2)
    assert [deliver(callback_api.url, notification) for _ in range(3)] == [200, 200, 200]
    prewarm_queue.drain()
    assert deliver(callback_api.url, notification) == 200  # a replay later the same day
    deliveries = prewarm_queue.drain()
    assert stack.polyv.accepted_files() == [(video, 2)]
    assert all(d.failed == [] for d in deliveries)


def test_polyvs_transcoding_to_prewarm_the_whole_story(stack, callback_api, prewarm_queue, monkeypatch):
    """Upload -> Polyv transcodes (1 and 2 succeed, 3 fails) -> its callbacks, verified -> queued
    -> the prewarm function -> Polyv: exactly the successful definitions, each once, and the
    failed one never asked for."""
    pin_hour(stack, monkeypatch, 10)
    new = vid(77)
    sent = stack.polyv.transcode(stack.userid, new, (1, 2), failed=(3,), callback_url=callback_api.url)
    assert [(n.kind, status) for n, status in sent] == [
        ("upload", 200),
        ("encode", 200),
        ("encode", 200),
        ("encode_failed", 200),
        ("TranscodeComplete", 200),
    ]
    deliveries = prewarm_queue.drain()
    assert sum(d.messages for d in deliveries) == 3  # two encodes and TranscodeComplete
    assert sorted(stack.polyv.accepted_files()) == [(new, 1), (new, 2)]
    assert "bitrate does not exist" not in stack.polyv.answers()
    assert stack.quota_used(stack.polyv.today()) == 2


def test_no_secret_or_sign_in_any_log_line_at_debug(stack, callback_api, video):
    buffer = io.StringIO()
    handlers = callback_handler.logger.handlers
    previous = [(h.stream, h.level) for h in handlers]
    callback_handler.logger.setLevel("DEBUG")
    for h in handlers:
        h.stream = buffer
    old_secret = stack.secretkey
    delivered: list[tuple[Callback, int]] = []

    def send(notification: Callback) -> None:
        delivered.append((notification, deliver(callback_api.url, notification)))

    try:
        send(signed(stack, "encode", video, format="mp4", df=1))  # reads and caches the secret
        stack.rotate_secret()  # Polyv and Secrets Manager now hold a new secretkey
        send(signed(stack, "TranscodeComplete", video, videoInfos=[{"status": "success", "df": 2}]))
        send(tampered(signed(stack, "encode", video, format="mp4", df=1), sign="f" * 32))
        send(signed(stack, "upload", video, state="x"))
    finally:
        callback_handler.logger.setLevel("INFO")
        for h, (stream, level) in zip(handlers, previous, strict=True):
            h.stream, h.level = stream, level
    # the stale cache is read again after the mismatch: the rotated sign is accepted; the forged
    # one is refused after a re-read (the budget has re-reads left)
    assert [status for _, status in delivered] == [200, 200, 403, 200]
    text = buffer.getvalue()
    assert "Polyv callback refused" in text
    assert "Polyv callback answered" in text
    for secret in (old_secret, stack.secretkey):
        assert secret not in text
    for notification, _ in delivered:
        sign = dict(parse_qsl(notification.query)).get("sign")
        assert sign
        assert sign not in text
