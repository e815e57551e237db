"""The simulator enforces the documented contract (it is the oracle for the other tests)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from devstack.polyv_simulator import PolyvSimulator, expected_sign

pytestmark = pytest.mark.integration

USERID, SECRET = "e6b23c6f51", "Kx9fQ2mZ7pLr4tWv"
VID = "e6b23c6f513fbe025b94efdd10d7ab47_e"


@pytest.fixture(scope="module")
def sim():
    simulator = PolyvSimulator(daily_limit=5).start()
    simulator.add_account(USERID, SECRET)
    simulator.add_video(VID, (1, 2))
    yield simulator
    simulator.stop()


@pytest.fixture(autouse=True)
def _clean(sim):
    sim.reset(daily_limit=5)


def form(videos, *, ptime=None, secret=SECRET, **overrides):
    params = {
        "userid": USERID,
        "ptime": str(ptime or int(time.time() * 1000)),
        "action": "push",
        "fileType": "zip",
        "videos": json.dumps(videos, separators=(",", ":")),
    }
    params.update(overrides)
    params["sign"] = expected_sign(params, secret)
    return params


def post(sim, data, **kwargs):
    response = requests.post(sim.url, data=data, timeout=5, **kwargs)
    return response.json()


def test_each_account_has_its_own_key_limit_and_videos(sim):
    other, other_secret, other_vid = "0a1b2c3d4e", "Zq8wE3rT6yU1iO4p", "0a1b2c3d4e" + "f" * 22 + "_e"
    sim.add_account(other, other_secret, daily_limit=1)
    sim.add_video(other_vid, (1, 2))
    mine = {"vid": VID, "brIndex": 1}
    # a vid of the other account, posted by this one: Polyv does not know it here
    assert post(sim, form([{"vid": other_vid, "brIndex": 1}]))["message"] == "illeagal vid"
    # the other account signs with its own key, and has a limit of its own
    assert post(sim, form([mine], userid=other, secret=other_secret))["message"] == "illeagal vid"
    theirs = form([{"vid": other_vid, "brIndex": 1}], userid=other, secret=other_secret)
    assert post(sim, theirs)["status"] == "success"
    assert (
        post(sim, form([{"vid": other_vid, "brIndex": 2}], userid=other))["message"]
        == "the sign is not right."
    )
    spent = form([{"vid": other_vid, "brIndex": 2}], userid=other, secret=other_secret)
    assert post(sim, spent)["message"] == "can't submit more than 2000 files one day"
    assert post(sim, form([mine]))["status"] == "success"  # this account's day is its own
    assert (sim.used(other), sim.used(USERID)) == (1, 1)


def test_accepts_a_valid_call_and_counts_it(sim):
    answer = post(sim, form([{"vid": VID, "brIndex": 1}, {"vid": VID, "brIndex": 2}]))
    assert answer["code"] == 200
    assert answer["status"] == "success"
    assert answer["message"] == "success"
    assert len(answer["data"]["taskId"]) == 32
    assert sim.used(USERID) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            lambda: form([{"vid": VID, "brIndex": 1}], ptime=int(time.time() * 1000) - 181_000),
            "ptime is too old",
        ),
        (
            lambda: form([{"vid": VID, "brIndex": 1}], ptime=int(time.time() * 1000) + 181_000),
            "ptime is too old",
        ),
        (lambda: form([{"vid": VID, "brIndex": 1}], secret="wrong"), "the sign is not right."),
        (lambda: {**form([{"vid": VID, "brIndex": 1}]), "sign": "0" * 40}, "the sign is not right."),
        (lambda: form([{"vid": VID, "brIndex": 1}] * 101), "can't submit more than 100 files"),
        (lambda: form([{"vid": "e6b23c6f51ffffffffffffffffffffff_e", "brIndex": 1}]), "illeagal vid"),
        (lambda: form([{"vid": VID, "brIndex": 3}]), "bitrate does not exist"),
    ],
)
def test_documented_errors_verbatim(sim, data, message):
    answer = post(sim, data())
    assert answer == {"code": 400, "status": "error", "message": message, "data": None}
    assert sim.used(USERID) == 0


def test_daily_limit(sim):
    assert post(sim, form([{"vid": VID, "brIndex": 1}] * 4))["code"] == 200
    answer = post(sim, form([{"vid": VID, "brIndex": 1}] * 2))
    assert answer["message"] == "can't submit more than 2000 files one day"
    assert post(sim, form([{"vid": VID, "brIndex": 2}]))["code"] == 200  # exactly the limit
    assert sim.used(USERID) == 5


def test_rejects_json_body_and_missing_params(sim):
    answer = requests.post(sim.url, json=form([{"vid": VID, "brIndex": 1}]), timeout=5).json()
    assert "form" in answer["message"]
    params = form([{"vid": VID, "brIndex": 1}])
    del params["fileType"]
    assert "missing parameter: fileType" in post(sim, params)["message"]


def test_rejects_wrong_action(sim):
    assert "action=push" in post(sim, form([{"vid": VID, "brIndex": 1}], action="refresh"))["message"]


def listing(sim, api, params, *, secret=SECRET, userid=USERID):
    """A signed GET of a read API (``get-new-list`` or ``ranklist``)."""
    query = {**params, "ptime": str(int(time.time() * 1000))}
    query["sign"] = expected_sign(query, secret)
    base = sim.url.rsplit("/", 2)[0]  # .../v2
    path = f"video/{userid}/get-new-list" if api == "get-new-list" else f"videoview/{userid}/ranklist"
    return requests.get(f"{base}/{path}", params=query, timeout=5).json()


def test_get_new_list_pages_the_accounts_videos_newest_first_within_the_dates():
    sim = PolyvSimulator(timezone="Asia/Shanghai").start()
    try:
        sim.add_account(USERID, SECRET)
        now = time.time()
        mine = [f"{USERID}{i:022x}_a" for i in range(7)]
        for i, vid in enumerate(mine):  # one a day further back each, the first uploaded now
            sim.add_video(vid, (1, 2, 3)[: 1 + i % 3], uploaded_at=now - i * 86_400, plays=10 * i)
        sim.add_video("0a1b2c3d4e" + "0" * 22 + "_a", (1,), uploaded_at=now)  # another account's
        pages = [
            listing(sim, "get-new-list", {"catatree": "1", "numPerPage": "3", "pageNum": str(n)})["data"]
            for n in (1, 2, 3, 4)
        ]
        assert [len(p) for p in pages] == [3, 3, 1, 0]
        assert [e["vid"] for page in pages for e in page] == mine  # newest first, only this account's
        second = pages[0][1]
        assert second == {
            "vid": mine[1],
            "df": 2,
            "status": 60,
            "uploadTime": second["uploadTime"],
            "times": 10,
        }
        day = second["uploadTime"][:10]  # yesterday, in Shanghai
        one_day = listing(
            sim,
            "get-new-list",
            {"catatree": "1", "numPerPage": "100", "pageNum": "1", "startDate": day, "endDate": day},
        )["data"]
        assert [e["vid"] for e in one_day] == [mine[1]]
        assert sim.listings("get-new-list")[0] == (
            USERID,
            {**sim.listings("get-new-list")[0][1], "numPerPage": "3", "pageNum": "1"},
        )
    finally:
        sim.stop()


def test_the_read_apis_check_their_sign_and_ptime(sim):
    params = {"catatree": "1", "numPerPage": "10", "pageNum": "1"}
    assert listing(sim, "get-new-list", params, secret="not-the-key")["message"] == "the sign is not right."
    assert (
        listing(sim, "ranklist", {"dr": "7days"}, secret="not-the-key")["message"] == "the sign is not right."
    )
    stale = {**params, "ptime": str(int(time.time() * 1000) - 600_000)}
    stale["sign"] = expected_sign(stale, SECRET)
    base = sim.url.rsplit("/", 2)[0]
    answer = requests.get(f"{base}/video/{USERID}/get-new-list", params=stale, timeout=5).json()
    assert answer["message"] == "ptime is too old"
    assert sim.listings() == []  # nothing listed for a refused request


def test_ranklist_ranks_the_accounts_played_videos(sim):
    sim.add_video(f"{USERID}{1:022x}_r", (1,), plays=5)
    sim.add_video(f"{USERID}{2:022x}_r", (1,), plays=50)
    sim.add_video(f"{USERID}{3:022x}_r", (1,), plays=0)
    sim.add_video(f"0a1b2c3d4e{4:022x}_r", (1,), plays=500)  # another account's
    data = listing(sim, "ranklist", {"dr": "7days"})["data"]
    ranked = [e for e in data if e["vid"].endswith("_r")]
    assert ranked == [
        {"vid": f"{USERID}{2:022x}_r", "times": 50},
        {"vid": f"{USERID}{1:022x}_r", "times": 5},
    ]
