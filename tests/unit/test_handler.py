"""The handler's routes over a runtime of in-memory fakes: what each event source gets back, and
which messages are handed back. (tests/integration/test_handler.py runs the same handler over
HTTP to the Polyv simulator and moto.)"""

from __future__ import annotations

import pytest

from polyv_prewarm import handler
from polyv_prewarm.events import InvalidEvent
from polyv_prewarm.lambda_context import LocalLambdaContext
from tests.helpers import DAY, World, sqs_event, vid


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World(limit=20, MANUAL_RESERVE="0")
    w.serve_the_handler(monkeypatch)
    return w


def invoke(event: dict) -> dict:
    return handler.lambda_handler(event, LocalLambdaContext())


def test_an_sqs_batch_hands_back_only_the_malformed_message(world):
    event = sqs_event(
        {"vid": vid(1), "brIndex": 1}, "not json at all", {"vids": [vid(2)]}, ids=["a", "b", "c"]
    )

    assert invoke(event) == {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert sorted(world.polyv.accepted_files()) == sorted([(vid(1), 1)] + [(vid(2), br) for br in (1, 2, 3)])


def test_an_sqs_batch_whose_files_could_not_be_claimed_is_handed_back_message_by_message(world):
    world.ledger.unavailable = True  # the ledger (and the backlog with it) is down: nothing can wait
    event = sqs_event({"vid": vid(1), "brIndex": 1}, {"vid": vid(1), "brIndex": 1}, ids=["a", "b"])

    # "b" only repeats "a"'s file (a duplicate in this batch): done; "a" holds the file itself
    assert invoke(event) == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert world.ledger.used == {}
    assert world.polyv.calls == []


def test_a_batch_whose_files_found_no_quota_succeeds_they_wait_in_the_backlog(world):
    event = sqs_event({"vids": [vid(i) for i in range(10)]}, ids=["a"])  # 30 files, 20 a day

    assert invoke(event) == {"batchItemFailures": []}
    assert len(world.backlog.items) == 10


def test_a_notification_with_files_not_done_fails_so_lambda_retries_it(world):
    world.ledger.unavailable = True
    event = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"object": {"key": f"{vid(1)}/x.mp4"}},
    }

    with pytest.raises(handler.FilesHandedBack, match="3 files were not submitted"):
        invoke(event)


def test_a_direct_dry_run_plans_calls_and_sends_nothing(world):
    summary = invoke({"vids": [vid(i) for i in range(40)], "brIndexes": [1, 2, 3], "dryRun": True})

    assert summary["counts"] == {"planned": 20, "deferred": 100}
    assert {f["call"] for f in summary["files"] if f["fate"] == "planned"} == {1}
    assert world.polyv.calls == []


def test_direct_flags_are_checked_before_anything_is_read(world):
    with pytest.raises(InvalidEvent, match="force must be true or false"):
        invoke({"vid": vid(1), "force": "yes"})
    assert world.polyv.calls == []


def test_the_drain_action_answers_with_what_is_left_in_the_backlog(world):
    invoke({"vids": [vid(i) for i in range(10)]})  # 20 sent, 10 deferred
    world.clock.advance(days=1)

    summary = invoke({"action": "drain"})

    assert summary["counts"] == {"submitted": 10}
    assert summary["backlog"] == {
        "files": 0,
        "oldestDeferredAt": None,
        "waiting": 0,
        "tiers": {"normal": 0, "later": 0, "backfill": 0, "resend": 0, "suspect": 0},
    }


def test_quota_and_status_actions_answer_typed_summaries(world):
    invoke({"vid": vid(1), "brIndex": 2})

    quota = invoke({"action": "quota"})
    status = invoke({"action": "status", "vid": vid(1)})

    assert (quota["day"], quota["used"], quota["remaining"], quota["backlog"]["files"]) == (DAY, 1, 19, 0)
    assert status["days"][DAY]["2"]["state"] == "submitted"


def test_a_status_of_a_vid_of_no_account_served_is_refused_with_the_reason(world):
    with pytest.raises(InvalidEvent, match="no account for userid '1b448be323'"):
        invoke({"action": "status", "vid": vid(1, userid="1b448be323")})


def test_another_rules_scheduled_event_drains_nothing(world):
    invoke({"vids": [vid(i) for i in range(10)]})
    world.clock.advance(days=1)
    calls = len(world.polyv.calls)

    answer = invoke({"detail-type": "Scheduled Event", "source": "aws.events", "resources": ["arn:rule/x"]})

    assert answer["resources"] == ["arn:rule/x"]
    assert len(world.polyv.calls) == calls
    assert len(world.backlog.items) == 10


def test_an_unreadable_secret_hands_the_batch_back_and_malformed_messages_still_fail_alone(world):
    from polyv_prewarm.domain.ports import CredentialsError

    def no_secret():
        raise CredentialsError("cannot read secret 'polyv/test': InternalServiceError")

    world.polyv.userid = no_secret
    event = sqs_event(
        {"vid": vid(1), "brIndex": 1}, "not json at all", {"vids": [vid(2)]}, ids=["a", "b", "c"]
    )
    assert invoke(event) == {
        "batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}, {"itemIdentifier": "c"}]
    }
    assert world.polyv.calls == []
    assert world.ledger.calls == []  # nothing claimed, nothing counted
