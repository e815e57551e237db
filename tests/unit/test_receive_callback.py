"""The callback use case over fakes (tests/integration/test_callbacks.py runs it over HTTP, SQS,
DynamoDB and Secrets Manager): the order of its refusals, the secret read again after a mismatch
within its budget, replays answered without queueing, and the deadline."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

import pytest

from polyv_prewarm.adapters.credentials import PolyvCredentials
from polyv_prewarm.callback_runtime import STEP_WORST_S
from polyv_prewarm.domain.callbacks import CallbackRequest
from polyv_prewarm.domain.ports import CredentialsError, QueueUnavailable
from polyv_prewarm.logic.receive_callback import LEASE_MS, CallbackReceiver, RereadBudget
from tests.fakes import InMemoryReceivedCallbacks

USERID = "e6b23c6f51"
VID = "e6b23c6f513fbe025b94efdd10d7ab47_e"
FOREIGN = "1b448be3231111222233334444555566_1"


class Secret:
    """The Polyv secret: the test account's secretkey (``cached``, ``stored``) and ``others``."""

    def __init__(self, secretkey: str = "current", others: dict[str, str] | None = None) -> None:
        self.cached = self.stored = secretkey
        self.others = others or {}
        self.reads = self.refreshes = 0
        self.unreadable = False

    def accounts(self, *, refresh: bool = False) -> tuple[PolyvCredentials, ...]:
        self.reads += 1
        if self.unreadable:
            raise CredentialsError("cannot read secret 'polyv': InternalServiceError")
        if refresh:
            self.refreshes += 1
            self.cached = self.stored
        others = (PolyvCredentials(u, k) for u, k in self.others.items())
        return (PolyvCredentials(USERID, self.cached), *others)


class Queue:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.down = False

    def send(self, body: str) -> str:
        if self.down:
            raise QueueUnavailable("prewarm queue: InternalError")
        self.sent.append(json.loads(body))
        return f"m-{len(self.sent)}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def encode(
    vid: str = VID, df: str = "2", secretkey: str = "current", sign: str | None = "rule"
) -> CallbackRequest:
    fields = {"type": "encode", "format": "mp4", "vid": vid, "df": df}
    if sign == "rule":
        sign = hashlib.md5(f"encodemp4{vid}{df}{secretkey}".encode()).hexdigest()
    if sign is not None:
        fields["sign"] = sign
    return CallbackRequest("GET", urlencode(fields))


def complete(infos: list[dict], vid: str = VID, secretkey: str = "current") -> CallbackRequest:
    sign = hashlib.md5(f"TranscodeComplete{vid}{secretkey}".encode()).hexdigest()
    body = {"eventType": "TranscodeComplete", "status": "success", "vid": vid, "videoInfos": infos}
    return CallbackRequest(
        "POST", urlencode({"sign": sign}), json.dumps(body), content_type="application/json"
    )


class World:
    def __init__(self, secret: Secret | None = None, userids: tuple[str, ...] = ()) -> None:
        self.secret, self.queue, self.clock = secret or Secret(), Queue(), Clock()
        self.records = InMemoryReceivedCallbacks()
        self.wall_ms = 1_764_201_600_000
        self.receiver = CallbackReceiver(
            self.secret,
            self.queue,
            self.records,
            step_s=STEP_WORST_S,
            monotonic=self.clock,
            now_ms=lambda: self.wall_ms,
            userids=userids,
        )


@pytest.fixture
def world():
    w = World()
    return w.secret, w.queue, w.clock, w.receiver


@pytest.fixture
def w() -> World:
    return World()


def test_a_verified_encode_is_queued_with_its_definition(world):
    _, queue, _, receiver = world
    answer = receiver.receive(encode())
    assert (answer.status, answer.outcome, answer.message_id) == (200, "queued", "m-1")
    assert queue.sent == [{"vid": VID, "brIndex": 2, "via": "polyv-callback:encode"}]
    assert "current" not in answer.body()


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (encode(sign=None), 403),
        (encode(sign="0" * 32), 403),
        (encode(sign="not hex at all"), 403),
        (encode(secretkey="guessed"), 403),
        (encode(df="4"), 400),
        (encode(vid="x"), 400),
        (CallbackRequest("GET", "vid=" + VID + "&df=1"), 403),  # the unsigned 2014 form
    ],
    ids=["absent", "zeros", "garbage", "other key", "df", "vid", "unsigned form"],
)
def test_refusals_queue_nothing(world, request_, status):
    _, queue, _, receiver = world
    assert receiver.receive(request_).status == status
    assert queue.sent == []


def test_malformed_requests_are_refused_before_the_secret_is_read(world):
    secret, _, _, receiver = world
    receiver.receive(encode(df="x"))
    receiver.receive(CallbackRequest("POST", "", "[1]"))
    assert secret.reads == 0


def test_a_vid_of_no_account_is_refused_from_the_cached_secret_without_a_re_read(world):
    secret, queue, _, receiver = world
    answer = receiver.receive(encode(vid=FOREIGN))
    assert answer.status == 400
    assert answer.reason.startswith("no account for userid '1b448be323'")
    assert (secret.refreshes, queue.sent) == (0, [])


# -- several accounts at one URL ------------------------------------------------------------------
OTHER = "1b448be323"
OTHER_VID = "1b448be3231111222233334444555566_1"


def test_each_accounts_callback_is_verified_with_its_own_secretkey():
    w = World(Secret("key-a", others={OTHER: "key-b"}))
    assert w.receiver.receive(encode(secretkey="key-a")).status == 200
    assert w.receiver.receive(encode(vid=OTHER_VID, secretkey="key-b")).status == 200
    assert [m["vid"] for m in w.queue.sent] == [VID, OTHER_VID]


def test_a_valid_sign_of_account_a_on_a_vid_of_account_b_is_refused():
    w = World(Secret("key-a", others={OTHER: "key-b"}))
    answer = w.receiver.receive(encode(vid=OTHER_VID, secretkey="key-a"))
    assert (answer.status, answer.outcome) == (403, "forged")
    answer = w.receiver.receive(complete([{"status": "success", "df": 1}], vid=OTHER_VID, secretkey="key-a"))
    assert answer.status == 403
    assert w.queue.sent == []


def test_a_forgery_for_a_userid_not_configured_is_refused_before_any_secret_is_read():
    w = World(Secret("key-a", others={OTHER: "key-b"}), userids=(USERID, OTHER))
    stranger = "9z9z9z9z9z" + "1" * 22 + "_1"
    answer = w.receiver.receive(encode(vid=stranger, secretkey="anything"))
    assert answer.status == 400
    assert answer.reason.startswith("no account for userid '9z9z9z9z9z'")
    assert w.secret.reads == 0
    assert w.receiver.receive(encode(vid=OTHER_VID, secretkey="key-b")).status == 200


def test_a_rotated_secretkey_right_after_a_forged_callback_is_verified_at_once(world):
    secret, queue, _, receiver = world
    assert receiver.receive(encode(secretkey="forged")).status == 403  # a re-read confirmed it
    secret.stored = "rotated"  # the rotation: Polyv signs with the new key, the cache is stale
    assert receiver.receive(encode(secretkey="rotated")).status == 200
    assert secret.refreshes == 2
    assert len(queue.sent) == 1


def test_a_flood_of_forgeries_spends_the_budget_then_is_503_never_403_and_reads_are_bounded(world):
    secret, queue, clock, receiver = world
    budget = RereadBudget(monotonic=clock)
    statuses = [receiver.receive(encode(secretkey="forged")).status for _ in range(50)]
    assert statuses == [403] * budget.burst + [503] * (50 - budget.burst)
    assert secret.refreshes == budget.burst
    secret.stored = "rotated"
    answer = receiver.receive(encode(secretkey="rotated"))  # cannot be checked yet: 503, not 403
    assert (answer.status, answer.outcome) == (503, "unverified")
    clock.now += budget.every_s  # one re-read earned back
    assert receiver.receive(encode(secretkey="rotated")).status == 200
    assert secret.refreshes == budget.burst + 1
    # a minute of one forgery a second: at most one re-read per every_s seconds
    for _ in range(60):
        clock.now += 1
        receiver.receive(encode(secretkey="forged"))
    assert secret.refreshes <= budget.burst + 1 + 60 / budget.every_s + 1
    assert len(queue.sent) == 1


def test_an_unreadable_secret_or_a_queue_down_is_503_and_polyvs_retry_is_then_queued(world):
    secret, queue, _, receiver = world
    secret.unreadable = True
    assert receiver.receive(encode()).status == 503
    secret.unreadable = False
    queue.down = True
    answer = receiver.receive(encode())
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert queue.sent == []
    queue.down = False  # Polyv calls again: nothing was recorded as received, so it is queued
    assert receiver.receive(encode()).outcome == "queued"
    assert len(queue.sent) == 1


def test_a_replay_is_answered_already_received_and_queues_nothing(w):
    for request_ in (encode(df="2"), complete([{"status": "success", "df": 1}])):
        assert w.receiver.receive(request_).outcome == "queued"
        for _ in range(3):  # the same URL again: an hour, a day, a year later
            w.wall_ms += 86_400_000
            answer = w.receiver.receive(request_)
            assert (answer.status, answer.outcome) == (200, "replayed"), answer
            assert answer.reason == "already received: nothing queued"
    assert len(w.queue.sent) == 2
    assert w.receiver.receive(encode(df="3")).outcome == "queued"  # other signed content: new


def test_a_replayed_transcode_complete_with_a_rewritten_body_queues_nothing(w):
    assert w.receiver.receive(
        complete([{"status": "fail", "df": 1}, {"status": "success", "df": 2}])
    ).outcome == ("queued")
    rewritten = complete([{"status": "success", "df": br} for br in (1, 2, 3)])
    assert w.receiver.receive(rewritten).outcome == "replayed"
    assert w.queue.sent == [
        {"vid": VID, "brIndexes": [2], "askPolyv": True, "via": "polyv-callback:TranscodeComplete"}
    ]


def test_the_record_down_is_503_with_nothing_queued(w):
    w.records.unavailable = True
    answer = w.receiver.receive(encode())
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert w.queue.sent == []


def test_a_record_left_pending_by_a_killed_request_is_taken_over_after_its_lease(w):
    w.records.items[(VID, "encode#2")] = {"s": "pending", "w": "killed", "l": w.wall_ms + LEASE_MS}
    assert w.receiver.receive(encode()).status == 503  # in flight, as far as anyone can tell
    w.wall_ms += LEASE_MS + 1
    assert w.receiver.receive(encode()).outcome == "queued"
    assert w.receiver.receive(encode()).outcome == "replayed"


def test_no_step_starts_that_cannot_end_before_the_deadline(w):
    late = w.clock.now + STEP_WORST_S - 0.1  # not even one AWS call's worst case fits
    answer = w.receiver.receive(encode(), deadline=late)
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert w.queue.sent == []
    assert w.records.items == {}
    assert w.secret.reads == 0
    # DynamoDB slow: the record takes its worst case, which leaves no room for the queue's
    arrive = w.records.arrive

    def slow_arrive(*args, **kwargs):
        w.clock.now += 2 * STEP_WORST_S - 0.5
        return arrive(*args, **kwargs)

    w.records.arrive = slow_arrive
    answer = w.receiver.receive(encode(), deadline=w.clock.now + 2 * STEP_WORST_S + 0.1)
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert w.queue.sent == []
    w.records.arrive = arrive
    w.wall_ms += LEASE_MS + 1  # the record it left frees with its lease: Polyv's retry is queued
    assert w.receiver.receive(encode(), deadline=w.clock.now + 9.5).outcome == "queued"


def test_a_get_with_a_body_and_a_form_post_are_refused(world):
    secret, queue, _, receiver = world
    good = encode()
    assert receiver.receive(good._replace(body='{"eventType": "TranscodeComplete"}')).status == 400
    form = CallbackRequest("POST", "", good.query, content_type="application/x-www-form-urlencoded")
    assert receiver.receive(form).status == 400
    assert receiver.receive(CallbackRequest("POST", good.query)).status == 400  # a POST without a body
    assert queue.sent == []
    assert secret.reads == 0


def test_notifications_that_ask_for_no_prewarm_are_answered_200_with_nothing_queued(world):
    _, queue, _, receiver = world
    key = "current"
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
    requests = [
        CallbackRequest(
            "GET", urlencode({"type": "upload", "vid": VID, "state": "", "sign": md5(f"upload{VID}{key}")})
        ),
        CallbackRequest("GET", urlencode({"type": "pass", "vid": VID, "sign": md5(f"managepass{VID}{key}")})),
        CallbackRequest(
            "GET",
            urlencode(
                {
                    "type": "encode_failed",
                    "format": "mp4",
                    "vid": VID,
                    "df": "3",
                    "sign": md5(f"encode_failedmp4{VID}3{key}"),
                }
            ),
        ),
        CallbackRequest(
            "POST",
            urlencode({"sign": md5(f"DeleteMediaComplete{key}")}),
            json.dumps({"eventType": "DeleteMediaComplete", "vids": VID}),
        ),
        CallbackRequest("POST", "", json.dumps({"eventType": "SomethingNew"})),
    ]
    for request_ in requests:
        answer = receiver.receive(request_)
        assert (answer.status, answer.outcome) == (200, "ignored"), answer
    assert queue.sent == []


def test_two_thousand_captured_urls_replayed_queue_nothing(w):
    urls = [encode(vid=f"{USERID}{i:022x}_e", df=str(1 + i % 3)) for i in range(2000)]
    assert {w.receiver.receive(u).outcome for u in urls} == {"queued"}
    assert len(w.queue.sent) == 2000
    w.wall_ms += 30 * 86_400_000  # a month later
    answers = [w.receiver.receive(u) for u in urls]
    assert {(a.status, a.outcome) for a in answers} == {(200, "replayed")}
    assert len(w.queue.sent) == 2000  # not one more message: no unit of any day spent
    assert w.records.reads == 4000  # a replay costs one read
