"""Quota days on the simulated timeline (devstack/timeline.py: the template's schedules, the
daily drain, the late sweeps and the recovery drain, firing on their cron; the queue's settings
from template.yaml): every unit of a day on the file that matters most. Checked against the
Polyv simulator: what it accepted, when, and never above its daily limit."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import datetime, timedelta

import pytest

from devstack.timeline import Timeline
from polyv_prewarm import cli
from tests.helpers import TZ, pin_hour, set_limit, vid

pytestmark = pytest.mark.integration

DAILY_LIMIT_REFUSAL = "can't submit more than 2000 files one day"


@pytest.fixture
def timeline(stack):
    import app

    return Timeline(stack, app.lambda_handler, step=timedelta(minutes=5))


def accepted_by_day(stack) -> dict[str, Counter]:
    days: dict[str, Counter] = {}
    for task in stack.polyv.tasks():
        days.setdefault(task.day, Counter()).update(task.files)
    return days


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, TZ)


def default_reserve(stack, monkeypatch, limit: int) -> None:
    """The stack's settings have no reserve (its limits are small); these tests run with the
    function's default, 5 % of the limit."""
    monkeypatch.setenv("MANUAL_RESERVE", "")
    set_limit(stack, monkeypatch, limit)


def test_the_reserve_returns_before_midnight(stack, timeline, monkeypatch):
    default_reserve(stack, monkeypatch, 100)  # the reserve: 5
    videos = [vid(0x7000 + i) for i in range(150)]
    for v in videos:
        stack.polyv.add_video(v)
    timeline.send(*({"vids": videos[i : i + 10], "brIndexes": [1]} for i in range(0, 150, 10)))
    day = stack.polyv.today()
    timeline.run_until(timeline.now() + timedelta(hours=15, minutes=30))  # 10:00 -> 01:30 the next day
    by_day = accepted_by_day(stack)
    assert sum(by_day[day].values()) == 100  # 95 at 10:00, the reserve's 5 by the late sweep
    late = [t for t in stack.polyv.tasks() if t.day == day and local(t.at).hour == 23]
    assert sum(len(t.files) for t in late) == 5
    (next_day,) = set(by_day) - {day}
    assert sum(by_day[next_day].values()) == 50  # the rest, by the next day's drain at 00:05
    everything = Counter(f for t in stack.polyv.tasks() for f in t.files)
    assert set(everything) == {(v, 1) for v in videos}
    assert max(everything.values()) == 1  # none twice
    assert DAILY_LIMIT_REFUSAL not in stack.polyv.answers()


def test_a_tight_day_warms_every_videos_main_definition_and_spends_every_unit(stack, timeline, monkeypatch):
    monkeypatch.setenv("PRIORITY_BR_INDEXES", "2")
    default_reserve(stack, monkeypatch, 90)
    pin_hour(stack, monkeypatch, 8)
    timeline = Timeline(stack, timeline.handler, step=timedelta(minutes=5))
    day = stack.polyv.today()
    videos = [vid(0x8000 + i) for i in range(60)]
    for v in videos:
        stack.polyv.add_video(v, (1, 2, 3))
    for hour in range(12):  # 5 new videos an hour from 08:00, each asking for every definition
        timeline.send(*({"vid": v} for v in videos[hour * 5 : hour * 5 + 5]))
        timeline.run_until(timeline.now() + timedelta(hours=1))
    timeline.run_until(datetime.fromisoformat(day).replace(tzinfo=TZ) + timedelta(hours=23, minutes=59))
    tasks = [t for t in stack.polyv.tasks() if t.day == day]
    accepted = {f: t.at for t in tasks for f in t.files}
    assert all((v, 2) in accepted for v in videos)  # every video's main definition, that day
    assert sum(len(t.files) for t in tasks) == 90  # every unit of the day
    last_main = max(accepted[(v, 2)] for v in videos)
    thirds = [at for (v, br), at in accepted.items() if br == 3]
    assert all(at > last_main for at in thirds)  # no third definition before any video's main one
    assert DAILY_LIMIT_REFUSAL not in stack.polyv.answers()


def test_a_backfill_never_delays_a_fresh_file(stack, timeline, monkeypatch, tmp_path, capsys):
    default_reserve(stack, monkeypatch, 100)
    catalogue = tmp_path / "catalogue.csv"
    backfilled = [vid(0x9000 + i) for i in range(5000)]
    catalogue.write_text("vid,brIndex\n" + "".join(f"{v},1\n" for v in backfilled), encoding="utf-8")
    assert cli.main(["--json", "backfill", str(catalogue)]) == cli.EXIT_OK
    stored = json.loads(capsys.readouterr().out)
    assert (stored["files"], stored["stored"], stored["refused"]) == (5000, 5000, 0)
    for v in backfilled:
        stack.polyv.add_video(v, (1,))
    fresh = [vid(0x20000 + i) for i in range(66)]
    for v in fresh:
        stack.polyv.add_video(v, (1,))
    day = stack.polyv.today()
    sent_at: dict[str, datetime] = {}
    for hour in range(11):  # 10:00 -> 20:00, 6 fresh files an hour
        for v in fresh[hour * 6 : hour * 6 + 6]:
            sent_at[v] = timeline.now()
        timeline.send({"vids": fresh[hour * 6 : hour * 6 + 6], "brIndexes": [1]})
        timeline.run_until(timeline.now() + timedelta(hours=1))
    timeline.run_until(datetime.fromisoformat(day).replace(tzinfo=TZ) + timedelta(hours=23, minutes=59))
    accepted = {f[0]: t.at for t in stack.polyv.tasks() for f in t.files}
    for v in fresh:  # each fresh file within minutes of its message, none deferred for the backfill
        assert local(accepted[v]) - sent_at[v] < timedelta(minutes=10), v
    on_backfill = [v for v in accepted if v in set(backfilled)]
    assert len(on_backfill) == 100 - 66  # what fresh traffic left, to the last unit
    assert all(local(accepted[v]).hour == 23 for v in on_backfill)  # by the late sweeps only
    assert DAILY_LIMIT_REFUSAL not in stack.polyv.answers()


def test_a_backfill_run_twice_stores_each_file_once_and_says_what_it_refused(stack, tmp_path, capsys):
    catalogue = tmp_path / "catalogue.txt"
    good = [vid(0x30000 + i) for i in range(250)]
    lines = [*good, "e6b23c6f51short", "0000000000" + good[0][10:], f"{good[1]},4", "# a comment", ""]
    catalogue.write_text("\n".join(lines), encoding="utf-8")
    assert cli.main(["--json", "backfill", str(catalogue), "--dry-run"]) == cli.EXIT_REJECTED
    preview = json.loads(capsys.readouterr().out)
    assert (preview["files"], preview["refused"], preview["dryRun"]) == (750, 3, True)  # 3 definitions each
    assert [r["line"] for r in preview["refusedLines"]] == [251, 252, 253]
    assert stack.backlog_keys() == []
    assert cli.main(["--json", "backfill", str(catalogue)]) == cli.EXIT_REJECTED
    first = json.loads(capsys.readouterr().out)
    assert cli.main(["--json", "backfill", str(catalogue)]) == cli.EXIT_REJECTED
    second = json.loads(capsys.readouterr().out)
    assert (first["stored"], second["stored"], second["alreadyInBacklog"]) == (750, 0, 750)
    assert len(stack.backlog_keys()) == 750


def test_a_backfill_from_standard_input(stack, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(vid(0x40000 + i) + ",2" for i in range(30))))
    assert cli.main(["--json", "backfill", "-"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["stored"] == 30
