"""The Polyv client over real HTTP against the simulator."""

from __future__ import annotations

import socket
import time

import pytest

from devstack.polyv_simulator import PolyvSimulator
from polyv_prewarm.adapters.credentials import PolyvCredentials
from polyv_prewarm.adapters.polyv import MAX_ANSWER_BYTES, PolyvClient, RetryPolicy
from polyv_prewarm.domain.model import FileRef
from polyv_prewarm.domain.ports import PolyvConfigurationError, PolyvFilesRefused, PolyvUnavailable
from tests.recorder import RecordingServer

pytestmark = pytest.mark.integration

USERID = "e6b23c6f51"
VID = "e6b23c6f513fbe025b94efdd10d7ab47_e"
FAST = RetryPolicy(attempts=3, backoff_base=0.001, connect_retries=1, connect_timeout=0.5, read_timeout=2)


class RotatingSecret:
    """Returns a stale secret from its cache until asked to refresh."""

    def __init__(self, cached: str, fresh: str) -> None:
        self.cached, self.fresh, self.refreshes = cached, fresh, 0

    def get(self, *, refresh: bool = False) -> PolyvCredentials:
        if refresh:
            self.refreshes += 1
            self.cached = self.fresh
        return PolyvCredentials(USERID, self.cached)


@pytest.fixture(scope="module")
def sim():
    simulator = PolyvSimulator().start()
    simulator.add_video(VID, (1, 2))
    yield simulator
    simulator.stop()


def test_push_returns_task_id(sim):
    sim.add_account(USERID, "right")
    client = PolyvClient(sim.url, RotatingSecret("right", "right"), policy=FAST)
    task_id = client.push([FileRef(VID, 1)])
    assert task_id == sim.tasks()[-1].task_id


def test_rotated_secret_is_refreshed_once(sim):
    sim.add_account(USERID, "new")
    secret = RotatingSecret("old", "new")
    client = PolyvClient(sim.url, secret, policy=FAST)
    assert client.push([FileRef(VID, 2)])
    assert secret.refreshes == 1


def test_wrong_secret_after_refresh_is_a_configuration_error(sim):
    sim.add_account(USERID, "actual")
    secret = RotatingSecret("wrong", "still-wrong")
    with pytest.raises(PolyvConfigurationError) as info:
        PolyvClient(sim.url, secret, policy=FAST).push([FileRef(VID, 1)])
    assert secret.refreshes == 1
    assert "still-wrong" not in str(info.value)


def test_skewed_clock_is_retried_then_reported(sim):
    sim.add_account(USERID, "k")
    client = PolyvClient(sim.url, RotatingSecret("k", "k"), policy=FAST, now_ms=lambda: 1_000_000_000_000)
    with pytest.raises(PolyvUnavailable, match="clock"):
        client.push([FileRef(VID, 1)])
    assert sim.answers()[-2:] == ["ptime is too old", "ptime is too old"]


def test_refused_files(sim):
    sim.add_account(USERID, "k")
    client = PolyvClient(sim.url, RotatingSecret("k", "k"), policy=FAST)
    with pytest.raises(PolyvFilesRefused, match="bitrate does not exist"):
        client.push([FileRef(VID, 3)])


def test_nothing_listening_is_unavailable_and_not_ambiguous():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PolyvClient(
        f"http://127.0.0.1:{port}/v2/video/refresh-cdn-cache",
        RotatingSecret("k", "k"),
        policy=FAST,
        sleep=lambda _: None,
    )
    with pytest.raises(PolyvUnavailable) as info:
        client.push([FileRef(VID, 1)])
    assert info.value.ambiguous is False


def test_more_than_100_files_is_refused_before_sending(sim):
    client = PolyvClient(sim.url, RotatingSecret("k", "k"), policy=FAST)
    before = len(sim.answers())
    with pytest.raises(ValueError, match=r"1\.\.100"):
        client.push([FileRef(VID, 1)] * 101)
    assert len(sim.answers()) == before


def test_the_secret_is_read_again_once_not_on_every_later_attempt(sim):
    sim.add_account(USERID, "k")
    secret = RotatingSecret("k", "k")
    sim.inject("error", message="the sign is not right.")  # then a transient fault, then success
    sim.inject("http_error", status=503)
    client = PolyvClient(sim.url, secret, policy=FAST, sleep=lambda _: None)
    assert client.push([FileRef(VID, 1)])
    assert secret.refreshes == 1
    assert sim.answers()[-3:] == ["[fault] the sign is not right.", "[fault] HTTP 503", "success"]


@pytest.mark.parametrize(
    ("fault", "options", "ambiguous", "answered"),
    [
        ("no_task_id", {}, True, True),  # Polyv took it (the simulator counted it) but said no taskId
        ("non_json", {"process": True}, True, True),  # a 200 whose body is not Polyv's JSON
        ("http_error", {"status": 500, "count": 3}, False, False),  # a 5xx: nothing processed, retried
        ("http_error", {"status": 503, "count": 3}, False, False),  # 503: not processed, retried, given up
        ("blackhole", {"delay": 2.5}, True, False),  # no answer after sending: Polyv may be down
    ],
    ids=["200-without-task-id", "200-html", "500-html", "503-html", "no-answer"],
)
def test_answers_of_unknown_meaning_are_in_doubt_and_a_5xx_proves_nothing_was_taken(
    sim, fault, options, ambiguous, answered
):
    """In doubt (ambiguous) only when Polyv may have taken the call; ``answered``: an answer came,
    whatever it meant (Polyv is up: no breaker), against no answer at all."""
    sim.add_account(USERID, "right")
    sim.inject(fault, **options)
    client = PolyvClient(sim.url, RotatingSecret("right", "right"), policy=FAST)
    with pytest.raises(PolyvUnavailable) as info:
        client.push([FileRef(VID, 1)])
    assert (info.value.ambiguous, info.value.answered) == (ambiguous, answered)
    sim.reset()


class UnreadableSecret:
    def get(self, *, refresh: bool = False) -> PolyvCredentials:
        from polyv_prewarm.adapters.credentials import CredentialsError

        raise CredentialsError("cannot read secret 'polyv': InternalServiceError")


def test_an_unreadable_secret_is_unavailable_and_nothing_was_sent(sim):
    client = PolyvClient(sim.url, UnreadableSecret(), policy=FAST)
    before = len(sim.answers())
    with pytest.raises(PolyvUnavailable) as info:
        client.push([FileRef(VID, 1)])
    assert info.value.ambiguous is False
    assert "cannot read the Polyv secret" in str(info.value)
    assert len(sim.answers()) == before


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_answer_of_unknown_meaning_and_is_not_followed(sim, status):
    sim.add_account(USERID, "right")
    with RecordingServer(status=200) as elsewhere:
        sim.inject("redirect", status=status, location=f"{elsewhere.url}/v2/video/refresh-cdn-cache")
        client = PolyvClient(sim.url, RotatingSecret("right", "right"), policy=FAST)
        with pytest.raises(PolyvUnavailable, match=f"redirect \\(HTTP {status}\\)") as info:
            client.push([FileRef(VID, 1)])
    assert info.value.ambiguous is True
    assert elsewhere.seen == []
    assert "sign" not in str(info.value)


def test_an_oversized_answer_is_not_read_on(sim):
    sim.add_account(USERID, "right")
    sim.inject("oversized", size=10 * MAX_ANSWER_BYTES)
    client = PolyvClient(sim.url, RotatingSecret("right", "right"), policy=FAST)
    with pytest.raises(PolyvUnavailable, match="not its JSON") as info:
        client.push([FileRef(VID, 1)])
    assert info.value.ambiguous is True


def test_proxies_and_ca_bundles_of_the_environment_are_not_trusted(sim, monkeypatch, tmp_path):
    sim.add_account(USERID, "right")
    with RecordingServer(status=502) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "attacker-ca.pem"))
        monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
        client = PolyvClient(sim.url, RotatingSecret("right", "right"), policy=FAST)
        assert client.push([FileRef(VID, 1)]) == sim.tasks()[-1].task_id
    assert proxy.seen == []


def test_an_explicit_proxy_carries_the_calls(sim):
    sim.add_account(USERID, "right")
    with RecordingServer(status=503) as proxy:
        client = PolyvClient(
            sim.url, RotatingSecret("right", "right"), policy=FAST, proxy_url=proxy.url, sleep=lambda _: None
        )
        with pytest.raises(PolyvUnavailable):
            client.push([FileRef(VID, 1)])
    assert [seen.target for seen in proxy.seen] == [sim.url] * FAST.attempts  # absolute URI: a proxy


def test_get_video_msg_lists_the_definitions_the_video_has_signed_and_resigned_after_a_rotation(sim):
    sim.add_account(USERID, "fresh")
    secret = RotatingSecret("stale", "fresh")
    client = PolyvClient(sim.url, secret, policy=FAST)
    assert client.definitions(VID) == frozenset({1, 2})  # the simulator's video has 1 and 2
    assert secret.refreshes == 1
    assert sim.lookups()[-1] == VID
    with pytest.raises(PolyvUnavailable, match="illeagal vid") as unknown:
        client.definitions(f"{USERID}ffffffffffffffffffffff_e")
    assert unknown.value.refused
    sim.video_msg_down = True
    try:
        with pytest.raises(PolyvUnavailable, match="get-video-msg down"):
            client.definitions(VID)
    finally:
        sim.video_msg_down = False
    skewed = PolyvClient(
        sim.url, RotatingSecret("fresh", "fresh"), policy=FAST, now_ms=lambda: 1_000_000_000_000
    )
    with pytest.raises(PolyvUnavailable, match="ptime is too old"):
        skewed.definitions(VID)
    with pytest.raises(PolyvConfigurationError):
        PolyvClient(sim.url, RotatingSecret("wrong", "wrong"), policy=FAST).definitions(VID)


def test_get_video_msg_answers_of_another_shape_are_unavailable_not_a_guess():
    from polyv_prewarm.adapters.polyv import _video_definitions

    video = {"vid": VID, "filesize": [10, 0, 30], "hls_1": "u1", "hls_3": "", "mp4_3": "u3"}
    assert _video_definitions(200, {"code": 200, "data": [video]}, VID) == frozenset({1, 3})
    assert _video_definitions(
        200, {"code": 200, "data": [{"vid": VID, "filesize": [5], "hls": ["a"]}]}, VID
    ) == {1}
    for answer in (
        {"code": 200, "data": []},
        {"code": 200, "data": [{**video, "vid": "another"}]},
        {"code": 200, "data": [{"vid": VID}]},
        {"code": 400, "status": "error", "message": "x"},
        None,
    ):
        with pytest.raises(PolyvUnavailable):
            _video_definitions(200, answer, VID)


def test_get_video_msgs_sign_never_reaches_a_log_line_at_debug(sim, caplog, monkeypatch):
    """get-video-msg is a GET: its sign is in the query string, which urllib3 logs at DEBUG."""
    import logging

    from polyv_prewarm.adapters.credentials import keep_secrets_out_of_wire_logs
    from polyv_prewarm.adapters.signing import sign

    sim.add_account(USERID, "fresh")
    monkeypatch.setattr(sim, "clock", lambda: 1_764_201_600.0)
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, as a Lambda log level may set it
    keep_secrets_out_of_wire_logs()  # what both runtimes do when they are built
    client = PolyvClient(
        sim.url, RotatingSecret("fresh", "fresh"), policy=FAST, now_ms=lambda: 1_764_201_600_000
    )
    assert client.definitions(VID) == frozenset({1, 2})
    assert sign({"vid": VID, "ptime": "1764201600000", "format": "json"}, "fresh") not in caplog.text


def test_get_new_list_pages_and_ranklist_signed_and_resigned_after_a_rotation(sim):
    sim.add_account(USERID, "fresh")
    sim.reset()
    now = time.time()
    new = [f"{USERID}{i:022x}_n" for i in range(5)]
    for i, vid in enumerate(new):
        sim.add_video(vid, (1, 2, 3)[: 1 + i % 3], uploaded_at=now + 60 * i, plays=i)  # the last is newest
    secret = RotatingSecret("stale", "fresh")
    client = PolyvClient(sim.url, secret, policy=FAST)
    first = client.new_videos(page=1, per_page=2)
    assert [v.vid for v in first] == [new[4], new[3]]
    assert (first[0].definitions, first[0].status, first[0].plays) == (2, 60, 4)
    assert len(first[0].uploaded) == len("2026-12-04 10:00:00")
    assert secret.refreshes == 1  # the stale key refused once, the fresh one read and used
    pages = [client.new_videos(page=n, per_page=2) for n in (2, 3, 4)]
    assert [v.vid for page in [first, *pages] for v in page][:5] == new[::-1]
    day = first[0].uploaded[:10]
    that_day = client.new_videos(page=1, per_page=100, start_date=day, end_date=day)
    assert first[0] in that_day
    assert all(v.uploaded.startswith(day) for v in that_day)
    assert client.ranked(days=7)[:4] == [(new[4], 4), (new[3], 3), (new[2], 2), (new[1], 1)]
    assert [params["dr"] for _, params in sim.listings("ranklist")] == ["7days"]
    sim.listing_down = True
    try:
        with pytest.raises(PolyvUnavailable, match="get-new-list"):
            client.new_videos(page=1, per_page=10)
    finally:
        sim.listing_down = False
    with pytest.raises(PolyvConfigurationError):
        PolyvClient(sim.url, RotatingSecret("wrong", "wrong"), policy=FAST).new_videos(page=1, per_page=1)


def test_listing_entries_of_another_shape_are_left_out_not_guessed():
    from polyv_prewarm.adapters.polyv import _listed, _listed_video

    entries = _listed(
        200,
        {
            "code": 200,
            "status": "success",
            "data": [
                {"videoId": VID, "df": 3, "status": 61, "uploadTime": "2026-12-04 10:00:00", "extra": 1},
                {"vid": "not-a-vid", "df": 1},
                {"df": 2},
                "a string",
            ],
        },
        "get-new-list",
    )
    assert [_listed_video(e) for e in entries] == [
        (VID, 3, 61, "2026-12-04 10:00:00", 0),
        None,
        None,
    ]
    for answer in (
        None,
        {"code": 400, "status": "error", "message": "x"},
        {"code": 200, "status": "success"},
    ):
        with pytest.raises(PolyvUnavailable):
            _listed(200, answer, "get-new-list")
