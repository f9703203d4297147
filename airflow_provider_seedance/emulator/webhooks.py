"""Webhook delivery: POST the final GET-shaped body to ``webhookUrl`` when a job ends, with retries; to
loopback hosts only (a local stand-in sends nothing off the machine: other URLs are logged as not sent).

Status is lazy, so a job with a webhook gets one timer set for the moment it finishes (or is fired at
once on cancel). Payload shape and signing are not documented by the vendor: we send the same body a
``GET`` returns, unsigned, as the reference suggests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from airflow_provider_seedance.emulator.jobs import Job
from airflow_provider_seedance.emulator.state import EmulatorState
from airflow_provider_seedance.models import is_loopback_host

__all__ = ["WebhookDispatcher"]

log = logging.getLogger(__name__)


class WebhookDispatcher:
    """Schedules and sends webhook deliveries for one emulator.

    :param state: the emulator state (settings, counters, delivery log).
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def schedule(self, job: Job) -> None:
        """Arrange delivery when ``job`` finishes by itself (never, for a never-finishing job).

        :param job: a job whose request has a ``webhook_url``.
        """
        finishes_at = job.finishes_at
        if job.request.webhook_url is None or finishes_at is None:
            return
        loop = asyncio.get_running_loop()
        # A small margin so the lazily computed status is terminal when the timer fires.
        delay = max(0.0, finishes_at - time.monotonic()) + 0.001
        self._timers[job.request_id] = loop.call_later(delay, self._fire, job)

    def job_cancelled(self, job: Job) -> None:
        """Deliver now for a job that was just cancelled (replacing its pending timer).

        :param job: the cancelled job.
        """
        if job.request.webhook_url is None:
            return
        timer = self._timers.pop(job.request_id, None)
        if timer is not None:
            timer.cancel()
        self._fire(job)

    def _fire(self, job: Job) -> None:
        self._timers.pop(job.request_id, None)
        task = asyncio.get_running_loop().create_task(self._deliver(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: Job) -> None:
        url = job.request.webhook_url
        assert url is not None
        config = self.state.config
        payload = job.to_api_json()
        if not is_loopback_host(urlsplit(url).hostname):
            # A local stand-in sends nothing off this machine (no DNS query either): logged as not delivered.
            self.state.webhook_log.append({
                "requestId": job.request_id, "url": url, "attempt": 0, "status": payload["status"],
                "time": time.time(), "delivered": False,
                "error": "not sent: the emulator delivers webhooks to loopback hosts only"})
            self.state.counters.webhooks_failed += 1
            return
        backoff = config.webhook_backoff
        session = self._get_session()
        state = self.state
        for attempt in range(1, max(1, config.webhook_attempts) + 1):
            entry: dict[str, Any] = {
                "requestId": job.request_id, "url": url, "attempt": attempt, "status": payload["status"],
                "time": time.time(),
            }
            try:
                async with session.post(
                    url, json=payload, timeout=aiohttp.ClientTimeout(total=config.webhook_timeout)
                ) as resp:
                    await resp.read()
                    entry["httpStatus"] = resp.status
                    ok = 200 <= resp.status < 300
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                ok = False
            entry["delivered"] = ok
            state.webhook_log.append(entry)
            if ok:
                state.counters.webhooks_delivered += 1
                return
            if attempt < config.webhook_attempts:
                await asyncio.sleep(backoff)
                backoff *= 2
        state.counters.webhooks_failed += 1
        log.info("Webhook for %s to %s failed after %d attempts", job.request_id, url, config.webhook_attempts)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def cancel_all(self) -> None:
        """Drop pending timers and in-flight deliveries (admin reset)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Stop everything and close the HTTP session (server shutdown)."""
        self.cancel_all()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
