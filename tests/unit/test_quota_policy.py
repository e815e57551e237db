"""The quota policy: a reserve for people, a maximum age for deferred files, the drain order."""

from __future__ import annotations

import pytest

from polyv_prewarm.config import ConfigurationError, Settings
from polyv_prewarm.domain.model import Fate, FileRef, Origin
from polyv_prewarm.summaries import summary
from tests.fakes import vid
from tests.helpers import World, requests_for


def policy_world(limit: int, *, reserve: int = 0, newest_first: bool = False, max_age_days: int = 7) -> World:
    return World(
        limit=limit,
        MANUAL_RESERVE=str(reserve),
        BACKLOG_MAX_AGE_DAYS=str(max_age_days),
        DRAIN_ORDER="newest" if newest_first else "oldest",
    )


def test_automatic_traffic_leaves_the_reserve_and_a_priority_request_uses_it():
    w = policy_world(10, reserve=3)
    pipeline = w.prewarm(requests_for(12, origin=Origin("sqs", message_id="m")))
    assert pipeline.count(Fate.SUBMITTED) == 7
    assert pipeline.count(Fate.DEFERRED) == 5
    plain = w.prewarm(requests_for(1, start=100))
    assert plain.count(Fate.DEFERRED) == 1  # a direct request without priority is like the pipeline's
    urgent = w.prewarm(requests_for(4, start=200), priority_high=True)
    assert urgent.count(Fate.SUBMITTED) == 3  # the reserve, and not one file more
    assert urgent.count(Fate.DEFERRED) == 1
    assert summary(urgent.quota)["reserve"] == {"files": 3, "used": 3}
    assert summary(w.queries.quota())["reserve"] == {"files": 3, "used": 3}


def test_the_drain_leaves_the_reserve_too():
    w = policy_world(10, reserve=3)
    w.prewarm(requests_for(30))
    w.clock.advance(days=1)
    assert w.drain().count(Fate.SUBMITTED) == 7


def three_days(newest_first: bool) -> tuple[World, list[list[FileRef]]]:
    w = policy_world(2, newest_first=newest_first, max_age_days=2)
    w.prewarm(requests_for(4))  # day 0: vid 0, 1 sent; 2, 3 deferred
    w.clock.advance(hours=1)
    w.prewarm(requests_for(2, start=4))  # an hour later: 4, 5 deferred
    sent = []
    for _ in range(3):
        w.clock.advance(days=1)
        before = len(w.polyv.accepted_files())
        report = w.drain()
        sent.append(w.polyv.accepted_files()[before:])
        w.reports = [*getattr(w, "reports", []), report]
    return w, sent


def test_newest_first_drains_the_freshest_and_old_files_expire():
    w, sent = three_days(newest_first=True)
    assert sent[0] == [FileRef(vid(5), 1), FileRef(vid(4), 1)]  # day 1: the newest deferrals
    assert sent[1] == []  # day 2: 2 and 3 are more than two days old: expired, not sent
    expired = [r for r in w.reports[1].results if r.fate is Fate.EXPIRED]
    assert [r.file for r in expired] == [FileRef(vid(2), 1), FileRef(vid(3), 1)]
    assert "more than 2 days ago" in expired[0].reason
    assert w.backlog.items == {}


def test_oldest_first_drains_in_arrival_order():
    _, sent = three_days(newest_first=False)
    assert sent[0] == [FileRef(vid(2), 1), FileRef(vid(3), 1)]
    assert sent[1] == [FileRef(vid(4), 1), FileRef(vid(5), 1)]


BASE = {"POLYV_SECRET_ID": "s", "QUOTA_TABLE": "t"}


def test_the_policy_settings_and_their_defaults():
    settings = Settings.from_env(BASE)
    assert (settings.manual_reserve, settings.backlog_max_age_days, settings.drain_newest_first) == (
        100,
        7,
        True,
    )
    assert Settings.from_env({**BASE, "DRAIN_ORDER": "oldest"}).drain_newest_first is False
    assert Settings.from_env({**BASE, "MANUAL_RESERVE": "0"}).manual_reserve == 0
    assert Settings.from_env({**BASE, "DAILY_FILE_LIMIT": "50"}).manual_reserve == 2  # 5 %


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MANUAL_RESERVE": "2000"}, "below DAILY_FILE_LIMIT"),
        ({"MANUAL_RESERVE": "-1"}, "MANUAL_RESERVE"),
        ({"DRAIN_ORDER": "random"}, "newest or oldest"),
        ({"BACKLOG_MAX_AGE_DAYS": "0"}, "BACKLOG_MAX_AGE_DAYS"),
    ],
)
def test_bad_policy_settings_name_the_variable(env, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({**BASE, **env})
