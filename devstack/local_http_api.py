"""The callback endpoint on loopback: an HTTP server that does what API Gateway's HTTP API does for
the template's ``CallbackApi`` routes (``GET`` and ``POST /polyv/callback``, payload format 2.0):
it turns each request into the event Lambda gets, calls the handler in this process, and writes
its answer back. Any other route is API Gateway's 404; an exception is API Gateway's 500.

Written here because no library serves a Lambda handler behind a local HTTP API without Docker
(``sam local start-api`` needs it).
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from polyv_prewarm.lambda_context import LocalLambdaContext

from .loopback_http import LoopbackHandler, ServerThread, threaded_server

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's own bound on a request body
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


def api_event(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event for one request."""
    parts = urlsplit(target)
    lowered: dict[str, str] = {}
    for name, value in headers:  # repeated headers are joined with commas, as API Gateway does
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    content_type = lowered.get("content-type", "")
    text = not body or content_type.startswith(_TEXT_TYPES)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {parts.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} {parts.path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not text,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = body.decode("utf-8", "replace") if text else base64.b64encode(body).decode()
    return event


def callback_timeout() -> float:
    """The template's CallbackFunction Timeout (seconds)."""
    from .stack import template_resources  # the template parser: only when a server is built

    return float(template_resources("AWS::Serverless::Function")["CallbackFunction"]["Timeout"])


class LocalHttpApi:
    def __init__(
        self,
        handler: Handler,
        routes: Iterable[tuple[str, str]] = (("GET", "/polyv/callback"), ("POST", "/polyv/callback")),
        *,
        timeout_s: float | None = None,
    ) -> None:
        """``timeout_s``: the function's remaining time when each request starts; by default the
        template's CallbackFunction Timeout, as Lambda gives it."""
        self.handler = handler
        self.routes = frozenset(routes)
        self.timeout_s = callback_timeout() if timeout_s is None else timeout_s
        self.answered: list[int] = []  # the status of every answer, in order
        self._lock = threading.Lock()
        self._http = ServerThread(threaded_server(self._handler_class()), "local-http-api")

    def _handler_class(self) -> type[LoopbackHandler]:
        api = self

        class Request(LoopbackHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_PAYLOAD:
                    self._answer(413, b'{"message":"Request Entity Too Large"}')
                    return
                body = self.read_body()
                if (self.command, urlsplit(self.path).path) not in api.routes:
                    self._answer(404, b'{"message":"Not Found"}')
                    return
                event = api_event(self.command, self.path, self.headers.items(), body)
                try:
                    answer = api.handler(event, LocalLambdaContext(timeout_s=api.timeout_s))
                except Exception:  # API Gateway answers a failed invocation so
                    self._answer(500, b'{"message":"Internal Server Error"}')
                    return
                headers = list((answer.get("headers") or {}).items())
                payload = str(answer.get("body", "")).encode("utf-8")
                self._answer(int(answer.get("statusCode", 200)), payload, headers)

            def _answer(
                self, status: int, payload: bytes, headers: list[tuple[str, str]] | None = None
            ) -> None:
                with api._lock:
                    api.answered.append(status)
                self.reply(status, headers or [("Content-Type", "application/json")], payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Request

    @property
    def url(self) -> str:
        """The callback URL to give Polyv (what the stack's ``PolyvCallbackUrl`` output is in AWS)."""
        return f"{self._http.origin}/polyv/callback"

    def start(self) -> LocalHttpApi:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
