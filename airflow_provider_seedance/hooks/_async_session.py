"""One shared HTTP client per (event loop, connection settings), counted by reference.

The client is the hook's ``aiohttp.ClientSession``; anything with a ``closed`` attribute and an async
``close()`` fits. A triggerer runs thousands of triggers in
one event loop; each holds a hook. Sharing one client (and so one connection pool with keep-alive) per loop
and connection keeps that to a handful of sockets instead of thousands. Each hook takes a reference on first
use and gives it back in ``aclose()``; the last one closes the client. A client nobody released is closed
when the loop shuts down its async generators (``asyncio.run`` does), so no "Unclosed client session" is
left behind.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol


class SharedClient(Protocol):
    """What the registry shares: an HTTP client that can be closed once."""

    @property
    def closed(self) -> bool:
        """Whether it was closed."""

    async def close(self) -> None:
        """Close it (idempotent)."""


__all__ = ["SessionLease", "SharedClient", "acquire_session", "open_sessions", "release_session"]


@dataclass
class _Entry:
    session: Any
    refs: int = 0


@dataclass
class _LoopSessions:
    entries: dict[Hashable, _Entry] = field(default_factory=dict)
    # Strong reference: the loop tracks its async generators only weakly.
    closer: AsyncGenerator[None, None] | None = None


@dataclass(frozen=True)
class SessionLease:
    """A hook's reference to a shared session.

    :param loop: the event loop the session belongs to.
    :param key: the connection settings it serves.
    :param session: the session.
    """

    loop: asyncio.AbstractEventLoop
    key: Hashable
    session: Any


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSessions] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()  # loops in different threads share the registry


async def _close_at_shutdown(per_loop: _LoopSessions) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        entries = list(per_loop.entries.values())
        per_loop.entries.clear()
        for entry in entries:
            await entry.session.close()


async def acquire_session(key: Hashable, factory: Callable[[], SharedClient]) -> SessionLease:
    """Take a reference to the running loop's session for ``key``, creating it on first use.

    :param key: connection settings that distinguish sessions (never the API key itself).
    :param factory: builds a new session (called inside the running loop).
    """
    loop = asyncio.get_running_loop()
    install_closer = False
    with _LOCK:
        per_loop = _REGISTRY.get(loop)
        if per_loop is None:
            per_loop = _REGISTRY[loop] = _LoopSessions()
            install_closer = True
        entry = per_loop.entries.get(key)
        if entry is None or entry.session.closed:
            entry = per_loop.entries[key] = _Entry(factory())
        entry.refs += 1
    if install_closer:
        closer = _close_at_shutdown(per_loop)
        await closer.__anext__()
        per_loop.closer = closer
    return SessionLease(loop=loop, key=key, session=entry.session)


async def release_session(lease: SessionLease) -> None:
    """Give a reference back; the last one closes the session. Must run in the lease's loop.

    :param lease: what :func:`acquire_session` returned.
    """
    with _LOCK:
        per_loop = _REGISTRY.get(lease.loop)
        entry = per_loop.entries.get(lease.key) if per_loop is not None else None
        if entry is None or entry.session is not lease.session:
            entry = None  # already closed at shutdown, or replaced after someone closed it
        else:
            entry.refs -= 1
            if entry.refs > 0:
                return
            del per_loop.entries[lease.key]  # type: ignore[union-attr]
    if not lease.session.closed:
        await lease.session.close()


def open_sessions(loop: asyncio.AbstractEventLoop | None = None) -> dict[Hashable, tuple[Any, int]]:
    """The open shared sessions of a loop with their reference counts (diagnostics and tests).

    :param loop: the loop; default the running one.
    """
    loop = loop or asyncio.get_running_loop()
    with _LOCK:
        per_loop = _REGISTRY.get(loop)
        if per_loop is None:
            return {}
        return {k: (e.session, e.refs) for k, e in per_loop.entries.items() if not e.session.closed}
