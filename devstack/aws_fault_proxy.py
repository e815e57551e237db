"""A fault-injecting HTTP proxy in front of moto's server, for the local stack's AWS traffic.

Every request is forwarded to moto unchanged, unless a queued fault matches its operation (the
``X-Amz-Target`` header: ``DynamoDB_20120810.TransactWriteItems`` -> ``TransactWriteItems``,
``secretsmanager.GetSecretValue`` -> ``GetSecretValue``). Faults, as a real AWS endpoint shows them:

* ``error``: HTTP 500 ``InternalServerError``; nothing done
* ``throttle``: HTTP 400 ``ThrottlingException``; nothing done
* ``conflict``: HTTP 400 ``TransactionCanceledException`` whose reasons are all
  ``TransactionConflict``; nothing done
* ``hang``: no answer for ``delay`` seconds, then the connection closes; nothing done
* ``lose_answer``: the request is done by moto, then the connection closes without its answer

``latency`` adds a modelled network round trip to every forwarded request (the benchmark's
DynamoDB in a region), and ``upstream_seconds`` adds up the time moto itself took to answer.

Each fault skips the first ``after`` matching requests, then meets the next ``count`` (``None``:
every later one, until :meth:`clear`). botocore retries 500s and throttling by itself, so a
fault meant to outlast its retries needs a count above ``max_attempts``, or ``None``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from .loopback_http import LoopbackHandler, ServerThread, threaded_server

KINDS = ("error", "throttle", "conflict", "hang", "lose_answer")


@dataclass
class AwsFault:
    kind: str
    operation: str = "*"  # an operation (TransactWriteItems), a service ("DynamoDB_20120810.*") or all
    count: int | None = 1
    after: int = 0
    delay: float = 0.0
    until: float | None = None  # met until then (the proxy's clock), whatever the count

    def matches(self, target: str) -> bool:
        operation = target.rpartition(".")[2] if target else "*"
        if self.operation == "*":
            return True
        if self.operation.endswith(".*"):
            return target.startswith(self.operation[:-1])
        return self.operation == operation


class AwsFaultProxy:
    def __init__(
        self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0, *, clock: Any = time.time
    ) -> None:
        self.upstream = upstream
        self.clock = clock  # what ``until`` is measured on (the stack's clock)
        self._faults: list[AwsFault] = []
        self._lock = threading.Lock()
        self.seen: list[str] = []  # every operation, in order (``*`` for untargeted requests)
        self.met: list[tuple[str, str]] = []  # (fault kind, operation) of every fault met
        self.latency = 0.0  # seconds added to every forwarded request
        self.upstream_seconds = 0.0  # time spent waiting on moto's answers, all requests together
        self._http = ServerThread(threaded_server(self._handler_class(), host, port), "aws-fault-proxy")

    # -- control --------------------------------------------------------------------------------
    def inject(
        self,
        kind: str,
        operation: str = "*",
        *,
        count: int | None = 1,
        after: int = 0,
        delay: float = 0.0,
        until: float | None = None,
    ) -> None:
        """``until``: every matching request meets the fault until then (the proxy's clock)."""
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}")
        with self._lock:
            self._faults.append(
                AwsFault(kind, operation, None if until is not None else count, after, delay, until)
            )

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _fault_for(self, target: str) -> AwsFault | None:
        operation = target.rpartition(".")[2] if target else "*"
        with self._lock:
            self.seen.append(operation)
            now = self.clock()
            for fault in list(self._faults):
                if fault.until is not None and now >= fault.until:
                    self._faults.remove(fault)  # its window is over
                    continue
                if not fault.matches(target):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                self.met.append((fault.kind, operation))
                return fault
            return None

    # -- the server -----------------------------------------------------------------------------
    def _handler_class(self) -> type[LoopbackHandler]:
        proxy = self

        class Handler(LoopbackHandler):
            def _serve(self) -> None:
                body = self.read_body()
                target = self.headers.get("X-Amz-Target", "")
                fault = proxy._fault_for(target)
                if fault is not None and fault.kind == "hang":
                    time.sleep(fault.delay)
                    self.drop()
                    return
                if fault is not None and fault.kind != "lose_answer":
                    self._answer_fault(fault.kind)
                    return
                if proxy.latency:
                    time.sleep(proxy.latency)
                started = time.perf_counter()
                status, headers, payload = self._forward(body)
                with proxy._lock:
                    proxy.upstream_seconds += time.perf_counter() - started
                if fault is not None:  # lose_answer: moto did the work; the caller never hears it
                    self.drop()
                    return
                self.reply(status, headers, payload)

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, response.getheaders(), response.read()
                finally:
                    connection.close()

            def _answer_fault(self, kind: str) -> None:
                if kind == "error":
                    status, code, message = 500, "InternalServerError", "Internal server error"
                elif kind == "throttle":
                    status, code, message = 400, "ThrottlingException", "Rate of requests exceeds the allowed"
                else:
                    status, code, message = 400, "TransactionCanceledException", "Transaction cancelled"
                answer: dict[str, Any] = {
                    "__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                    "message": message,
                }
                if kind == "conflict":
                    answer["CancellationReasons"] = [{"Code": "TransactionConflict"}]
                payload = json.dumps(answer).encode()
                self.reply(status, [("Content-Type", "application/x-amz-json-1.0")], payload)

            do_POST = _serve
            do_GET = _serve
            do_PUT = _serve
            do_DELETE = _serve

        return Handler

    @property
    def url(self) -> str:
        return self._http.origin

    def start(self) -> AwsFaultProxy:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
