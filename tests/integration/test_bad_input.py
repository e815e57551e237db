"""Fuzzed and oversized input at the handler: a typed error or a per-record failure, never a
KeyError/TypeError/AttributeError, never a whole batch lost to one record."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyv_prewarm.domain.ports import PrewarmError
from polyv_prewarm.events import MAX_FILES_PER_MESSAGE, InvalidEvent, UnsupportedEvent
from tests.helpers import dead_lettered, set_limit, sqs_event, vid

pytestmark = pytest.mark.integration

GOOD = {"vid": "e6b23c6f513fbe025b94efdd10d7ab47_e", "brIndex": 1}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={k: json_values for k in ("vid", "vids", "videos", "brIndex", "brIndexes", "df", "Records")},
    ).map(json.dumps),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(bodies, min_size=1, max_size=5))
def test_fuzzed_sqs_batches_fail_only_their_own_records(stack, invoke, monkeypatch, random_bodies):
    set_limit(stack, monkeypatch, 2000)  # a fresh stack for every example: its good file is new
    stack.polyv.add_video(GOOD["vid"])
    event = sqs_event(json.dumps(GOOD), *random_bodies)
    response = invoke(event)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert "msg-0" not in failed  # the good message is never dragged down...
    assert (GOOD["vid"], 1) in stack.polyv.accepted_files()  # ...and its file is sent
    assert failed <= {f"msg-{i}" for i in range(1, len(random_bodies) + 1)}


def test_deeply_nested_bodies_fail_alone_and_the_rest_of_the_batch_is_submitted(stack, invoke):
    stack.polyv.add_video(GOOD["vid"])
    deep = "[" * 100_000
    sns = json.dumps({"Type": "Notification", "Message": deep})
    response = invoke(sqs_event(json.dumps(GOOD), deep, sns))
    assert response == {"batchItemFailures": []}
    assert set(dead_lettered(stack)) == {"msg-1", "msg-2"}  # by the function, at once
    assert stack.polyv.accepted_files() == [(GOOD["vid"], 1)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_fuzzed_events_return_or_raise_a_typed_error(stack, invoke, event):
    """An event of no use answers, or raises the error that says the event is at fault; never a
    KeyError, never an outage's error (the stack is up)."""
    error = None
    try:
        result = invoke(event)
    except (UnsupportedEvent, InvalidEvent) as exc:
        error = str(exc)
    if error is not None:
        assert error, "a typed error must say what is wrong"
    else:
        assert isinstance(result, dict)


def test_a_message_at_the_cap_is_processed_up_to_the_quota_and_the_rest_deferred(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 300)
    vids = [vid(i) for i in range(MAX_FILES_PER_MESSAGE)]
    for v in vids:
        stack.polyv.add_video(v, (1,))
    response = invoke(sqs_event({"vids": vids, "brIndexes": [1]}, {"vid": vids[0], "brIndex": 1}))
    assert response == {"batchItemFailures": []}
    assert len(stack.polyv.tasks()) == 3
    assert len(stack.polyv.accepted_files()) == 300
    assert len(stack.backlog_keys()) == MAX_FILES_PER_MESSAGE - 300


def test_a_message_over_the_cap_fails_alone_and_the_rest_of_its_batch_is_submitted(stack, invoke):
    stack.polyv.add_video(vid(1), (1,))
    huge = {"vids": [vid(i) for i in range(10_000)], "brIndexes": [1]}
    response = invoke(sqs_event(huge, {"vid": vid(1), "brIndex": 1}))
    assert response == {"batchItemFailures": []}
    assert "split it into several messages" in dead_lettered(stack)["msg-0"]
    assert stack.polyv.accepted_files() == [(vid(1), 1)]
    assert stack.backlog_keys() == []


@pytest.mark.parametrize(
    "event",
    [
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},  # no messageId
        {"Records": [{"eventSource": "aws:s3", "s3": {}}]},
        {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "not json"}}]},
        {"detail-type": "Object Created", "source": "aws.s3", "detail": None},
        {"vids": None},
        {"videos": [None]},
        {"vids": [], "dryRun": 1},
    ],
)
def test_broken_envelopes_get_typed_errors(stack, invoke, event):
    with pytest.raises(PrewarmError):
        invoke(event)


@pytest.mark.parametrize(
    "event",
    [
        {"Records": [{"eventSource": "aws:s3", "s3": {"object": "not a map"}}]},
        {"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": 7}}}]},
        {"Records": [{"eventSource": "aws:sqs", "messageId": 5, "body": "{}"}]},
    ],
)
def test_odd_envelopes_do_not_break_log_correlation(stack, invoke, event):
    with pytest.raises(PrewarmError):
        invoke(event)
