"""A trigger that polls with nothing but one shared aiohttp session: the floor of any aiohttp-based trigger.

Same schedule as ``SeedanceJobTrigger``, same status URL and JSON answer, but no hook, no connection
lookup, no retry, no error classification, no answer checks: a GET on a session shared by every trigger of
the loop, ``json.loads`` of the body and a look at ``status``. Run through the same harness, it tells how
much of a poll's CPU in a triggerer is aiohttp and the event loop, and how much is the provider.

The API key comes from the ``AIRFLOW_CONN_SEEDANCE_DEFAULT`` environment variable the harness sets (a
benchmark shortcut: a real trigger must resolve its connection, and must not carry the key in kwargs).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

import aiohttp
from airflow.triggers.base import TriggerEvent
from schedule_only_trigger import ScheduledBenchTrigger

__all__ = ["BareAiohttpTrigger"]

STATUS_PATH = "/api/open/v1/video/generations/"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_sessions: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, str, dict[str, str]]] = {}
_users: dict[asyncio.AbstractEventLoop, int] = {}


def _session() -> tuple[aiohttp.ClientSession, str, dict[str, str]]:
    loop = asyncio.get_running_loop()
    if loop not in _sessions:
        conn = json.loads(os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"])
        headers = {"Authorization": f"Bearer {conn['password']}", "Accept": "application/json"}
        _sessions[loop] = (aiohttp.ClientSession(), conn["host"].rstrip("/"), headers)
    _users[loop] = _users.get(loop, 0) + 1
    return _sessions[loop]


async def _release() -> None:
    # Closed when its last trigger ends, as the provider's shared session is (refcounted per loop).
    loop = asyncio.get_running_loop()
    _users[loop] -= 1
    if not _users[loop]:
        session = _sessions.pop(loop)[0]
        await session.close()


class BareAiohttpTrigger(ScheduledBenchTrigger):
    """Poll one job on the provider's schedule with a bare shared-session GET; yield its final answer.

    :param request_id: the job.
    :param started_at: epoch seconds the job was submitted.
    :param poll_interval: first interval, seconds.
    :param max_poll_interval: interval cap, seconds.
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """GET the status on the schedule until it is terminal."""
        session, base, headers = _session()
        url = base + STATUS_PATH + self.request_id
        try:
            while True:
                async with session.get(url, headers=headers) as response:
                    answer = json.loads(await response.read())
                if answer.get("status") in TERMINAL:
                    break
                await asyncio.sleep(self.schedule.next_delay(time.time() - self.started_at))
        finally:
            await _release()
        yield TriggerEvent({"event": "completed", "request_id": self.request_id, "status": answer["status"]})
