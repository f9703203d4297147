"""One status poller per event loop and connection: every waiting trigger's polls, from one schedule.

A triggerer may hold thousands of :class:`~airflow_provider_seedance.triggers.seedance.SeedanceJobTrigger`
waits. If each slept in its own task and polled with its own hook, every poll would wake its task (through
the triggerer's greenback portal), arm a timer of its own and cost the event loop an iteration or two of its
own, and every wait would hold a hook, a timer and a sleeping coroutine. Here a waiting trigger registers
with the loop's poller and sleeps on one future until its job needs it (finished, failed for good, past its
deadline). The poller keeps the due times in one heap, wakes once for all polls due together, runs each poll
as a short task *in the waiting trigger's context* (so its log lines still reach that trigger's task log)
through one shared hook, and asks the trigger (``after_poll``) what the answer means and when to ask again.

The shared hook re-reads the connection every :data:`CONNECTION_TTL` seconds and after an authentication
failure (a rotated key), so a long-lived poller never pins old connection settings.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import sys
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_seedance.errors import SeedanceAuthError, SeedanceError
from airflow_provider_seedance.models import JobResult

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["CONNECTION_TTL", "PollOutcome", "StatusPoller", "Watcher"]

#: Seconds the shared hook keeps connection settings before it looks the connection up again.
CONNECTION_TTL = 300.0
#: A poll may run this fraction of its interval early (at most :data:`MAX_EARLY` seconds), so that polls due
#: at nearly the same time share one wake-up of the loop.
EARLY_FRACTION = 0.01
MAX_EARLY = 0.05

#: What ends a wait: the last answer or the failure of the last poll (exactly one is set).
PollOutcome = tuple[JobResult | None, BaseException | None]

_POLL_ERRORS = (SeedanceError, AirflowNotFoundException, TimeoutError)


class Watcher(Protocol):
    """What the poller needs from a waiting trigger."""

    request_id: str

    def poll_budget(self) -> float | None:
        """Seconds the next poll may take (None: the connection's timeout)."""

    def after_poll(self, result: JobResult | None, error: BaseException | None) -> float | None:
        """Seconds until the next poll, or None when the wait is over (the trigger then acts on it).

        :param result: the answer, or None when the poll failed.
        :param error: the failure (a SeedanceError, a missing connection or a timed-out lookup), or None.
        """


class _Wait:
    __slots__ = ("context", "future", "task", "watcher")

    def __init__(self, watcher: Watcher, future: asyncio.Future[PollOutcome]) -> None:
        self.watcher = watcher
        self.future = future
        self.context = contextvars.copy_context()  # the trigger's: its log lines are routed by it
        self.task: asyncio.Task[None] | None = None  # the poll in flight (a strong reference)


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, StatusPoller]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


class StatusPoller:
    """Polls the status of every registered wait of one connection, in one event loop.

    :param seedance_conn_id: the connection.
    """

    def __init__(self, seedance_conn_id: str) -> None:
        self.seedance_conn_id = seedance_conn_id
        # (due, order) pairs plus order -> wait: a pair of numbers is not tracked by the garbage collector,
        # so the one entry each poll leaves behind for a whole interval never fills the old generation.
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, _Wait] = {}
        self._order = itertools.count()  # ties in due time break by arrival, never by comparing waits
        self._waits = 0
        self._hook: SeedanceHook | None = None
        self._hook_born = 0.0
        self._generation = 0  # bumped when the connection is to be read again
        self._driver: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_at = float("inf")
        self.polls = 0  # diagnostics
        self.closed = False

    @classmethod
    def shared(cls, seedance_conn_id: str) -> StatusPoller:
        """The running loop's poller for a connection (created on first use).

        :param seedance_conn_id: the connection.
        """
        loop = asyncio.get_running_loop()
        with _LOCK:
            per_loop = _REGISTRY.setdefault(loop, {})
            poller = per_loop.get(seedance_conn_id)
            if poller is None:
                poller = per_loop[seedance_conn_id] = cls(seedance_conn_id)
        return poller

    async def watch(self, watcher: Watcher) -> PollOutcome:
        """Poll for ``watcher`` now and then as it asks, until it says the wait is over.

        Cancelling the awaiting task ends the wait (no later poll is made for it).

        :param watcher: the waiting trigger.
        """
        loop = asyncio.get_running_loop()
        wait = _Wait(watcher, loop.create_future())
        self._waits += 1
        try:
            self._schedule(wait, 0.0)
            return await wait.future
        finally:
            self._waits -= 1
            if wait.task is not None:
                wait.task.cancel()
            if self._waits == 0:
                await self._close()

    # -- scheduling --------------------------------------------------------------------------------------

    def _schedule(self, wait: _Wait, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + max(0.0, delay)
        order = next(self._order)
        self._due[order] = wait
        heapq.heappush(self._heap, (due - min(MAX_EARLY, delay * EARLY_FRACTION), order))
        if self._driver is None:
            # An empty context: the driver is nobody's; each poll runs in its own trigger's context.
            self._driver = contextvars.Context().run(loop.create_task, self._drive())
        elif due < self._wake_at and self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)  # an earlier poll than the driver sleeps for

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._heap:
                now = loop.time()
                due = self._heap[0][0]
                if due > now:
                    self._wake_at = due
                    self._wakeup = wakeup = loop.create_future()
                    timer = loop.call_at(due, _resolve, wakeup)
                    try:
                        await wakeup
                    finally:
                        timer.cancel()
                        self._wake_at = float("inf")
                    continue
                self._refresh_if_stale()
                while self._heap and self._heap[0][0] <= now:
                    wait = self._due.pop(heapq.heappop(self._heap)[1])
                    if wait.future.done():
                        continue
                    try:
                        self._start(wait, loop)
                    except Exception as exc:  # this wait's failure is nobody else's
                        wait.context.run(self._conclude, wait, None, exc)
        except BaseException as exc:
            # Nobody would poll for the waits left in the heap: hand them the failure instead of a silent hang.
            for wait in self._due.values():
                if wait.future.done():
                    continue
                if isinstance(exc, Exception):
                    wait.future.set_exception(exc)
                else:  # cancelled (the loop is shutting down): so are the waits
                    wait.future.cancel()
            self._heap.clear()
            self._due.clear()
            raise
        finally:
            self._driver = None

    # -- one poll ----------------------------------------------------------------------------------------

    def _start(self, wait: _Wait, loop: asyncio.AbstractEventLoop) -> None:
        self.polls += 1
        watcher = wait.watcher
        hook, generation = self._shared_hook(), self._generation
        # Most polls go out right here on an idle kept-alive connection, answered from the socket's read
        # callback: no task, no coroutine. The first poll (connection lookup) and any poll that finds no
        # idle connection run as a task instead.
        if not hook.start_get_job(watcher.request_id, watcher.poll_budget(),
                                  functools.partial(self._answered, wait, generation)):
            wait.task = _create_task_in(wait.context, loop, self._poll(wait, generation))

    def _answered(self, wait: _Wait, generation: int, result: JobResult | None, error: BaseException | None) -> None:
        if wait.future.done() or self.closed:  # the wait was cancelled meanwhile
            return
        if isinstance(error, SeedanceAuthError) and self._read_again(generation):
            wait.task = _create_task_in(wait.context, asyncio.get_running_loop(), self._poll(wait, self._generation))
            return
        wait.context.run(self._conclude, wait, result, error)

    async def _poll(self, wait: _Wait, generation: int) -> None:
        try:
            try:
                result: JobResult | None = await self._get(wait.watcher, generation)
                error: BaseException | None = None
            except _POLL_ERRORS as exc:
                result, error = None, exc
            except Exception as exc:  # not a poll failure (a bug, a broken connection setting): the trigger raises
                if not wait.future.done():
                    wait.future.set_exception(exc)
                return
        finally:
            wait.task = None
        self._conclude(wait, result, error)

    async def _get(self, watcher: Watcher, generation: int) -> JobResult:
        try:
            return await self._shared_hook().aget_job(watcher.request_id, timeout=watcher.poll_budget())
        except SeedanceAuthError:
            if not self._read_again(generation):
                raise
            return await self._shared_hook().aget_job(watcher.request_id, timeout=watcher.poll_budget())

    def _read_again(self, generation: int) -> bool:
        """After an auth failure with the settings of ``generation``: is asking again with newer ones worth it?"""
        if generation != self._generation:
            return True  # another poll re-read the connection meanwhile
        if time.monotonic() - self._hook_born < 1.0:
            return False  # the connection was only just read: the key is wrong, not stale
        self._refresh()  # the key may have been rotated since the connection was read
        return True

    def _conclude(self, wait: _Wait, result: JobResult | None, error: BaseException | None) -> None:
        """Runs in the waiting trigger's context: what ``after_poll`` logs goes to its task log."""
        if wait.future.done():  # the wait was cancelled meanwhile
            return
        try:
            delay = wait.watcher.after_poll(result, error)
        except Exception as exc:  # a bug, not a poll failure: the trigger raises it rather than waits forever
            wait.future.set_exception(exc)
            return
        if delay is None:
            wait.future.set_result((result, error))
        else:
            self._schedule(wait, delay)

    # -- the shared hook ---------------------------------------------------------------------------------

    def _shared_hook(self) -> SeedanceHook:
        if self.closed:
            raise RuntimeError("the status poller is closed")  # a late poll must not build a hook nobody closes
        if self._hook is None:
            # Imported here: the hook module pulls in the HTTP clients, which a DAG parse does not need.
            from airflow_provider_seedance.hooks.seedance import SeedanceHook

            # Polls are not retried inside the hook: the poll loop is the retry loop (the schedule, the
            # server's Retry-After and the deadline decide when to ask again).
            self._hook = SeedanceHook(seedance_conn_id=self.seedance_conn_id, max_retries=0)
            self._hook_born = time.monotonic()
        return self._hook

    def _refresh_if_stale(self) -> None:
        if self._hook is not None and time.monotonic() - self._hook_born >= CONNECTION_TTL:
            self._refresh()

    def _refresh(self) -> None:
        if self._hook is not None:
            self._hook.refresh_connection()
            self._hook_born = time.monotonic()
            self._generation += 1

    async def _close(self) -> None:
        self.closed = True
        loop = asyncio.get_running_loop()
        with _LOCK:
            per_loop = _REGISTRY.get(loop)
            if per_loop is not None and per_loop.get(self.seedance_conn_id) is self:
                del per_loop[self.seedance_conn_id]
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)  # the driver finds nothing left to poll and ends
        self._heap.clear()
        self._due.clear()
        hook, self._hook = self._hook, None
        if hook is not None:
            await hook.aclose()


def _create_task_in(
    context: contextvars.Context, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    if sys.version_info >= (3, 11):
        return loop.create_task(coro, context=context)  # runs in that context, no copy per poll
    return context.run(loop.create_task, coro)  # 3.10: the task copies the context it is created in


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
