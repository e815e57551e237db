"""What the local stack's two HTTP servers (the Polyv simulator and the AWS fault proxy) share:
a request handler that reads a whole body, answers with a length, tolerates a client that has
gone away, can drop the connection without answering, and logs nothing."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any

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
