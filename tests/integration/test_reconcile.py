"""The reconcile on the local stack: the function's ``{"action": "reconcile"}`` reads the Polyv
simulator's get-new-list (signed, paged) under each account's own secretkey, finds the files no
event brought, and warms them through the ordinary prewarm; its marks are moto's DynamoDB items."""

from __future__ import annotations

import json

import pytest

from devstack.polyv_simulator import callback, deliver
from polyv_prewarm import runtime
from tests.helpers import vid

pytestmark = pytest.mark.integration

QUARTER = 15 * 60


def caught_up(stack, invoke) -> None:
    """A first reconcile (it looks back a day: nothing new), then 15 minutes."""
    assert invoke({"action": "reconcile"})["filesFound"] == 0
    stack.seconds_offset += QUARTER


def test_a_video_whose_callbacks_were_lost_is_warmed_by_the_next_reconcile_once(stack, invoke):
    caught_up(stack, invoke)
    lost = vid(700)
    stack.polyv.add_video(lost, (1, 2))  # uploaded and transcoded now; no callback ever arrives
    before = len(stack.polyv.tasks())
    stack.seconds_offset += QUARTER
    summary = invoke({"action": "reconcile"})
    assert summary["filesFound"] == 2
    new = stack.polyv.tasks()[before:]
    assert sorted(f for t in new for f in t.files) == [(lost, 1), (lost, 2)]
    assert summary["reconcile"][stack.userid]["complete"] is True
    stack.seconds_offset += QUARTER
    again = invoke({"action": "reconcile"})
    assert again["filesFound"] == 0
    assert len(stack.polyv.tasks()) == before + len(new)  # warmed once


def test_with_every_callback_delivered_the_reconcile_adds_no_polyv_call(
    stack, invoke, callback_api, prewarm_queue
):
    caught_up(stack, invoke)
    video = vid(701)
    delivered = stack.polyv.transcode(stack.userid, video, (1, 2, 3), callback_url=callback_api.url)
    assert {status for _, status in delivered} == {200}
    prewarm_queue.drain()
    calls = len(stack.polyv.requests_at())
    stack.seconds_offset += QUARTER
    summary = invoke({"action": "reconcile"})
    assert summary["filesFound"] == 0
    assert summary["reconcile"][stack.userid]["listed"] >= 1
    assert len(stack.polyv.requests_at()) == calls  # no prewarm call (the listing is a GET)


def test_the_listing_down_costs_nothing_but_a_count(stack, invoke):
    caught_up(stack, invoke)
    stack.polyv.add_video(vid(702), (1,))
    stack.polyv.listing_down = True
    before = len(stack.polyv.tasks())
    stack.seconds_offset += QUARTER
    for n in (1, 2):
        summary = invoke({"action": "reconcile"})
        assert summary["reconcile"][stack.userid]["failuresInARow"] == n
        assert summary["filesFound"] == 0
    assert len(stack.polyv.tasks()) == before
    stack.polyv.add_video(vid(703), (1,))
    assert invoke({"vid": vid(703), "brIndex": 1})["counts"] == {"submitted": 1}  # prewarming goes on
    stack.polyv.listing_down = False
    summary = invoke({"action": "reconcile"})
    assert summary["filesFound"] == 1  # vid(702): the watermark had not moved past it
    assert "error" not in summary["reconcile"][stack.userid]


def test_every_account_is_reconciled_under_its_own_secretkey(stack, invoke, callback_api):
    other = "b7c41a09d2"
    stack.add_account(other)
    runtime.current.cache_clear()
    caught_up(stack, invoke)
    stack.polyv.add_video(vid(704), (1,))
    stack.polyv.add_video(vid(704, other), (1, 2))
    stack.seconds_offset += QUARTER
    summary = invoke({"action": "reconcile"})
    assert summary["filesFound"] == 3
    assert {u for u, _ in stack.polyv.listings("get-new-list")} == {stack.userid, other}
    assert "the sign is not right." not in [
        a for a in stack.polyv.answers() if a
    ]  # each listing signed with its own key (a refused one would show)
    mine = [t for t in stack.polyv.tasks() if any(v == vid(704, other) for v, _ in t.files)]
    assert [t.userid for t in mine] == [other]
    forged = callback("encode", vid(705, other), stack.secretkey, format="mp4", df=1)
    assert deliver(callback_api.url, forged) == 403  # the accounts stay apart on the way in too


def test_the_cli_looks_since_a_day_dry_run_then_for_real_and_moves_no_mark(stack, run_cli):
    day = stack.polyv.today()
    stack.polyv.add_video(vid(706), (1, 2), uploaded_at=stack.now().timestamp() - 3600)
    code, out, _ = run_cli("--json", "reconcile", "--since", day, "--dry-run")
    assert code == 0
    planned = json.loads(out)
    assert {(f["vid"], f["brIndex"]) for f in planned["files"] if f["vid"] == vid(706)} == {
        (vid(706), 1),
        (vid(706), 2),
    }
    assert stack.polyv.tasks() == []
    code, out, _ = run_cli("--json", "reconcile", "--since", day)
    assert code == 0
    assert (vid(706), 1) in [f for t in stack.polyv.tasks() for f in t.files]
    marks = stack.client("dynamodb").get_item(
        TableName=stack.tables["QuotaTable"], Key={"pk": {"S": "RECONCILE"}, "sk": {"S": stack.userid}}
    )
    assert "Item" not in marks  # a person's look moves no mark
    code, _, err = run_cli("reconcile", "--since", "yesterday")
    assert code == 2
    assert "--since must be YYYY-MM-DD" in err


def test_the_mark_is_one_item_read_back_as_written(stack):
    from datetime import timedelta

    from polyv_prewarm.adapters.reconcile_marks import DynamoReconcileMarks
    from polyv_prewarm.domain.model import FileRef
    from polyv_prewarm.domain.reconcile import Mark

    marks = DynamoReconcileMarks(stack.tables["QuotaTable"], stack.client("dynamodb"), stack.userid)
    assert marks.get() is None
    now = stack.now()
    mark = Mark(
        since=now,
        page=10,
        pass_end=now + timedelta(minutes=5),
        failures=2,
        candidates=frozenset({FileRef(vid(1), 1), FileRef(vid(2), 3)}),
    )
    marks.put(mark)
    assert marks.get() == mark
    marks.put(Mark(since=now))
    assert marks.get() == Mark(since=now)  # written whole: no candidate left behind
