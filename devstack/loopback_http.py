"""What the local stack's HTTP servers (the Polyv simulator, the AWS fault proxy, the callback
endpoint, moto's server, the tests' recorder) share: a request handler that reads a whole body,
answers with a length, tolerates a client that has gone away, can drop the connection without
answering, and logs nothing; and a server served from a daemon thread of its own."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

#: Headers a forwarded answer must not carry over: this server writes its own.
HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "date", "server"})


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's delayed
    # ACK would hold every answer back ~40 ms on loopback.
    disable_nagle_algorithm = True

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, headers: Iterable[tuple[str, str]], payload: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a read timeout): nothing to answer

    def drop(self) -> None:
        """Close the connection without an answer (a reset, a lost answer)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(Protocol):
    server_address: Any

    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


def threaded_server(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    """A server answering each connection on a thread of its own (a daemon: none outlives a test)."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


class ServerThread:
    """One server, served from a daemon thread between ``start`` and ``stop``."""

    def __init__(self, server: _Server, name: str) -> None:
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)

    @property
    def origin(self) -> str:
        """``http://host:port`` of the server."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.ident is not None:  # shutdown() waits for a serve_forever that never ran
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()
