"""One deadline for a whole ``requests`` call (connect, headers, body), and connections to checked addresses.

requests' ``timeout`` bounds each socket read: a server that drips a byte every half second keeps a call
alive for ever. :func:`call_deadline` sets a deadline for the current thread; every connection of a
:class:`DeadlineAdapter` used under it registers itself (when it connects, and for each request on a
kept-alive connection), and when the deadline passes a timer shuts those sockets down, so a blocked read
returns at once and the call fails. The connect timeout is also clamped to the time left.

With ``public_only=True`` the adapter's connections resolve their host, refuse non-public addresses
(:func:`~airflow_provider_seedance._addresses.resolve_public`) and connect to the address checked: no
second DNS answer. Only urllib3/requests public API is used (``init_poolmanager``, pool classes and their
``ConnectionCls``, the connection's ``host``/``server_hostname``/``sock`` attributes).

Use::

    session.mount("https://", DeadlineAdapter())
    with call_deadline(30.0) as deadline:
        response = session.get(url, stream=True, timeout=30.0)
        body = response.content          # raises CallDeadlineExceeded (a requests Timeout) after 30 s
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.utils import select_proxy
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import parse_url

from airflow_provider_seedance._addresses import resolve_public

__all__ = ["CallDeadline", "CallDeadlineExceeded", "DeadlineAdapter", "call_deadline", "current_deadline"]

_local = threading.local()


class CallDeadlineExceeded(requests.exceptions.ReadTimeout):
    """The call's deadline passed (a ``ReadTimeout``: the request may have reached the server)."""


class CallDeadline:
    """A deadline for the current thread's calls; connections used meanwhile are shut down when it passes.

    :param seconds: time allowed from now.
    """

    def __init__(self, seconds: float, *, limit: float | None = None) -> None:
        if not seconds > 0 or math.isinf(seconds) or (limit is not None and not 0 < limit < math.inf):
            raise ValueError(f"a deadline needs positive, finite seconds, got {seconds!r} (limit {limit!r})")
        now = time.monotonic()
        self.seconds = min(seconds, limit) if limit is not None else seconds
        self._hard = now + limit if limit is not None else math.inf
        self._expires = now + self.seconds
        self._step = seconds
        self._lock = threading.Lock()
        self._connections: set[Any] = set()
        self._sockets: set[socket.socket] = set()
        self._timer: threading.Timer | None = None
        self._closed = False
        self.expired = False

    def remaining(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self._expires - time.monotonic())

    def postpone(self) -> None:
        """Progress was made: allow ``seconds`` more from now, never past ``limit`` (a stall timer)."""
        with self._lock:
            if not self.expired:
                self._expires = min(time.monotonic() + self._step, self._hard)

    def attach(self, connection: Any) -> None:
        """Watch ``connection`` (a urllib3 connection) and its current socket until the deadline or :meth:`close`.

        The socket is kept too: a response that closes its connection takes the socket over (the
        connection's ``sock`` is then None while the body is still read from it).
        """
        with self._lock:
            if not self.expired:
                self._connections.add(connection)
                if isinstance(connection.sock, socket.socket):
                    self._sockets.add(connection.sock)
                return
        _shut(connection.sock)

    def start(self) -> None:
        """Start the timer (done by :func:`call_deadline`)."""
        self._arm()

    def _arm(self) -> None:
        timer = threading.Timer(max(0.0, self._expires - time.monotonic()), self._fire)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._expires > time.monotonic():  # postponed meanwhile
                self._arm()
                return
            self.expired = True
            sockets = {c.sock for c in self._connections} | self._sockets
            self._connections, self._sockets = set(), set()
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        """Stop watching (the call ended); nothing is shut down after this."""
        with self._lock:
            self._closed = True
            self._connections.clear()
            self._sockets.clear()
            timer = self._timer
        if timer is not None:
            timer.cancel()


def _shut(sock: Any) -> None:
    if isinstance(sock, socket.socket):
        # The plain socket's shutdown, also for a TLS socket: the fd is shut, so a read blocked in another
        # thread returns; SSLSocket.shutdown would first drop its TLS object under that reader.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def current_deadline() -> CallDeadline | None:
    """The deadline of the innermost :func:`call_deadline` of this thread, if any."""
    return getattr(_local, "deadline", None)


@contextlib.contextmanager
def call_deadline(seconds: float, *, limit: float | None = None) -> Iterator[CallDeadline]:
    """Give every :class:`DeadlineAdapter` call made inside one deadline ``seconds`` from now.

    While one is active, a nested block's connections answer to the inner one only.

    :param seconds: time allowed for everything in the block (connect, headers and body reads), or
        between two :meth:`CallDeadline.postpone` calls.
    :param limit: with :meth:`CallDeadline.postpone`, the bound no progress extends past (seconds from now).
    """
    outer = current_deadline()
    deadline = CallDeadline(seconds, limit=limit)
    deadline.start()
    _local.deadline = deadline
    try:
        yield deadline
    finally:
        _local.deadline = outer
        deadline.close()


def _clamp(timeout: Any, left: float) -> Any:
    if isinstance(timeout, tuple):
        return tuple(_clamp(part, left) for part in timeout)
    return left if timeout is None else min(float(timeout), left)


class _WatchedConnection(HTTPConnection):
    """Registers with the thread's deadline; with ``public_only``, connects to a checked address only."""

    public_only = False

    def connect(self) -> None:
        deadline = current_deadline()
        if deadline is not None:
            deadline.attach(self)  # before connecting: a TLS handshake dripped byte by byte is cut too
        self._checked_connect()
        if deadline is not None:
            deadline.attach(self)  # now with its socket

    def _checked_connect(self) -> None:
        if not self.public_only or self.proxy is not None:
            super().connect()  # through a proxy: the adapter checked the target (the proxy resolves it)
            return
        host = self.host
        answers = resolve_public(host, self.port)
        if isinstance(self, HTTPSConnection) and self.server_hostname is None:
            self.server_hostname = host  # TLS checks the name, not the address connected to
        last: Exception | None = None
        try:
            for answer in answers:
                self.host = str(answer[4][0])
                try:
                    super().connect()
                    return
                except (NewConnectionError, ConnectTimeoutError) as exc:
                    last = exc
            if last is not None:
                raise last
        finally:
            self.host = host  # the Host header and logs keep the name

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        deadline = current_deadline()
        if deadline is not None:
            deadline.attach(self)  # a kept-alive connection, connected under an earlier call
        super().request(*args, **kwargs)
        if deadline is not None:
            deadline.attach(self)  # a plain http connection connects inside request()


def _classes(public_only: bool) -> dict[str, type[HTTPConnectionPool]]:
    plain = type("DeadlineHTTPConnection", (_WatchedConnection,), {"public_only": public_only})
    tls = type("DeadlineHTTPSConnection", (_WatchedConnection, HTTPSConnection), {"public_only": public_only})
    return {
        "http": type("DeadlineHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
        "https": type("DeadlineHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
    }


_POOLS = {flag: _classes(flag) for flag in (False, True)}


class DeadlineAdapter(TCPKeepAliveAdapter):
    """requests' adapter (with HttpHook's TCP keep-alive) whose calls honour :func:`call_deadline`.

    A failure after the deadline passed is raised as :class:`CallDeadlineExceeded`.

    :param public_only: connect to public addresses only (see :mod:`~airflow_provider_seedance._addresses`).
    :param kwargs: :class:`~requests_toolbelt.adapters.socket_options.TCPKeepAliveAdapter`'s (``idle``...).
    """

    def __init__(self, *, public_only: bool = False, **kwargs: Any) -> None:
        self.public_only = public_only
        super().__init__(**kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.public_only = state.get("public_only", False)
        super().__setstate__(state)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS[getattr(self, "public_only", False)]

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS manager keeps its own connection classes
            manager.pool_classes_by_scheme = _POOLS[self.public_only]
        return manager

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str | None = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        deadline = current_deadline()
        if self.public_only and proxies and select_proxy(request.url or "", proxies):
            # The proxy resolves the name: check what it would reach as seen from here (best effort).
            target = parse_url(request.url or "")
            with contextlib.suppress(socket.gaierror):  # no local DNS behind a proxy: the proxy decides
                default_port = 443 if target.scheme == "https" else 80
                resolve_public((target.host or "").strip("[]"), target.port or default_port)
        if deadline is None:
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        left = deadline.remaining()
        if deadline.expired or left <= 0:
            raise CallDeadlineExceeded(f"the call took longer than {deadline.seconds:g} s")
        try:
            return super().send(request, stream=stream, timeout=_clamp(timeout, left), verify=verify, cert=cert,
                                proxies=proxies)
        except requests.RequestException:
            if deadline.expired:
                raise CallDeadlineExceeded(f"the call took longer than {deadline.seconds:g} s") from None
            raise
