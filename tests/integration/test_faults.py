"""Every documented Polyv error and transport fault, over real HTTP, with moto for AWS."""

from __future__ import annotations

import math

import pytest

from polyv_prewarm import runtime
from polyv_prewarm.domain.ports import PolyvContractViolation
from polyv_prewarm.lambda_context import LocalLambdaContext
from tests.helpers import dead_lettered, set_limit, sqs_event, vid

pytestmark = pytest.mark.integration


@pytest.fixture
def videos(stack):
    for i in range(300):
        stack.polyv.add_video(vid(i))
    return [vid(i) for i in range(300)]


def direct(videos, n, br=1):
    return {"vids": videos[:n], "brIndexes": [br]}


def test_http_5xx_then_success_is_retried_with_a_fresh_signature(stack, invoke, videos):
    stack.polyv.inject("http_error", count=2, status=503)
    summary = invoke(direct(videos, 10))
    assert summary["counts"] == {"submitted": 10}
    assert stack.polyv.answers() == ["[fault] HTTP 503", "[fault] HTTP 503", "success"]
    assert stack.quota_used(stack.polyv.today()) == 10  # a 5xx consumed nothing


def test_non_json_200_then_success(stack, invoke, videos):
    stack.polyv.inject("non_json")
    summary = invoke(direct(videos, 10))
    assert summary["counts"] == {"submitted": 10}
    # the garbled answer might have been an acceptance: its files stay counted
    assert stack.quota_used(stack.polyv.today()) == 20
    assert stack.polyv.used(stack.userid) == 10


def test_slow_answer_after_acceptance_never_under_counts(stack, invoke, videos, monkeypatch):
    monkeypatch.setenv("POLYV_READ_TIMEOUT_SECONDS", "0.3")
    runtime.current.cache_clear()
    stack.polyv.inject("slow", delay=0.8)  # Polyv accepts, then answers after the read timeout
    summary = invoke(direct(videos, 10))
    assert summary["counts"] == {"submitted": 10}
    day = stack.polyv.today()
    assert stack.polyv.used(stack.userid, day) == 20  # Polyv took both attempts
    assert stack.quota_used(day) >= stack.polyv.used(stack.userid, day)


def test_connection_reset_then_success(stack, invoke, videos):
    stack.polyv.inject("reset")
    summary = invoke(direct(videos, 5))
    assert summary["counts"] == {"submitted": 5}
    assert stack.quota_used(stack.polyv.today()) >= stack.polyv.used(stack.userid)


def test_ptime_too_old_is_resigned_and_retried(stack, invoke, videos):
    stack.polyv.inject("error", message="ptime is too old")
    summary = invoke(direct(videos, 3))
    assert summary["counts"] == {"submitted": 3}
    assert stack.polyv.answers() == ["[fault] ptime is too old", "success"]


def test_outage_parks_and_releases_quota_then_the_recovery_drain_uses_it(stack, invoke, videos, monkeypatch):
    set_limit(stack, monkeypatch, 20)
    for v in videos[:20]:
        stack.polyv.add_video(v)
    event = sqs_event(*({"vids": videos[i : i + 10], "brIndexes": [1]} for i in (0, 10)))
    stack.polyv.inject("http_error", count=100, status=502)
    first = invoke(event)
    assert first == {"batchItemFailures": []}  # the files wait in the backlog: no redelivery
    day = stack.polyv.today()
    assert stack.quota_used(day) == 0  # nothing was taken: the reservation went back
    attempts = len(stack.polyv.answers())
    assert attempts == 3  # one call tried (3 attempts), then no further call in the outage
    assert len(stack.backlog_keys()) == 20
    assert invoke(event) == {"batchItemFailures": []}  # the same messages again: parked at once
    assert len(stack.polyv.answers()) == attempts  # the breaker is open: no call

    stack.polyv.reset(daily_limit=20)  # Polyv is back
    stack.seconds_offset += 300  # the recovery schedule fires
    recovered = invoke({"action": "recover", "source": "schedule"})
    assert recovered["counts"] == {"submitted": 20}
    assert stack.quota_used(day) == 20 == stack.polyv.used(stack.userid, day)
    assert stack.backlog_keys() == []


def test_secret_rotated_while_warm_is_refreshed_once(stack, invoke, videos):
    assert invoke(direct(videos, 1))["counts"] == {"submitted": 1}  # warm: the secret is cached
    stack.rotate_secret()
    summary = invoke(direct(videos[1:], 1))
    assert summary["counts"] == {"submitted": 1}
    assert stack.polyv.answers()[-2:] == ["the sign is not right.", "success"]


def test_wrong_secret_stops_all_calls_and_hands_everything_back(stack, invoke, videos):
    stack.polyv.add_account(stack.userid, "not-the-secret-in-secrets-manager")
    response = invoke(sqs_event(*({"vids": videos[i : i + 100], "brIndexes": [1]} for i in (0, 100, 200))))
    assert len(response["batchItemFailures"]) == 3
    assert stack.polyv.answers() == ["the sign is not right.", "the sign is not right."]
    assert stack.quota_used(stack.polyv.today()) == 0


def test_quota_spent_by_another_client_marks_the_day_exhausted(stack, invoke, videos):
    stack.polyv.spend(stack.userid, 1990)
    summary = invoke(direct(videos, 30))
    assert summary["counts"] == {"deferred": 30}
    assert summary["quota"]["remaining"] == 0
    answers = len(stack.polyv.answers())
    assert invoke(direct(videos[100:], 5))["counts"] == {"deferred": 5}
    assert len(stack.polyv.answers()) == answers  # no further call tried today


def test_bad_vid_and_missing_bitrate_hidden_among_good_files(stack, invoke, videos):
    unknown = "e6b23c6f51ffffffffffffffffffffff_e"
    stack.polyv.add_video(videos[70], (1, 2))  # transcoded without 超清
    files = [{"vid": v, "brIndex": 1} for v in videos[:60]] + [{"vid": unknown, "brIndex": 1}]
    files += [{"vid": v, "brIndex": 1} for v in videos[60:70]] + [{"vid": videos[70], "brIndex": 3}]
    files += [{"vid": v, "brIndex": 1} for v in videos[71:100]]
    summary = invoke({"videos": files})
    rejected = {f["vid"]: f["reason"] for f in summary["files"] if f["fate"] == "rejected"}
    assert rejected == {unknown: "illeagal vid", videos[70]: "bitrate does not exist"}
    assert summary["counts"]["submitted"] == 99
    assert len(stack.polyv.accepted_files()) == 99
    extra_calls = len(stack.polyv.answers()) - 1
    assert extra_calls <= 2 * 2 * math.ceil(math.log2(101))
    assert stack.quota_used(stack.polyv.today()) == 99


def test_quota_store_unavailable_sends_nothing(stack, invoke, videos, monkeypatch):
    monkeypatch.setenv("QUOTA_TABLE", "no-such-table")
    runtime.current.cache_clear()
    response = invoke(sqs_event({"vids": videos[:3], "brIndexes": [1]}))
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert stack.polyv.answers() == []


def test_too_little_time_parks_without_calling(stack, videos):
    from polyv_prewarm import handler as app

    response = app.lambda_handler(sqs_event({"vids": videos[:3]}), LocalLambdaContext(timeout_s=5))
    assert response == {"batchItemFailures": []}  # parked: the recovery drain sends them
    assert stack.polyv.answers() == []
    assert len(stack.backlog_keys()) == 9


def test_too_many_files_answer_fails_loudly(stack, invoke, videos):
    stack.polyv.inject("error", message="can't submit more than 100 files")
    with pytest.raises(PolyvContractViolation):
        invoke(direct(videos, 3))
    assert stack.quota_used(stack.polyv.today()) == 0


def test_secrets_manager_down_while_a_batch_is_read_hands_it_back(stack, invoke):
    """An outage like any other: the batch is not failed whole (its malformed message fails alone,
    as malformed), and the redelivery after the outage sends everything."""
    stack.polyv.add_video(vid(1))
    stack.aws_faults.inject("error", "GetSecretValue", count=None)
    event = sqs_event({"vid": vid(1), "brIndex": 1}, "not json", ids=["good", "bad"])
    response = invoke(event)
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {"good"}
    assert set(dead_lettered(stack)) == {"bad"}  # the malformed one, alone, as malformed
    assert stack.polyv.answers() == []
    stack.aws_faults.clear()
    again = invoke(sqs_event({"vid": vid(1), "brIndex": 1}, ids=["good"]))
    assert again == {"batchItemFailures": []}
    assert stack.polyv.accepted_files() == [(vid(1), 1)]
