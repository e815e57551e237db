"""Polyv's callback notifications (polyv_prewarm.domain.callbacks): each kind's sign rule, with
vectors computed from the rule here (hashlib, apart from the product's code) and Polyv's own
worked example; what a well-formed notification is; what is refused and why."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import urlencode

import pytest

from polyv_prewarm.domain.callbacks import (
    MAX_BODY_BYTES,
    BadCallback,
    CallbackRequest,
    Kind,
    TooLarge,
    read,
)

KEY = "Kx9fQ2mZ7pLr4tWv"
VID = "e6b23c6f513fbe025b94efdd10d7ab47_e"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def get(**fields: str) -> CallbackRequest:
    return CallbackRequest("GET", urlencode(fields))


def post(body: object, sign: str | None = None, *, raw: bytes | None = None) -> CallbackRequest:
    text = raw.decode() if raw is not None else json.dumps(body)
    return CallbackRequest(
        "POST", urlencode({"sign": sign}) if sign else "", text, content_type="application/json"
    )


def test_polyvs_worked_example_of_the_upload_rule():
    vid, secretkey = "e2e84a738302f20a4f6eb202976f5c63_e", "7UagtQOq2A"
    notification = read(get(type="upload", vid=vid, state="x"))
    assert notification.expected_sign(secretkey) == "b245e3e65aa45b60dc02337b5cd914a7"


# kind -> (the request, the string Polyv signs) for each rule of the documented table
VECTORS = {
    "encode": (get(type="encode", format="mp4", vid=VID, df="2"), f"encodemp4{VID}2{KEY}"),
    "encode_failed": (
        get(type="encode_failed", format="flv", vid=VID, df="3"),
        f"encode_failedflv{VID}3{KEY}",
    ),
    "encrypted encode": (get(type="encode", format="m3u8", vid=VID, df="1"), f"encodem3u8{VID}1{KEY}"),
    "TranscodeComplete": (
        post({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": []}),
        f"TranscodeComplete{VID}{KEY}",
    ),
    "upload": (get(type="upload", vid=VID, state="anything"), f"upload{VID}{KEY}"),
    "invalidVideo": (get(type="invalidVideo", vid=VID, state=""), f"upload{VID}{KEY}"),
    "pass": (get(type="pass", vid=VID), f"managepass{VID}{KEY}"),
    "nopass": (get(type="nopass", vid=VID), f"managenopass{VID}{KEY}"),
    "DeleteMediaComplete": (
        post({"eventType": "DeleteMediaComplete", "vids": VID}),
        f"DeleteMediaComplete{KEY}",
    ),
}


@pytest.mark.parametrize(("request_", "signed"), VECTORS.values(), ids=VECTORS.keys())
def test_each_kind_is_signed_by_its_own_rule(request_, signed):
    notification = read(request_)
    assert notification.expected_sign(KEY) == md5(signed)
    right = notification._replace(sign=md5(signed))
    assert right.signed_by(KEY)
    assert right._replace(sign=md5(signed).upper().lower()).signed_by(KEY)
    assert not right.signed_by("another-secretkey")
    assert not notification._replace(sign=md5("forged")).signed_by(KEY)
    assert not notification._replace(sign=None).signed_by(KEY)


def test_a_sign_made_by_another_kinds_rule_is_wrong():
    encode = read(get(type="encode", format="mp4", vid=VID, df="2", sign=md5(f"upload{VID}{KEY}")))
    assert not encode.signed_by(KEY)
    upload = read(get(type="upload", vid=VID, sign=md5(f"encodemp4{VID}2{KEY}")))
    assert not upload.signed_by(KEY)


def test_an_uppercase_sign_is_read_as_the_same_digest():
    sign = md5(f"encodemp4{VID}2{KEY}").upper()
    assert read(get(type="encode", format="mp4", vid=VID, df="2", sign=sign)).signed_by(KEY)


def test_what_each_kind_asks_to_prewarm():
    assert read(get(type="encode", format="mp4", vid=VID, df="2")).message() == {
        "vid": VID,
        "brIndex": 2,
        "via": "polyv-callback:encode",
    }
    assert read(get(type="encode_failed", format="mp4", vid=VID, df="2")).message() is None
    infos = [
        {"status": "success", "df": 1},
        {"status": "fail", "df": 2},
        {"status": "success", "df": "3"},
        {"status": "success", "df": 1},
    ]
    complete = read(
        post({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": infos})
    )
    # the body is not signed: its successes are a hint, and Polyv's video information decides
    assert complete.message() == {
        "vid": VID,
        "brIndexes": [1, 3],
        "askPolyv": True,
        "via": "polyv-callback:TranscodeComplete",
    }
    failed = read(post({"eventType": "TranscodeComplete", "status": "fail", "vid": VID, "videoInfos": infos}))
    assert failed.message() is None
    for request_ in (get(type="upload", vid=VID), get(type="pass", vid=VID)):
        assert read(request_).message() is None


def test_kinds_this_endpoint_does_not_know_are_read_but_not_acted_on():
    assert read(get(type="somethingNew", vid=VID)).kind is None
    assert read(post({"eventType": "LiveStreamStarted"})).kind is None
    assert read(get(type="TranscodeComplete", vid=VID)).kind is None  # a POST kind by GET


def test_the_unsigned_2014_form_has_no_sign():
    legacy = read(get(vid=VID, df="1"))
    assert legacy.kind is Kind.ENCODE
    assert legacy.sign is None


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (get(type="encode", format="mp4", vid=VID, df="0"), "df must be 1, 2 or 3"),
        (get(type="encode", format="mp4", vid=VID, df="4"), "df must be 1, 2 or 3"),
        (get(type="encode", format="mp4", vid=VID, df="x"), "df must be 1, 2 or 3"),
        (get(type="encode", format="mp4", vid="not-a-vid", df="1"), "vid is not the Polyv vid shape"),
        (get(type="encode", format="mp4", vid=VID + "\n", df="1"), "vid is not"),
        (get(type="encode\nX-Injected: 1", vid=VID), "type is not"),
        (get(type="encode", format="mp4\r\n", vid=VID, df="1"), "format is not"),
        (get(type="encode", vid=VID, df="1"), "needs format"),
        (get(format="mp4"), "no type or eventType"),
        (CallbackRequest("GET", "type=encode&type=upload&vid=" + VID), "appears twice"),
        (post([1, 2]), "must be an object"),
        (post(None, raw=b"{not json"), "not JSON"),
        (post(None, raw=b"[" * 60_000), "not JSON"),  # nesting deeper than the parser goes
        (post({"status": "success"}), "no eventType"),
        (post({"eventType": "TranscodeComplete", "status": "success"}), "no vid"),
        (
            post({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": {}}),
            "a list",
        ),
        (
            post({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": [7]}),
            "objects",
        ),
        (
            post(
                {"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": [{"df": 9}]}
            ),
            "df must be",
        ),
        (CallbackRequest("PUT", ""), "GET or POST"),
        (CallbackRequest("GET", "type=upload&vid=" + VID, '{"eventType": "TranscodeComplete"}'), "no body"),
        (CallbackRequest("POST", "sign=" + "0" * 32), "a JSON body"),
        (
            CallbackRequest(
                "POST", "", f"type=encode&vid={VID}", content_type="application/x-www-form-urlencoded"
            ),
            "not a form",
        ),
        (CallbackRequest("POST", "", "!!!", base64_encoded=True), "not valid base64"),
    ],
)
def test_malformed_requests_are_refused_with_a_short_reason(request_, reason):
    with pytest.raises(BadCallback, match=reason) as info:
        read(request_)
    assert len(str(info.value)) < 80
    assert not isinstance(info.value, TooLarge)


@pytest.mark.parametrize(
    "request_",
    [
        CallbackRequest("POST", "", json.dumps({"eventType": "x", "pad": "y" * 2_000_000})),
        CallbackRequest(
            "POST", "", base64.b64encode(b"y" * (MAX_BODY_BYTES + 1)).decode(), base64_encoded=True
        ),
        CallbackRequest("GET", "type=encode&pad=" + "y" * 5000),
    ],
    ids=["2 MB body", "base64 body", "long query"],
)
def test_oversized_requests_are_refused_before_they_are_read(request_):
    with pytest.raises(TooLarge):
        read(request_)


def test_replays_are_recognised_by_the_signed_content_only():
    encode = read(get(type="encode", format="mp4", vid=VID, df="2"))
    other_format = read(get(type="encode", format="flv", vid=VID, df="2"))
    assert encode.replay_key() == other_format.replay_key() == "encode#2"  # the same file to warm
    infos = [{"status": "success", "df": 1}]
    complete = read(
        post({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": infos})
    )
    rewritten = read(
        post({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": infos * 3})
    )
    assert complete.replay_key() == rewritten.replay_key() == "TranscodeComplete"
    assert read(get(type="upload", vid=VID)).replay_key() is None  # asks for nothing


def test_a_base64_body_is_decoded():
    body = json.dumps({"eventType": "TranscodeComplete", "status": "success", "vid": VID, "videoInfos": []})
    request_ = CallbackRequest("POST", "", base64.b64encode(body.encode()).decode(), base64_encoded=True)
    assert read(request_).kind is Kind.TRANSCODE_COMPLETE
