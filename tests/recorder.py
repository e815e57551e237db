"""A loopback HTTP server that records every request it gets and answers one fixed status: the
"other host" a redirect points to, or a proxy the client must (or must not) go through."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import NamedTuple

from devstack.loopback_http import LoopbackHandler


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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
