"""A loopback HTTP server that records every request it gets and answers one fixed status: the
"other host" a redirect points to, or a proxy the client must (or must not) go through."""

from __future__ import annotations

import threading
from typing import NamedTuple

from devstack.loopback_http import LoopbackHandler, ServerThread, threaded_server


class Seen(NamedTuple):
    method: str
    target: str  # the request line's target: a path, or an absolute URI when used as a proxy
    body: bytes


class RecordingServer:
    def __init__(self, status: int = 503) -> None:
        self.status = status
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(LoopbackHandler):
            def _serve(self) -> None:
                body = self.read_body()
                with recorder._lock:
                    recorder.seen.append(Seen(self.command, self.path, body))
                self.reply(recorder.status, [("Content-Type", "text/plain")], b"recorded")

            do_GET = do_POST = do_PUT = do_CONNECT = _serve

        self._http = ServerThread(threaded_server(Handler), "recording-server")

    @property
    def url(self) -> str:
        return self._http.origin

    def __enter__(self) -> RecordingServer:
        self._http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.stop()
