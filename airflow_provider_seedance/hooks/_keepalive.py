"""A small HTTP/1.1 keep-alive GET client: the trigger's status polls, without aiohttp's per-request cost.

A triggerer watching thousands of generations spends most of its CPU on status polls: one GET with a small
JSON answer, over and over, on connections that stay open. Profiled in ``benchmarks/poll_cost.py``, aiohttp's
per-request machinery (request and response objects, URL and header multidicts, timers, tracing hooks) costs
several times what such a poll needs. This client does only that poll: ``GET`` over HTTP/1.1, bodies framed by
``Content-Length``, ``chunked`` or connection close, a bounded pool of kept-alive connections per event loop,
TLS through asyncio's ``ssl`` support. Everything else (POSTs, proxies) stays on aiohttp.

What it refuses rather than guesses: a malformed status line or header block, conflicting lengths, a body or
header block over its limit: :class:`ResponseError`, after which the connection is closed.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["ConnectFailed", "Headers", "KeepAlivePool", "Response", "ResponseError", "ssl_context"]

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
#: An idle connection older than this is not reused. Servers close idle connections after 5 s (Apache) to
#: 60-75 s (load balancers, nginx), and a request sent just as they do is retried once; but a NAT or firewall
#: may drop one silently (AWS NAT gateways after 350 s), which only a timeout would reveal. 30 s keeps the
#: pool warm between polls (the poll cap is 60 s, and a triggerer's many waits reuse each connection often)
#: and far from silent drops.
IDLE_SECONDS = 30.0
#: Request timeouts are enforced by one sweep of the requests in flight at this interval, not by a timer per
#: request: a timer per poll costs heap operations that grow with the triggerer's thousands of sleeping
#: waits. A timeout so fires up to this late.
SWEEP_SECONDS = 0.25


_DIGITS = re.compile(r"[0-9]{1,15}")  # str.isdigit() accepts "²", and int() of 5,000 digits raises
_STATUS = re.compile(r"[1-5][0-9][0-9]")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")


class ConnectFailed(OSError):
    """No connection could be opened (refused, DNS, TLS handshake, connect timeout): nothing was sent."""


class ResponseError(Exception):
    """The server's answer is not valid HTTP/1.1 (or exceeds a limit); the connection was closed."""


class Headers(dict[str, str]):
    """Response headers, keyed in lower case; :meth:`get` takes any case."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """A header's value, case-insensitively.

        :param key: the header name.
        :param default: returned when absent.
        """
        return dict.get(self, key.lower(), default)


class Response(NamedTuple):
    """A complete response.

    :param status: HTTP status.
    :param headers: the headers (repeated ones joined with ``, ``).
    :param body: the body, de-chunked.
    """

    status: int
    headers: Headers
    body: bytes


@functools.lru_cache(maxsize=2)
def ssl_context(verify: bool) -> ssl.SSLContext:
    """The TLS context aiohttp would build for the same ``verify_ssl`` (created once: it reads the CA files).

    :param verify: verify the server's certificate and host name.
    """
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _parse_head(head: bytes) -> tuple[int, Headers, bool]:
    """Status, headers and whether the connection may be kept, from a header block (without the blank line)."""
    status_line, _, rest = head.decode("latin-1").partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not _STATUS.fullmatch(parts[1]):
        raise ResponseError(f"malformed status line {status_line[:80]!r}")
    headers = Headers()
    if rest:
        for line in rest.split("\r\n"):
            name, sep, value = line.partition(":")
            # No space may come before the colon or start a line (obsolete line folding): both are refused.
            if not sep or not name or name[-1] in " \t" or name[0] in " \t":
                raise ResponseError(f"malformed header line {line[:80]!r}")
            key = name.lower()
            value = value.strip()
            previous = dict.get(headers, key)
            dict.__setitem__(headers, key, value if previous is None else f"{previous}, {value}")
    connection = dict.get(headers, "connection")
    if parts[0] == "HTTP/1.0":
        keep = connection is not None and "keep-alive" in connection.lower()
    else:
        keep = connection is None or "close" not in connection.lower()
    return int(parts[1]), headers, keep


def _framing(status: int, headers: Headers) -> int | str:
    """Body length in bytes, ``"chunked"`` or ``"close"`` (read until the server closes)."""
    if status in (204, 304) or 100 <= status < 200:
        return 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if "content-length" in headers:
            # RFC 9112 6.3: both at once is how requests get smuggled; refuse rather than pick one.
            raise ResponseError("response has both Transfer-Encoding and Content-Length")
        if coding.lower().rsplit(",", 1)[-1].strip() != "chunked":
            return "close"
        return "chunked"
    length = headers.get("content-length")
    if length is None:
        return "close"
    values = {v.strip() for v in length.split(",")}  # repeated headers arrive joined: "5, 5" is one length
    value = values.pop() if len(values) == 1 else ""
    if not _DIGITS.fullmatch(value):
        raise ResponseError(f"invalid Content-Length {length[:40]!r}")
    size = int(value)
    if size > MAX_BODY_BYTES:
        raise ResponseError(f"response body of {size} bytes exceeds the {MAX_BODY_BYTES}-byte limit")
    return size


def _dechunk(data: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of a complete chunked message beginning at ``start`` and where it ends; None if incomplete."""
    pieces: list[bytes] = []
    pos = start
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            if len(data) - pos > 4096:  # a chunk-size line is a few bytes (extensions included)
                raise ResponseError("chunk-size line too long")
            return None
        size_text = bytes(data[pos:eol]).split(b";", 1)[0].rstrip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):  # int(x, 16) would also take "0x5", "-2" or "1_0"
            raise ResponseError(f"malformed chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if pos + size - start > MAX_BODY_BYTES:
            raise ResponseError(f"response body exceeds the {MAX_BODY_BYTES}-byte limit")
        if size == 0:
            end = data.find(b"\r\n\r\n", eol)  # the blank line after the (optional) trailers
            return (b"".join(pieces), end + 4) if end >= 0 else None
        if eol + 2 + size + 2 > len(data):
            return None
        pieces.append(bytes(data[eol + 2:eol + 2 + size]))
        if data[eol + 2 + size:eol + 4 + size] != b"\r\n":
            raise ResponseError("chunk not terminated by CRLF")
        pos = eol + 4 + size
        if pos - start > MAX_BODY_BYTES:
            raise ResponseError(f"response body exceeds the {MAX_BODY_BYTES}-byte limit")


#: Called once with the response or the failure of one exchange.
Callback = Callable[[Response | None, BaseException | None], None]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.received = False  # any byte of the current response
        self._buffer = bytearray()
        self._done: Callback | None = None  # set while a request waits for its response
        self._head: tuple[int, Headers, bool, int | str, int] | None = None  # status, headers, keep, framing, start
        self.keep = False
        self.discarded = False  # no longer counted in the pool's open connections

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._done is None:
            self.close()  # nothing was asked: an unsolicited byte makes the connection untrustworthy
            return
        self.received = True
        self._buffer += data
        try:
            response = self._parse(eof=False)
        except Exception as exc:  # nothing may escape into asyncio: the request would hang to its timeout
            self.close()
            self._complete(None, _as_response_error(exc))
            return
        if response is not None:
            self._complete(response, None)

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is None:
            return
        try:
            response = self._parse(eof=True, lost=exc)
        except Exception as error:
            self._complete(None, _as_response_error(error))
            return
        if response is not None:
            self._complete(response, None)
            return
        self._complete(None, ConnectionResetError(
            "the server closed the connection before the response was complete") if exc is None else exc)

    # -- one exchange ------------------------------------------------------------------------------------

    def send(self, request: bytes, done: Callback | None = None) -> asyncio.Future[Response] | None:
        """Write a request; its response goes to ``done``, or to the returned future when there is none.

        :param request: the whole request.
        :param done: called once, from the event loop, with the response or the failure.
        """
        self._buffer.clear()
        self._head = None
        self.received = False
        future: asyncio.Future[Response] | None = None
        if done is None:
            future = self.loop.create_future()
            done = functools.partial(_settle, future)
        self._done = done
        assert self.transport is not None
        self.transport.write(request)
        return future

    def _complete(self, response: Response | None, error: BaseException | None) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(response, error)

    def _parse(self, *, eof: bool, lost: BaseException | None = None) -> Response | None:
        buffer = self._buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ResponseError(f"response header block exceeds {MAX_HEAD_BYTES} bytes")
                if eof and buffer:
                    raise ResponseError("the server closed the connection inside the response headers")
                return None
            if end > MAX_HEAD_BYTES:
                raise ResponseError(f"response header block exceeds {MAX_HEAD_BYTES} bytes")
            status, headers, keep = _parse_head(bytes(buffer[:end]))
            if 100 <= status < 200:  # interim (e.g. 103 Early Hints): the real answer follows
                del buffer[:end + 4]
                continue
            self._head = (status, headers, keep, _framing(status, headers), end + 4)
        status, headers, keep, framing, start = self._head
        if framing == "chunked":
            done = _dechunk(buffer, start)
            if done is None:
                if eof:
                    raise ResponseError("the server closed the connection inside a chunked body")
                return None
            body, end = done
        elif framing == "close":
            if len(buffer) - start > MAX_BODY_BYTES:
                raise ResponseError(f"response body exceeds the {MAX_BODY_BYTES}-byte limit")
            if not eof:
                return None
            if lost is not None:  # reset or TLS cut without close_notify: the body may be truncated
                raise ResponseError(f"the connection failed before the body ended ({type(lost).__name__})")
            body, end, keep = bytes(buffer[start:]), len(buffer), False
        else:
            assert isinstance(framing, int)
            end = start + framing
            if len(buffer) < end:
                if eof:
                    raise ResponseError("the server closed the connection inside the response body")
                return None
            body = bytes(buffer[start:end])
        # Bytes beyond the response (we never pipeline) mean the stream cannot be trusted for reuse.
        self.keep = keep and end == len(buffer)
        return Response(status, headers, body)

    def expire(self) -> None:
        """Fail the request in flight with ``TimeoutError`` (the pool then closes the connection)."""
        if self._done is not None:
            self.close()
            self._complete(None, TimeoutError("no complete response in time"))

    def abandon(self) -> None:
        """Forget the request in flight (its caller gave up) and close the connection."""
        self._done = None
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _as_response_error(exc: Exception) -> ResponseError:
    return exc if isinstance(exc, ResponseError) else ResponseError(f"unreadable answer ({type(exc).__name__}: {exc})")


def _report(done: Callback, task: asyncio.Task[Response]) -> None:
    if task.cancelled():
        done(None, TimeoutError("the retried request was cancelled"))
    elif task.exception() is not None:
        done(None, task.exception())
    else:
        done(task.result(), None)


def _settle(future: asyncio.Future[Response], response: Response | None, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(response)  # type: ignore[arg-type]


class KeepAlivePool:
    """Kept-alive connections to one origin, at most ``limit`` open at once, for one event loop.

    :param host: the server's host name or address.
    :param port: its port.
    :param tls: use TLS.
    :param verify_ssl: verify the certificate (with ``tls``).
    :param limit: most connections open at once (more requests wait for a free one).
    """

    def __init__(self, host: str, port: int, *, tls: bool, verify_ssl: bool = True, limit: int = 100) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self.host, self.port, self.tls, self.verify_ssl, self.limit = host, port, tls, verify_ssl, limit
        self._idle: deque[_Connection] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._inflight: dict[_Connection, float] = {}  # -> deadline (loop time)
        self._sweeper: asyncio.TimerHandle | None = None
        self._retries: set[asyncio.Task[Response]] = set()
        self.open_connections = 0
        self.connections_opened = 0  # diagnostics: proves reuse in tests and benchmarks
        self.closed = False

    async def get(self, request: bytes, timeout: float | None) -> Response:
        """Send a complete ``GET`` request and return the response.

        A kept-alive connection the server closed just as the request went out is retried once on a new
        connection, as browsers and aiohttp do: a GET changes nothing, and no byte of an answer had arrived.

        :param request: request line and headers, ending with the blank line.
        :param timeout: seconds for the whole exchange, connecting included (None: no limit).
        :raises ConnectFailed: no connection could be opened.
        :raises ResponseError: the answer is not valid HTTP.
        :raises TimeoutError: no complete answer in time.
        :raises OSError: the connection failed after the request was sent.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for attempt in (1, 2):
            connection, reused = await self._acquire(loop, deadline)
            waiter = connection.send(request)
            assert waiter is not None
            self._track(loop, connection, deadline)
            try:
                response = await waiter
            except ConnectionError:
                if attempt == 1 and reused and not connection.received:
                    continue
                raise
            except BaseException:
                connection.abandon()  # timed out or cancelled mid-exchange: the answer may still come
                raise
            finally:
                self._inflight.pop(connection, None)
                self._release(connection)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def send_nowait(self, request: bytes, timeout: float | None, done: Callback) -> bool:
        """Like :meth:`get`, without a task or a coroutine: on an idle kept-alive connection, now.

        The triggerer's status poller starts its polls this way: no task to create, no coroutine frames, and
        the answer is handled straight from the socket's read callback. Returns False (nothing sent) when no
        idle connection is at hand; use :meth:`get` then.

        :param request: request line and headers, ending with the blank line.
        :param timeout: seconds for the exchange (None: no limit).
        :param done: called once, from the event loop, with the response or the failure (the exceptions
            :meth:`get` raises).
        """
        if self._waiters:  # requests queue for a connection already: no overtaking them
            return False
        connection = self._take_idle()
        if connection is None:
            return False
        loop = connection.loop
        deadline = None if timeout is None else loop.time() + timeout

        def finish(response: Response | None, error: BaseException | None) -> None:
            self._inflight.pop(connection, None)
            self._release(connection)
            if isinstance(error, ConnectionError) and not connection.received:
                # The server dropped this kept-alive connection as the request went out: once more, anew.
                retry = loop.create_task(self.get(request, None if deadline is None else deadline - loop.time()))
                self._retries.add(retry)  # asyncio keeps only weak references to tasks
                retry.add_done_callback(self._retries.discard)
                retry.add_done_callback(functools.partial(_report, done))
                return
            done(response, error)

        connection.send(request, finish)
        self._track(loop, connection, deadline)
        return True

    def _track(self, loop: asyncio.AbstractEventLoop, connection: _Connection, deadline: float | None) -> None:
        if deadline is None:
            return
        self._inflight[connection] = deadline
        if self._sweeper is None:
            self._sweeper = loop.call_at(min(deadline, loop.time() + SWEEP_SECONDS), self._sweep, loop)

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # most recently used first: the likeliest to be still open
            transport = connection.transport
            if (not connection.closed and transport is not None and not transport.is_closing()
                    and now - connection.idle_since < IDLE_SECONDS):
                return connection
            connection.close()
            self._discard(connection)
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> tuple[_Connection, bool]:
        while True:
            if self.closed:
                raise ConnectFailed("the connection pool is closed")
            idle = self._take_idle()
            if idle is not None:
                return idle, True
            if self.open_connections < self.limit:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, None if deadline is None else max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError("no free connection in the pool in time") from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # this one was woken but leaves: pass the free slot on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.open_connections += 1
        try:
            connection = await self._connect(loop, deadline)
        except BaseException:
            self.open_connections -= 1
            self._wake()
            raise
        self.connections_opened += 1
        return connection, False

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> _Connection:
        context = await asyncio.to_thread(ssl_context, self.verify_ssl) if self.tls else None
        budget = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop), self.host, self.port, ssl=context,
                    server_hostname=self.host if context is not None else None,
                ),
                budget,
            )
        except asyncio.TimeoutError:
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return protocol

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = None
        now = loop.time()
        for connection, deadline in list(self._inflight.items()):
            if deadline <= now:
                del self._inflight[connection]
                connection.expire()
        if self._inflight:
            self._sweeper = loop.call_at(min(min(self._inflight.values()), now + SWEEP_SECONDS), self._sweep, loop)

    def _release(self, connection: _Connection) -> None:
        if connection.closed or not connection.keep or self.closed:
            connection.close()
            self._discard(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        self._wake()

    def _discard(self, connection: _Connection) -> None:
        if not connection.discarded:
            connection.discarded = True
            self.open_connections -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every idle connection; busy ones close when their exchange ends."""
        self.closed = True
        while self._idle:
            self._idle.pop().close()
        for waiter in self._waiters:  # requests queued for a connection fail now, not at their timeout
            if not waiter.done():
                waiter.set_result(None)

