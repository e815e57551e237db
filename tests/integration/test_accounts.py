"""Several Polyv accounts in one deployment (docs/ledger.md, "Accounts"), on the local stack: the
Polyv secret in its ``accounts`` form in moto's Secrets Manager, the day counters and backlogs in
moto's DynamoDB, and the Polyv simulator knowing each account with its own secretkey and daily
limit (it checks every call's sign with the posting userid's key, and refuses a vid of another
account as ``illeagal vid``)."""

from __future__ import annotations

import json

import pytest

from devstack.polyv_simulator import callback, deliver
from polyv_prewarm import runtime
from tests.helpers import set_limit, shift_days, vid

pytestmark = pytest.mark.integration

OTHER = "b7c41a09d2"  # a second account's userid (a group's 分帐号)


def videos(stack, userid: str, n: int, start: int = 0) -> list[dict]:
    """``n`` videos of ``userid``'s in Polyv, one definition (brIndex 1) each."""
    out = []
    for i in range(start, start + n):
        stack.polyv.add_video(vid(i, userid), (1,))
        out.append({"vid": vid(i, userid), "brIndex": 1})
    return out


def next_day(stack, monkeypatch) -> None:
    stack.move_to_hour(10, next_day=True)
    shift_days(stack, monkeypatch, stack.day_offset)


def assert_never_mixed(stack) -> None:
    """Every call Polyv accepted was posted (and signed) by the account all its vids are of."""
    tasks = stack.polyv.tasks()
    assert tasks
    for task in tasks:
        assert {v[:10] for v, _ in task.files} == {task.userid}


def test_two_accounts_each_spend_their_own_limit_and_the_rest_waits_for_the_next_day(
    stack, invoke, monkeypatch
):
    set_limit(stack, monkeypatch, 100)
    stack.add_account(OTHER)
    mine, theirs = videos(stack, stack.userid, 150), videos(stack, OTHER, 150)
    summary = invoke({"videos": mine + theirs})
    day = stack.polyv.today()
    assert stack.polyv.used(stack.userid) == 100
    assert stack.polyv.used(OTHER) == 100
    assert_never_mixed(stack)
    assert summary["counts"] == {"submitted": 200, "deferred": 100}
    assert {u: a["quota"]["used"] for u, a in summary["accounts"].items()} == {stack.userid: 100, OTHER: 100}
    # each account's own counter and backlog, read from the table directly
    assert (stack.quota_used(day), stack.quota_used(day, OTHER)) == (100, 100)
    assert len(stack.backlog_keys()) == 50
    assert len(stack.backlog_keys(OTHER)) == 50
    assert all(key.startswith(OTHER) for key in stack.backlog_keys(OTHER))

    next_day(stack, monkeypatch)
    drained = invoke({"action": "drain"})
    assert drained["counts"] == {"submitted": 100}
    assert stack.polyv.used(stack.userid) == 50
    assert stack.polyv.used(OTHER) == 50
    assert_never_mixed(stack)
    accepted = sorted(stack.polyv.accepted_files())
    assert accepted == sorted((f["vid"], 1) for f in mine + theirs)  # every file, once
    assert stack.backlog_keys() == stack.backlog_keys(OTHER) == []


def test_five_accounts_each_signed_with_its_own_secretkey(stack, invoke, monkeypatch):
    set_limit(stack, monkeypatch, 100)
    others = [f"c{i}d8e3a7f0"[:10] for i in range(4)]
    for userid in others:
        stack.add_account(userid, daily_limit=20)  # Polyv's limit for these: 20 a day
    monkeypatch.setenv("POLYV_ACCOUNTS", ",".join([stack.userid] + [f"{u}:20" for u in others]))
    files = videos(stack, stack.userid, 30) + [f for u in others for f in videos(stack, u, 30)]
    summary = invoke({"videos": files})
    assert stack.polyv.used(stack.userid) == 30
    assert [stack.polyv.used(u) for u in others] == [20] * 4
    assert_never_mixed(stack)
    assert summary["counts"] == {"submitted": 110, "deferred": 40}
    assert "the sign is not right." not in stack.polyv.answers()
    assert {u: a["quota"]["limit"] for u, a in summary["accounts"].items()} == {
        stack.userid: 100,
        **dict.fromkeys(others, 20),
    }


def test_an_account_polyv_refuses_hands_its_files_back_while_the_other_sends(stack, prewarm_queue):
    stack.add_account(OTHER)
    stack.polyv.add_account(stack.userid, "not-the-key-in-the-secret")  # rotated in Polyv only
    mine, theirs = videos(stack, stack.userid, 3), videos(stack, OTHER, 3)
    sqs = stack.client("sqs")
    queue = stack.queues["PrewarmQueue"]
    handed = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"videos": mine}))["MessageId"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"videos": theirs}))
    [delivery] = prewarm_queue.drain(rounds=1)
    assert sorted(stack.polyv.accepted_files()) == sorted((f["vid"], 1) for f in theirs)
    assert stack.polyv.used(stack.userid) == 0
    assert delivery.failed == [handed]  # the refused account's message back to the queue, not lost

    stack.polyv.add_account(stack.userid, stack.secretkey)  # the person fixes the key
    stack.seconds_offset += 3600  # past the message's visibility timeout
    prewarm_queue.drain()
    assert sorted(stack.polyv.accepted_files()) == sorted((f["vid"], 1) for f in theirs + mine)


def test_a_callback_is_verified_with_the_key_of_its_vids_account(stack, callback_api, prewarm_queue):
    theirs = stack.add_account(OTHER)
    video = vid(7, OTHER)
    stack.polyv.add_video(video, (1,))
    forged = callback("encode", video, stack.secretkey, format="mp4", df=1)  # A's valid sign, B's vid
    assert deliver(callback_api.url, forged) == 403
    unknown = callback("encode", vid(7, "zz00000000"), stack.secretkey, format="mp4", df=1)
    assert deliver(callback_api.url, unknown) == 400  # no account for that userid
    assert prewarm_queue.drain() == []
    assert stack.polyv.tasks() == []
    genuine = callback("encode", video, theirs, format="mp4", df=1)
    assert deliver(callback_api.url, genuine) == 200
    prewarm_queue.drain()
    assert [(t.userid, t.files) for t in stack.polyv.tasks()] == [(OTHER, ((video, 1),))]


def test_a_table_of_the_one_account_version_keeps_its_count_and_backlog(stack, invoke, run_cli, monkeypatch):
    set_limit(stack, monkeypatch, 100)
    mine = videos(stack, stack.userid, 120)
    invoke({"videos": mine})  # the one-account form of the secret: keys QUOTA and BACKLOG
    day = stack.polyv.today()
    assert (stack.quota_used(day), len(stack.backlog_keys())) == (100, 20)

    stack.add_account(OTHER)  # the secret rewritten in the accounts form, this account first
    runtime.current.cache_clear()  # a new container: the secret read afresh
    theirs = videos(stack, OTHER, 10)
    summary = invoke({"videos": mine[:5] + theirs})
    assert summary["accounts"][stack.userid]["counts"] == {"duplicate": 5}  # its ledger read on
    assert summary["accounts"][OTHER]["counts"] == {"submitted": 10}
    code, out, _ = run_cli("--json", "quota")
    assert code == 0
    quotas = json.loads(out)["accounts"]
    assert quotas[stack.userid]["used"] == 100
    assert quotas[stack.userid]["backlog"]["files"] == 20
    assert quotas[OTHER]["used"] == 10
    assert quotas[OTHER]["backlog"]["files"] == 0

    next_day(stack, monkeypatch)
    invoke({"action": "drain"})
    assert stack.polyv.used(stack.userid) == 20  # the old backlog drained on the account's quota
    assert stack.backlog_keys() == []


def test_the_cli_shows_every_account_or_the_one_asked_for(stack, run_cli, monkeypatch):
    set_limit(stack, monkeypatch, 100)
    stack.add_account(OTHER)
    mine, theirs = videos(stack, stack.userid, 4), videos(stack, OTHER, 110)
    code, out, _ = run_cli("--json", "--account", OTHER, "submit", *[f["vid"] for f in theirs], "--br", "1")
    assert code == 0
    assert stack.polyv.used(OTHER) == 100
    assert stack.polyv.used(stack.userid) == 0
    code, out, _ = run_cli("--json", "--account", OTHER, "submit", mine[0]["vid"], "--br", "1")
    assert code == 4
    assert stack.polyv.used(stack.userid) == 0
    assert "no account for userid" in out
    code, out, _ = run_cli("--json", "backlog")
    assert code == 0
    backlogs = json.loads(out)["accounts"]
    assert list(backlogs) == [stack.userid, OTHER]
    assert backlogs[OTHER]["files"] == 10
    assert backlogs[stack.userid]["files"] == 0
    code, out, _ = run_cli("--json", "--account", OTHER, "quota")
    assert code == 0
    assert json.loads(out)["used"] == 100
    code, out, _ = run_cli("quota")
    assert code == 0
    assert f"account {stack.userid}" in out
    assert f"account {OTHER}" in out
    code, _, err = run_cli("--account", "zz00000000", "quota")
    assert code == 2
    assert "zz00000000" in err
