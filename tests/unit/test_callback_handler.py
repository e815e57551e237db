"""The callback endpoint's handler over fakes: the event shapes it reads (API Gateway's HTTP API
and Lambda function URLs: payload 2.0; a REST API: 1.0) and the HTTP answer it gives."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from polyv_prewarm import callback_handler, callback_runtime
from polyv_prewarm.callback_runtime import STEP_WORST_S
from polyv_prewarm.config import CallbackSettings
from polyv_prewarm.lambda_context import LocalLambdaContext
from polyv_prewarm.logic.receive_callback import CallbackReceiver
from tests.fakes import InMemoryReceivedCallbacks
from tests.unit.test_receive_callback import VID, Queue, Secret

SIGN = hashlib.md5(f"encodemp4{VID}2current".encode()).hexdigest()
QUERY = f"type=encode&format=mp4&vid={VID}&df=2&sign={SIGN}"


@pytest.fixture
def queue(monkeypatch):
    queue = Queue()
    fake = callback_runtime.CallbackRuntime(
        CallbackSettings.from_env(
            {"POLYV_SECRET_ID": "polyv/test", "PREWARM_QUEUE_URL": "https://sqs.local/q", "QUOTA_TABLE": "t"}
        ),
        CallbackReceiver(Secret(), queue, InMemoryReceivedCallbacks(), step_s=STEP_WORST_S),
    )
    monkeypatch.setattr(callback_runtime, "current", lambda: fake)
    return queue


def http_api(method: str, query: str, body: str | None = None, **extra) -> dict:
    event = {
        "version": "2.0",
        "routeKey": f"{method} /polyv/callback",
        "rawPath": "/polyv/callback",
        "rawQueryString": query,
        "headers": {"content-type": "application/json"} if body else {},
        "requestContext": {"http": {"method": method, "path": "/polyv/callback"}, "requestId": "r-1"},
        "isBase64Encoded": False,
        **extra,
    }
    if body is not None:
        event["body"] = body
    return event


def invoke(event: dict) -> dict:
    return callback_handler.lambda_handler(event, LocalLambdaContext())


def test_an_http_api_event_is_answered_and_queued(queue):
    answer = invoke(http_api("GET", QUERY))
    assert answer["statusCode"] == 200
    assert answer["headers"] == {"Content-Type": "application/json"}
    assert json.loads(answer["body"])["result"] == "queued"
    assert queue.sent == [{"vid": VID, "brIndex": 2, "via": "polyv-callback:encode"}]


def test_a_function_url_event_and_a_base64_body(queue):
    body = json.dumps(
        {
            "eventType": "TranscodeComplete",
            "status": "success",
            "vid": VID,
            "videoInfos": [{"status": "success", "df": 1}],
        }
    )
    sign = hashlib.md5(f"TranscodeComplete{VID}current".encode()).hexdigest()
    event = http_api("POST", f"sign={sign}", base64.b64encode(body.encode()).decode(), isBase64Encoded=True)
    event["requestContext"]["domainName"] = "abc.lambda-url.us-east-1.on.aws"
    assert invoke(event)["statusCode"] == 200
    assert queue.sent == [
        {"vid": VID, "brIndexes": [1], "askPolyv": True, "via": "polyv-callback:TranscodeComplete"}
    ]


def test_an_event_with_query_parameters_but_no_raw_query_string(queue):
    fields = dict(pair.split("=") for pair in QUERY.split("&"))
    event = http_api("GET", "")
    del event["rawQueryString"]
    event["queryStringParameters"] = fields
    assert invoke(event)["statusCode"] == 200


def test_a_rest_api_event(queue):
    fields = dict(pair.split("=") for pair in QUERY.split("&"))
    event = {
        "httpMethod": "GET",
        "path": "/polyv/callback",
        "queryStringParameters": fields,
        "multiValueQueryStringParameters": {k: [v] for k, v in fields.items()},
        "headers": {},
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {"requestId": "r-2"},
    }
    assert invoke(event)["statusCode"] == 200
    assert len(queue.sent) == 1


def test_a_forged_sign_is_403_and_the_answer_never_echoes_the_request(queue):
    answer = invoke(http_api("GET", QUERY.replace(SIGN, "e" * 32)))
    assert answer["statusCode"] == 403
    assert "e" * 32 not in answer["body"]
    assert VID not in answer["body"]
    assert queue.sent == []
