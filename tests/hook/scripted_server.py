"""A raw-socket HTTP/1.1 server on 127.0.0.1 whose every answer is scripted byte for byte.

Unlike ``recording_server`` (http.server, always well-formed), a script may answer with anything: a broken
status line, a lying Content-Length, a body dripped a byte at a time, a 408 that closes a kept-alive
connection. Every request is recorded with the number of the TCP connection it came on, so a test can tell
a reused keep-alive connection from a fresh one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["Reply", "Request", "ScriptedServer", "http_response", "scripted_server"]


@dataclass
class Request:
    """One request as the server read it.

    :param conn: number of the TCP connection it came on (0, 1, ... in accept order).
    :param index_on_conn: its position on that connection (0 = first).
    :param method: HTTP method.
    :param path: request target.
    :param headers: header names lower-cased.
    :param body: the body (by Content-Length).
    """

    conn: int
    index_on_conn: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What to do with a request: send ``data`` (bytes, or a callable writing to the socket), then maybe close.

    :param data: raw bytes for the wire, or ``callable(sock)`` that writes what it wants.
    :param close: close the connection after sending.
    """

    data: bytes | Callable[[socket.socket], None]
    close: bool = False


def http_response(
    status: int, body: bytes | str = b"", *, reason: str = "X", headers: dict[str, str] | None = None,
    keep_alive: bool = True, content_type: str = "application/json",
) -> bytes:
    """A well-formed HTTP/1.1 response.

    :param status: status code.
    :param body: the body.
    :param reason: reason phrase.
    :param headers: extra headers.
    :param keep_alive: send ``Connection: keep-alive`` (else ``close``).
    :param content_type: Content-Type.
    """
    data = body.encode() if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(data)}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


@dataclass
class ScriptedServer:
    """The server: ``handler(request) -> Reply``; ``requests`` and ``connections`` record what came in."""

    handler: Callable[[Request], Reply]
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    base_url: str = ""
    port: int = 0
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: list[socket.socket] = field(default_factory=list)

    def start(self) -> ScriptedServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        index = 0
        conn.settimeout(30)
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                while len(buffer) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                request = Request(number, index, method, path, headers, body)
                index += 1
                with self._lock:
                    self.requests.append(request)
                reply = self.handler(request)
                if callable(reply.data):
                    reply.data(conn)
                else:
                    conn.sendall(reply.data)
                if reply.close:
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
        except OSError:
            return
        finally:
            conn.close()


def drip(data: bytes, every: float, *, stop: threading.Event | None = None) -> Callable[[socket.socket], None]:
    """A writer that sends ``data`` one byte every ``every`` seconds (a slow-loris answer).

    :param data: everything to send.
    :param every: seconds between bytes.
    :param stop: set to end the drip early.
    """

    def write(sock: socket.socket) -> None:
        for i in range(len(data)):
            if stop is not None and stop.is_set():
                return
            try:
                sock.sendall(data[i:i + 1])
            except OSError:
                return
            time.sleep(every)

    return write


@pytest.fixture
def scripted_server() -> Iterator[Callable[[Callable[[Request], Reply]], ScriptedServer]]:
    """Start :class:`ScriptedServer` instances; stopped after the test."""
    servers: list[ScriptedServer] = []

    def start(handler: Callable[[Request], Reply]) -> ScriptedServer:
        server = ScriptedServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


#: The API key of the ``hostile`` connection: long enough that a leak of any part of it is findable.
HOSTILE_KEY = "sd2_live_Hostile0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def hostile(
    monkeypatch: pytest.MonkeyPatch, scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer]
) -> Callable[[Callable[[Request], Reply]], ScriptedServer]:
    """Start a scripted server and make it the ``hostile`` connection (API key :data:`HOSTILE_KEY`)."""
    from .conftest import set_connection

    def start(handler: Callable[[Request], Reply]) -> ScriptedServer:
        server = scripted_server(handler)
        set_connection(monkeypatch, "hostile", host=server.base_url, password=HOSTILE_KEY)
        return server

    return start


def job_body(request_id: str, status: str = "processing", **extra: Any) -> dict[str, Any]:
    """A status answer for ``request_id`` in the API's shape."""
    body: dict[str, Any] = {"success": True, "requestId": request_id, "status": status, "model": "seedance-2.0"}
    if status == "succeeded":
        body["output"] = {"type": "video", "url": f"https://cdn.example.com/{request_id}.mp4"}
    body.update(extra)
    return body
