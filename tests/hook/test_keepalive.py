"""The keep-alive GET client against scripted loopback servers: framing, reuse, limits, and every way to fail.

Each server is a real TCP listener on 127.0.0.1 that reads one request head at a time and answers with the
exact bytes a test scripts, so the client's parsing meets what real servers send (split writes, chunked
bodies, interim responses, connection closes at awkward moments).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.errors import SeedanceTransportError, is_retryable
from airflow_provider_seedance.hooks._http import transport_error_from_keepalive
from airflow_provider_seedance.hooks._keepalive import (
    MAX_BODY_BYTES,
    ConnectFailed,
    KeepAlivePool,
    Response,
    ResponseError,
    _Connection,
)

from .conftest import closed_port

REQUEST = b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sd2_secret_key\r\n\r\n"

# A script answers one request: it gets the request number on this connection and the writer, and returns
# False to close the connection afterwards.
Script = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class ScriptedServer:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[ScriptedServer]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> ScriptedServer:
        record = ScriptedServer(port=0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            record.connections += 1
            record.open_now += 1
            record.most_open = max(record.most_open, record.open_now)
            try:
                number = 0
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, ConnectionError):
                        return
                    record.requests.append(head)
                    number += 1
                    if not await script(number, writer):
                        return
            finally:
                record.open_now -= 1
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        record.port = server.sockets[0].getsockname()[1]
        return record

    yield start
    for server in servers:
        server.close()


def reply(body: bytes = b'{"ok": true}', status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
            + extra + b"\r\n" + body)


def answer_with(*pieces: bytes, keep: bool = True, pause: float = 0.0) -> Script:
    async def script(number: int, writer: asyncio.StreamWriter) -> bool:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return keep

    return script


def answer_after(delay: float) -> Script:
    """A server that takes ``delay`` seconds to answer each request (the connection stays open)."""
    async def script(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(delay)
        writer.write(reply())
        return True

    return script


async def test_many_requests_reuse_one_connection(scripted: Callable[[Script], Awaitable[ScriptedServer]]) -> None:
    server = await scripted(answer_with(reply()))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    for _ in range(20):
        response = await pool.get(REQUEST, timeout=5)
        assert (response.status, response.body) == (200, b'{"ok": true}')
        assert response.headers.get("CONTENT-TYPE") == "application/json"
    assert server.connections == pool.connections_opened == 1
    assert len(server.requests) == 20
    await pool.close()


async def test_a_response_split_in_tiny_writes(scripted: Callable[[Script], Awaitable[ScriptedServer]]) -> None:
    whole = reply(b'{"status": "processing"}')
    server = await scripted(answer_with(*(whole[i:i + 3] for i in range(0, len(whole), 3)), pause=0.001))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    assert (await pool.get(REQUEST, timeout=5)).body == b'{"status": "processing"}'
    assert (await pool.get(REQUEST, timeout=5)).body == b'{"status": "processing"}'
    assert server.connections == 1
    await pool.close()


async def test_chunked_body_with_extensions_and_trailers(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await scripted(answer_with(head, b"5;ext=1\r\n{\"a\":\r\n", b"3\r\n 1}\r\n", b"0\r\nX-Trailer: t\r\n\r\n"))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    for _ in range(3):
        assert (await pool.get(REQUEST, timeout=5)).body == b'{"a": 1}'
    assert server.connections == 1
    await pool.close()


async def test_interim_response_is_skipped(scripted: Callable[[Script], Awaitable[ScriptedServer]]) -> None:
    server = await scripted(answer_with(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", reply(b"{}")))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    assert (await pool.get(REQUEST, timeout=5)).status == 200
    await pool.close()


async def test_connection_close_and_http10_are_not_reused(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    closing = await scripted(answer_with(reply(extra=b"Connection: close\r\n"), keep=False))
    read_to_end = await scripted(answer_with(b"HTTP/1.0 200 OK\r\n\r\n{\"x\": 1}", keep=False))
    for server, body in ((closing, b'{"ok": true}'), (read_to_end, b'{"x": 1}')):
        pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
        for _ in range(3):
            assert (await pool.get(REQUEST, timeout=5)).body == body
        assert server.connections == pool.connections_opened == 3
        assert pool.open_connections == 0
        await pool.close()


async def test_a_kept_connection_the_server_dropped_is_retried_once_on_a_new_one(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    async def script(number: int, writer: asyncio.StreamWriter) -> bool:
        if number == 2:
            return False  # the server gave up on the idle connection just as the request arrived
        writer.write(reply())
        return True

    server = await scripted(script)
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    assert (await pool.get(REQUEST, timeout=5)).status == 200
    assert (await pool.get(REQUEST, timeout=5)).status == 200
    assert server.connections == 2
    assert len(server.requests) == 3  # answered, dropped unanswered, answered on the new connection
    await pool.close()


async def test_a_fresh_connection_dropped_without_answer_is_not_retried(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    server = await scripted(answer_with(keep=False))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    with pytest.raises(ConnectionError) as caught:
        await pool.get(REQUEST, timeout=5)
    error = transport_error_from_keepalive(caught.value, "GET /status", "sd2_secret_key")
    assert error.sent is True
    assert is_retryable(error, idempotent=True)
    assert is_retryable(error, idempotent=False) is False
    assert len(server.requests) == 1
    assert pool.open_connections == 0
    await pool.close()


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial\"", "inside the response body"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "inside the response headers"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", "inside a chunked body"),
    ],
)
async def test_a_response_cut_short_is_an_error(
    scripted: Callable[[Script], Awaitable[ScriptedServer]], answer: bytes, match: str,
) -> None:
    server = await scripted(answer_with(answer, keep=False))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    with pytest.raises(ResponseError, match=match):
        await pool.get(REQUEST, timeout=5)
    assert pool.open_connections == 0
    await pool.close()


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode(), "exceeds"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000, "header block exceeds"),
    ],
)
async def test_malformed_answers_are_refused_and_the_connection_closed(
    scripted: Callable[[Script], Awaitable[ScriptedServer]], answer: bytes, match: str,
) -> None:
    server = await scripted(answer_with(answer))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    with pytest.raises(ResponseError, match=match) as caught:
        await pool.get(REQUEST, timeout=5)
    assert pool.open_connections == 0
    assert transport_error_from_keepalive(caught.value, "GET /status", None).sent is True
    await pool.close()


async def test_bytes_beyond_the_response_stop_reuse(scripted: Callable[[Script], Awaitable[ScriptedServer]]) -> None:
    server = await scripted(answer_with(reply() + b"HTTP/1.1 200 OK\r\n"))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    await pool.get(REQUEST, timeout=5)
    await pool.get(REQUEST, timeout=5)
    assert server.connections == 2
    await pool.close()


async def test_timeout_closes_the_connection(scripted: Callable[[Script], Awaitable[ScriptedServer]]) -> None:
    async def silent(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)
        return False

    server = await scripted(silent)
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    with pytest.raises(TimeoutError):
        await pool.get(REQUEST, timeout=0.3)
    assert pool.open_connections == 0
    error = transport_error_from_keepalive(TimeoutError(), "GET /status", None)
    assert error.sent is True
    assert "timed out" in str(error)
    await pool.close()


async def test_cancelling_a_poll_closes_its_connection(scripted: Callable[[Script], Awaitable[ScriptedServer]]) -> None:
    server = await scripted(answer_after(0.5))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    task = asyncio.create_task(pool.get(REQUEST, timeout=5))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.open_connections == 0
    assert (await pool.get(REQUEST, timeout=5)).status == 200  # a late answer never reaches the next request
    assert server.connections == 2
    await pool.close()


async def test_concurrent_requests_never_exceed_the_limit(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    server = await scripted(answer_with(reply(), pause=0.02))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False, limit=3)
    responses = await asyncio.gather(*(pool.get(REQUEST, timeout=10) for _ in range(40)))
    assert all(r.status == 200 for r in responses)
    assert server.most_open <= 3
    assert pool.connections_opened <= 3
    await pool.close()


async def _one_busy_connection(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> tuple[ScriptedServer, KeepAlivePool, asyncio.Task[Response]]:
    """A pool of one connection, busy for a second with a first request."""
    server = await scripted(answer_after(1.0))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False, limit=1)
    first = asyncio.create_task(pool.get(REQUEST, timeout=5))
    await asyncio.sleep(0.05)
    return server, pool, first


async def test_waiting_for_a_free_connection_is_bounded_by_the_timeout(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    server, pool, first = await _one_busy_connection(scripted)
    with pytest.raises(TimeoutError, match="no free connection"):
        await pool.get(REQUEST, timeout=0.2)
    assert (await first).status == 200
    assert server.connections == 1
    await pool.close()


async def test_nothing_listening_is_a_connect_failure_nothing_sent() -> None:
    pool = KeepAlivePool("127.0.0.1", closed_port(), tls=False)
    with pytest.raises(ConnectFailed) as caught:
        await pool.get(REQUEST, timeout=5)
    error = transport_error_from_keepalive(caught.value, "GET /status", "sd2_secret_key")
    assert isinstance(error, SeedanceTransportError)
    assert error.sent is False
    assert "could not connect" in str(error)
    assert pool.open_connections == 0


async def test_tls_with_and_without_verification(
    scripted: Callable[[Script], Awaitable[ScriptedServer]], self_signed_tls: ssl.SSLContext,
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                break
            writer.write(reply())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self_signed_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        lax = KeepAlivePool("127.0.0.1", port, tls=True, verify_ssl=False)
        for _ in range(3):
            assert (await lax.get(REQUEST, timeout=5)).status == 200
        assert lax.connections_opened == 1
        await lax.close()
        strict = KeepAlivePool("127.0.0.1", port, tls=True, verify_ssl=True)
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await strict.get(REQUEST, timeout=5)
    finally:
        server.close()


async def test_a_closed_pool_refuses_requests() -> None:
    pool = KeepAlivePool("127.0.0.1", 9, tls=False)
    await pool.close()
    with pytest.raises(ConnectFailed, match="closed"):
        await pool.get(REQUEST, timeout=1)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


@st.composite
def _framed(draw: st.DrawFn) -> tuple[bytes, bytes, bool]:
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "length":
        return reply(body), body, False
    if framing == "close":
        return b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\n" + body, body, True
    sizes = draw(st.lists(st.integers(1, 64), max_size=8))
    chunks, pos = [], 0
    for size in sizes:
        piece = body[pos:pos + size]
        if piece:
            chunks.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        pos += size
    if pos < len(body):
        chunks.append(f"{len(body) - pos:X}\r\n".encode() + body[pos:] + b"\r\n")
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(chunks) + b"0\r\n\r\n", body, False


@settings(max_examples=300, deadline=None)
@given(message=_framed(), cuts=st.lists(st.integers(0, 2000), max_size=12))
def test_any_split_of_a_valid_response_parses_to_the_same_body(message: tuple[bytes, bytes, bool],
                                                               cuts: list[int]) -> None:
    """However the bytes arrive, the body is the one sent (property test on the parser)."""
    wire, body, needs_eof = message
    loop = asyncio.new_event_loop()
    try:
        connection = _Connection(loop)
        connection.connection_made(_Transport())
        waiter = connection.send(REQUEST)
        points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
        for start, end in itertools.pairwise(points):
            connection.data_received(wire[start:end])
        if needs_eof:
            assert not waiter.done()
            connection.connection_lost(None)
        assert waiter.done()
        assert waiter.result().body == body
        assert connection.keep is not needs_eof
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ("HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\n".encode("latin-1"), "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", "invalid Content-Length"),
        ("HTTP/1.1 2\u00b20 OK\r\n\r\n".encode("latin-1"), "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nabc", "exceeds"),
    ],
)
async def test_ambiguous_or_hostile_framing_fails_at_once_not_at_the_timeout(
    scripted: Callable[[Script], Awaitable[ScriptedServer]], answer: bytes, match: str,
) -> None:
    server = await scripted(answer_with(answer))
    pool = KeepAlivePool("127.0.0.1", server.port, tls=False)
    # A 30 s budget: failing only through the timeout would show as TimeoutError, not ResponseError.
    with pytest.raises(ResponseError, match=match):
        await pool.get(REQUEST, timeout=30)
    assert pool.open_connections == 0
    await pool.close()


async def test_closing_the_pool_fails_requests_queued_for_a_connection(
    scripted: Callable[[Script], Awaitable[ScriptedServer]],
) -> None:
    _, pool, first = await _one_busy_connection(scripted)
    queued = asyncio.create_task(pool.get(REQUEST, timeout=30))
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(ConnectFailed, match="closed"):
        await asyncio.wait_for(queued, 5)  # not after its 30 s budget
    assert (await first).status == 200
