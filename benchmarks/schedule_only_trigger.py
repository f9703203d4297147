"""A trigger that follows our polling schedule but sends no request: the triggerer's floor cost per wake-up.

Whatever a trigger does per poll, the triggerer pays for waking it: the timer, the task step, the
greenback shim, garbage collection of what the step allocated. Run through the same harness, this
trigger measures that floor, so the cost of a poll's HTTP request can be told from the cost of waking up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_seedance.polling import PollSchedule

__all__ = ["ScheduleOnlyTrigger", "ScheduledBenchTrigger"]


class ScheduledBenchTrigger(BaseTrigger):
    """Base of the benchmark's stand-in triggers: one job, our polling schedule, JSON kwargs.

    :param request_id: the job it stands for.
    :param started_at: epoch seconds the job was submitted.
    :param poll_interval: first interval, seconds.
    :param max_poll_interval: interval cap, seconds.
    """

    def __init__(self, request_id: str, started_at: float, poll_interval: float, max_poll_interval: float) -> None:
        super().__init__()
        self.request_id = request_id
        self.started_at = started_at
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.schedule = PollSchedule(initial=poll_interval, maximum=max_poll_interval)

    def _kwargs(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "started_at": self.started_at,
                "poll_interval": self.poll_interval, "max_poll_interval": self.max_poll_interval}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and kwargs."""
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()


class ScheduleOnlyTrigger(ScheduledBenchTrigger):
    """Wake up on the schedule until a known finish time; yield one event carrying the wake-up count.

    :param request_id: the job it stands for.
    :param finishes_at: epoch seconds the job completes (known to the benchmark).
    :param started_at: epoch seconds the job was submitted.
    :param poll_interval: first interval, seconds.
    :param max_poll_interval: interval cap, seconds.
    """

    def __init__(self, request_id: str, finishes_at: float, started_at: float, poll_interval: float,
                 max_poll_interval: float) -> None:
        super().__init__(request_id, started_at, poll_interval, max_poll_interval)
        self.finishes_at = finishes_at

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "finishes_at": self.finishes_at}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep on the schedule until the finish time."""
        wakeups = 0
        while True:
            wakeups += 1
            now = time.time()
            if now >= self.finishes_at:
                yield TriggerEvent({"event": "completed", "request_id": self.request_id, "wakeups": wakeups})
                return
            await asyncio.sleep(self.schedule.next_delay(now - self.started_at))
