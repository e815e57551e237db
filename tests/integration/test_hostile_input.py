"""A careless or hostile producer, a redirect, a tricked URL (docs/security.md): every one
bounded or refused on the local stack, the good messages of a batch untouched."""

from __future__ import annotations

import json
import socket
import tracemalloc

import pytest

from polyv_prewarm import runtime
from polyv_prewarm.config import DEFAULTS, ConfigurationError
from tests.helpers import dead_lettered, pin_hour, sqs_event, vid
from tests.recorder import RecordingServer

pytestmark = pytest.mark.integration

BISECTION_CALLS_PER_RUN = int(DEFAULTS["BISECTION_CALLS_PER_INVOCATION"])  # what production runs


def ledger_state(stack, file_vid: str, br: int) -> str | None:
    item = stack.client("dynamodb").get_item(
        TableName=stack.tables["QuotaTable"],
        Key={"pk": {"S": f"DAY#{stack.polyv.today()}"}, "sk": {"S": f"FILE#{file_vid}#{br}"}},
        ConsistentRead=True,
    )
    return item["Item"]["s"]["S"] if "Item" in item else None


FAN_OUTS = {
    # 1,000 vids x 1,000 "brIndexes": 40 KB that would be 10^6 file requests
    "a thousand brIndexes": {"vids": [vid(100 + i) for i in range(1000)], "brIndexes": list(range(1000))},
    # 1,000 vids x 3 bitrates: 3,000 files, more than one message may ask for
    "over the per-message cap": {"vids": [vid(100 + i) for i in range(1000)], "brIndexes": [1, 2, 3]},
    "videos over the cap": {"videos": [{"vid": vid(100 + i)} for i in range(700)]},  # x 3 defaults
}


@pytest.mark.parametrize("body", FAN_OUTS.values(), ids=FAN_OUTS.keys())
def test_a_fan_out_message_fails_alone_in_little_memory(stack, invoke, monkeypatch, body):
    pin_hour(stack, monkeypatch, 10)
    stack.polyv.add_video(vid(1))
    stack.polyv.add_video(vid(2))
    fan_out = json.dumps(body)
    tracemalloc.start()
    try:
        response = invoke(sqs_event({"vid": vid(1), "brIndex": 1}, fan_out, {"vid": vid(2), "brIndex": 2}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response == {"batchItemFailures": []}
    assert set(dead_lettered(stack)) == {"msg-1"}  # failed alone, dead-lettered at once with why
    assert sorted(stack.polyv.accepted_files()) == [(vid(1), 1), (vid(2), 2)]
    assert len(stack.polyv.answers()) == 1  # both good files in one call; nothing else asked
    assert peak < 64 * 2**20, peak  # the moto server in this process counts too


def test_a_thousand_unknown_vids_cost_a_bounded_number_of_calls(stack, invoke, monkeypatch):
    pin_hour(stack, monkeypatch, 10)
    stack.polyv.add_video(vid(1))
    unknown = [vid(5000 + i) for i in range(1000)]  # of this account's shape, unknown to Polyv
    # the good message first: it shares the first chunk with 99 of the unknown vids
    response = invoke(sqs_event({"vid": vid(1), "brIndex": 1}, {"vids": unknown, "brIndexes": [1]}))
    assert response == {"batchItemFailures": []}  # refused files are done: nothing comes back
    assert stack.polyv.accepted_files() == [(vid(1), 1)]
    # a call per chunk (1,001 files: 11 chunks) and the invocation's bisection budget, no more
    assert len(stack.polyv.answers()) <= 11 + BISECTION_CALLS_PER_RUN
    assert stack.quota_used(stack.polyv.today()) == 1  # refused files are not counted
    # once the budget is spent, the rest of the bad message is kept apart unsent: never claimed,
    # never counted, a suspect the drains isolate on a budget of their own
    assert ledger_state(stack, unknown[-2], 1) is None
    assert unknown[-2] + "#1" in stack.backlog_keys()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_leaves_its_files_in_doubt(stack, invoke, monkeypatch, status):
    pin_hour(stack, monkeypatch, 10)
    stack.polyv.add_video(vid(1))
    with RecordingServer(status=200) as elsewhere:
        # twice: the call and its one re-send after counting again (a redirect's meaning is unknown)
        stack.polyv.inject("redirect", count=2, status=status, location=f"{elsewhere.url}/steal")
        summary = invoke({"vid": vid(1), "brIndex": 1})
    assert elsewhere.seen == []  # the signed form went nowhere else, not even as a GET
    (file,) = summary["files"]
    assert file["fate"] == "deferred"  # in doubt: Polyv answered (a redirect), it waits as a resend
    assert ledger_state(stack, vid(1), 1) == "in_doubt"
    assert stack.polyv.accepted_files() == []
    assert stack.polyv.answers() == [f"[fault] redirect {status}"] * 2


def test_an_oversized_answer_is_not_read_on_and_its_call_is_in_doubt(stack, invoke, monkeypatch):
    pin_hour(stack, monkeypatch, 10)
    stack.polyv.add_video(vid(1))
    stack.polyv.inject("oversized", count=2, size=2_000_000)
    summary = invoke({"vid": vid(1), "brIndex": 1})
    assert summary["files"][0]["fate"] == "deferred"
    assert ledger_state(stack, vid(1), 1) == "in_doubt"


def test_a_userinfo_trick_url_is_refused_before_any_connection(stack, invoke, monkeypatch):
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        looked_up.append(str(host))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = stack.polyv.url.split(":")[2].split("/")[0]
    monkeypatch.setenv("POLYV_API_URL", f"http://evil.example\\@127.0.0.1:{port}/v2/video/refresh-cdn-cache")
    runtime.current.cache_clear()
    with pytest.raises(ConfigurationError, match="POLYV_API_URL"):
        invoke({"vid": vid(1), "brIndex": 1})
    assert not [host for host in looked_up if "evil" in host]
    assert stack.polyv.answers() == []


def test_thousands_of_rejections_are_one_log_line(stack, invoke, monkeypatch, log_stream):
    pin_hour(stack, monkeypatch, 10)
    invoke({"vids": [f"not-a-vid-{i}" for i in range(2000)], "brIndexes": [1]})
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    rejected = [line for line in lines if line["message"] == "files rejected"]
    assert len(rejected) == 1
    assert rejected[0]["count"] == 2000
    assert len(rejected[0]["examples"]) == 5
    assert len(lines) < 10
