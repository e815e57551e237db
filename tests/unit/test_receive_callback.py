"""The callback use case over fakes (tests/integration/test_callbacks.py runs it over HTTP, SQS
and Secrets Manager): the order of its refusals, the secret read again once after a mismatch,
and nothing queued but a verified notification's definitions."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

import pytest

from polyv_prewarm.adapters.credentials import PolyvCredentials
from polyv_prewarm.domain.callbacks import CallbackRequest
from polyv_prewarm.domain.ports import CredentialsError, QueueUnavailable
from polyv_prewarm.logic.receive_callback import REREAD_AFTER_MISMATCH_S, CallbackReceiver

USERID = "e6b23c6f51"
VID = "e6b23c6f513fbe025b94efdd10d7ab47_e"
FOREIGN = "1b448be3231111222233334444555566_1"


class Secret:
    def __init__(self, secretkey: str = "current") -> None:
        self.cached = self.stored = secretkey
        self.reads = self.refreshes = 0
        self.unreadable = False

    def get(self, *, refresh: bool = False) -> PolyvCredentials:
        self.reads += 1
        if self.unreadable:
            raise CredentialsError("cannot read secret 'polyv': InternalServiceError")
        if refresh:
            self.refreshes += 1
            self.cached = self.stored
        return PolyvCredentials(USERID, self.cached)


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


@pytest.fixture
def world():
    secret, queue, clock = Secret(), Queue(), Clock()
    return secret, queue, clock, CallbackReceiver(secret, queue, monotonic=clock)


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


def test_a_vid_of_another_account_is_refused_after_its_sign(world):
    _, queue, _, receiver = world
    answer = receiver.receive(encode(vid=FOREIGN))
    assert (answer.status, answer.reason) == (400, "vid of another Polyv account")
    assert queue.sent == []


def test_a_rotated_secret_is_read_again_once_then_not_for_a_while(world):
    secret, queue, clock, receiver = world
    secret.stored = "rotated"
    assert receiver.receive(encode(secretkey="rotated")).status == 200  # the cache was stale
    assert secret.refreshes == 1
    for _ in range(50):  # a flood of forged callbacks: no read per request
        assert receiver.receive(encode(secretkey="forged")).status == 403
    assert secret.refreshes == 1
    clock.now += REREAD_AFTER_MISMATCH_S + 1
    assert receiver.receive(encode(secretkey="forged")).status == 403
    assert secret.refreshes == 2
    assert len(queue.sent) == 1


def test_an_unreadable_secret_or_a_queue_down_is_503_and_nothing_is_said_done(world):
    secret, queue, _, receiver = world
    secret.unreadable = True
    assert receiver.receive(encode()).status == 503
    secret.unreadable = False
    queue.down = True
    answer = receiver.receive(encode())
    assert (answer.status, answer.outcome) == (503, "unavailable")
    assert queue.sent == []


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
