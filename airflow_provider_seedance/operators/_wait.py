"""The non-deferrable wait: :func:`~airflow_provider_seedance.waiting.watch_job`, the poll loop the trigger runs
too, in a private event loop in the worker; ``on_kill`` interrupts it (``docs/architecture.rst``, "The road of
one status poll").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.waiting import JobEvent, JobWait, watch_job

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["InWorkerWait", "WaitInterruptedError"]


class WaitInterruptedError(SeedanceError):
    """The task was killed while it waited (its job was cancelled by ``on_kill``)."""


class InWorkerWait:
    """One wait run in the worker; :meth:`interrupt` (from ``on_kill``, often a signal handler) ends it at once."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._interrupted = False

    def run(self, hook: SeedanceHook, wait: JobWait, *, log: Any) -> JobEvent:
        """Wait for an owned job; at its deadline it is cancelled. Returns how the wait ended.

        :param hook: the operator's hook (its async path; its shared session is released at the end).
        :param wait: the job and its schedule and deadline.
        :param log: the operator's logger.
        :raises WaitInterruptedError: :meth:`interrupt` was called.
        """
        killed = WaitInterruptedError(f"Task killed while waiting for Seedance generation {wait.request_id}")
        if self._interrupted:
            raise killed

        async def main() -> JobEvent:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            try:
                return await watch_job(hook, wait, owns_job=True, log=log)
            finally:
                await hook.aclose()

        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            raise killed from None
        finally:
            self._loop = self._task = None

    def interrupt(self) -> None:
        """End the wait (safe from a signal handler or another thread)."""
        self._interrupted = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
