"""SeedanceJobTrigger: wait for one generation in the triggerer, without holding a worker slot.

It runs :func:`~airflow_provider_seedance.waiting.watch_job`, the one wait every mode shares, and yields its
:class:`~airflow_provider_seedance.waiting.JobEvent` once. Only an owned job is cancelled: at the deadline and
in :meth:`SeedanceJobTrigger.on_kill`, never in ``cleanup`` (which also runs on a triggerer restart). Design:
``docs/architecture.rst``.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import mask_secret
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_seedance._redact import url_secrets
from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.models import check_request_id
from airflow_provider_seedance.polling import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, PollSchedule
from airflow_provider_seedance.waiting import (
    CANCEL_BUDGET,
    EVENT_COMPLETED,
    EVENT_ERROR,
    EVENT_TIMEOUT,
    JobEvent,
    JobWait,
    format_deadline,
    log_cancel,
    parse_deadline,
    watch_job,
)

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = [
    "EVENT_COMPLETED",
    "EVENT_ERROR",
    "EVENT_TIMEOUT",
    "JobEvent",
    "SeedanceJobTrigger",
    "format_deadline",
    "parse_deadline",
]

_HOOK_MODULE = "airflow_provider_seedance.hooks.seedance"
_hook_module: Any = None


async def _import_hook_module() -> Any:
    """The hook module, imported in a thread the first time.

    Importing it pulls in aiohttp, requests and the http provider: ~0.3 s the first time in a fresh
    triggerer, which would block the event loop every trigger runs on. Not ``sys.modules``: a module is there
    from the moment its import *starts*, so a second trigger starting meanwhile would get it half-initialised;
    ``import_module`` in its own thread waits on the import lock instead.
    """
    global _hook_module
    if _hook_module is None:
        _hook_module = await asyncio.to_thread(importlib.import_module, _HOOK_MODULE)
    return _hook_module


class SeedanceJobTrigger(BaseTrigger):
    """Wait for a Seedance generation to finish; yield one :class:`~airflow_provider_seedance.waiting.JobEvent`.

    Every argument is JSON-simple and none is secret (the API key stays in the connection).

    :param request_id: the generation to wait for.
    :param seedance_conn_id: the Seedance connection.
    :param deadline: absolute deadline (epoch seconds or ISO-8601); None waits indefinitely.
    :param started_at: epoch seconds the job was submitted (drives the polling schedule); default now.
    :param poll_interval: first and smallest polling interval, in seconds.
    :param max_poll_interval: cap of the polling interval, in seconds.
    :param owns_job: cancel the job at the deadline and when a user kills the task.
    """

    def __init__(
        self,
        request_id: str,
        seedance_conn_id: str = "seedance_default",
        deadline: float | str | None = None,
        started_at: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        owns_job: bool = True,
    ) -> None:
        super().__init__()
        self.request_id = check_request_id(request_id)
        self.seedance_conn_id = seedance_conn_id
        self.deadline = parse_deadline(deadline)
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self.owns_job = bool(owns_job)
        # Validates the poll settings here, in the worker, rather than later in the triggerer.
        self.schedule = PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-simple kwargs (no secret) to re-create this trigger anywhere."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "seedance_conn_id": self.seedance_conn_id,
                "deadline": self.deadline,
                "started_at": self.started_at,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "owns_job": self.owns_job,
            },
        )

    async def _hook(self) -> SeedanceHook:
        module = await _import_hook_module()
        return module.SeedanceHook(seedance_conn_id=self.seedance_conn_id)

    def job_wait(self) -> JobWait:
        """The wait this trigger runs (its request id, schedule and deadline)."""
        return JobWait(self.request_id, self.started_at, self.deadline, self.schedule)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait until the job is terminal, the wait fails for good or the deadline passes; yield one event."""
        hook = await self._hook()
        try:
            event = await watch_job(hook, self.job_wait(), owns_job=self.owns_job, log=self.log)
        finally:
            await hook.aclose()
        if event.result is not None and event.result.output_url:
            # The triggerer logs the whole payload ("Trigger fired event"): a signed output URL is a
            # credential, so its secret parts are masked there (the payload keeps the real URL).
            for secret in url_secrets(event.result.output_url):
                mask_secret(secret)
        yield TriggerEvent(event.to_payload())

    async def on_kill(self) -> None:
        """Cancel the job: a user marked, cleared or killed the deferred task (Airflow >= 3.3 only).

        Not called on a triggerer restart or redistribution, where the job must keep running.
        """
        if not self.owns_job:
            return
        hook = await self._hook()
        try:
            result = await asyncio.wait_for(hook.acancel_job(self.request_id), timeout=CANCEL_BUDGET)
        except (SeedanceError, TimeoutError, asyncio.TimeoutError) as exc:  # two classes before Python 3.11
            log_cancel(self.log, self.request_id, "the task was killed", None, exc)
        else:
            log_cancel(self.log, self.request_id, "the task was killed", result, None)
        finally:
            await hook.aclose()

    async def cleanup(self) -> None:
        """Cancel nothing, deliberately: ``cleanup`` also runs when the triggerer restarts or hands the trigger
        to another triggerer, and the job must survive that."""
