"""A tiny loopback HTTP server serving the bodies the emulator cannot: big, lying, oversize, cut off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
BLOCK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served: list[dict[str, int | str]] = []

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        size = int(query.get("size", "1000"))
        ctype = query.get("ctype", "video/mp4")
        route = parts.path
        sent = 0
        if route == "/video":  # `size` bytes of MP4-looking data, generated block by block
            self._headers(200, ctype, size)
            sent = self._stream(size)
        elif route == "/html":
            body = b"<!doctype html><html><body>Access denied</body></html>"
            self._headers(200, ctype if "ctype" in query else "text/html; charset=utf-8", len(body))
            self.wfile.write(body)
            sent = len(body)
        elif route == "/declared-huge":  # the header alone says too big
            self._headers(200, ctype, size)
            # Send a little; the client must give up on the header before reading this.
            sent = self._stream(min(size, BLOCK))
            self.close_connection = True
        elif route == "/unannounced":  # no Content-Length, body ends when the connection closes
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Connection", "close")
            self.end_headers()
            sent = self._stream(size)
            self.close_connection = True
        elif route == "/drop":  # announces `size`, sends half, hangs up
            self._headers(200, ctype, size)
            sent = self._stream(size // 2)
            self.close_connection = True
        elif route == "/no-type":
            self.send_response(200)
            self.send_header("Content-Length", str(len(MP4_HEAD)))
            self.end_headers()
            self.wfile.write(MP4_HEAD)
            sent = len(MP4_HEAD)
        elif route.startswith("/status/"):
            body = b'{"error": "expired"}'
            self._headers(int(route.rsplit("/", 1)[1]), "application/json", len(body))
            self.wfile.write(body)
        else:
            self._headers(404, "text/plain", 0)
        _Handler.served.append({"path": self.path, "sent": sent})

    def _headers(self, status: int, ctype: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _stream(self, size: int) -> int:
        sent = 0
        try:
            head = MP4_HEAD[:size]
            self.wfile.write(head)
            sent = len(head)
            block = b"\x00" * BLOCK
            while sent < size:
                piece = block[: min(BLOCK, size - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading, as it should for oversize bodies
        return sent


class LoopbackServer:
    """Handle of the running loopback server.

    :param base_url: ``http://127.0.0.1:<port>``.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    @property
    def served(self) -> list[dict[str, int | str]]:
        """What each request got: path and bytes of body actually sent."""
        return _Handler.served


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[LoopbackServer]:
    """A threaded HTTP server on 127.0.0.1 with the routes above."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="persist-loopback", daemon=True)
    thread.start()
    try:
        yield LoopbackServer(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def loopback(loopback_server: LoopbackServer) -> LoopbackServer:
    """The session loopback server with its request record cleared."""
    _Handler.served.clear()
    return loopback_server
