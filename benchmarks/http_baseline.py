"""The baseline: what a user builds with apache-airflow-providers-http to wait for a Seedance job in the triggerer.

``HttpSensorTrigger`` fires on the first non-404 answer, and the status endpoint answers 200 while the job
is still queued, so it cannot wait for a JSON status by itself. ``HttpEventTrigger`` checks a response, but
it re-imports (``importlib.reload`` in a thread) the user's check function on every poll and is meant for
asset watchers, which would overstate the gap. So the baseline is the minimal trigger a user writes: the
loop of ``HttpSensorTrigger`` (a new ``aiohttp.ClientSession`` per poll, ``HttpAsyncHook.run``, a fixed
``asyncio.sleep``) plus a look at ``status`` in the JSON body. The API key travels as a header from the
HTTP connection's extras, as ``HttpAsyncHook`` sends unknown extras as headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.http.hooks.http import HttpAsyncHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = ["TERMINAL_STATUSES", "HttpStatusPollTrigger"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class HttpStatusPollTrigger(BaseTrigger):
    """Poll ``GET /api/open/v1/video/generations/{id}`` at a fixed interval until the status is terminal.

    :param request_id: the generation.
    :param http_conn_id: an ``http`` connection to the API (extras carry the ``Authorization`` header).
    :param poll_interval: seconds between polls.
    """

    def __init__(self, request_id: str, http_conn_id: str = "http_seedance", poll_interval: float = 60.0) -> None:
        super().__init__()
        self.request_id = request_id
        self.http_conn_id = http_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and kwargs."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"request_id": self.request_id, "http_conn_id": self.http_conn_id, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job is terminal; yield one event with the last body."""
        hook = HttpAsyncHook(method="GET", http_conn_id=self.http_conn_id)
        endpoint = f"api/open/v1/video/generations/{self.request_id}"
        while True:
            try:
                async with aiohttp.ClientSession() as session:
                    response = await hook.run(session=session, endpoint=endpoint)
                    body = await response.json()
            except (AirflowException, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self.log.warning("Status check of %s failed: %s", self.request_id, exc)
            else:
                if body.get("status") in TERMINAL_STATUSES:
                    yield TriggerEvent({"status": body["status"], "request_id": self.request_id, "body": body})
                    return
            await asyncio.sleep(self.poll_interval)
