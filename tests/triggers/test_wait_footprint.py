"""What a sleeping SeedanceJobTrigger wait keeps alive, and that the lean waiting state loses nothing.

A full garbage collection walks every object a sleeping wait holds, times the 10,000 waits a triggerer
may run: the waiting state must not keep the last JobResult, a logger or a schedule of its own.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, JobResult, JobStatus
from airflow_provider_seedance.triggers.seedance import JobEvent, SeedanceJobTrigger, _restore, _snapshot

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

WAITS = 5


def _submit() -> str:
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt="a slow fox")).request_id


async def _drain(trigger: SeedanceJobTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def _sleeping_waits() -> int:
    """Live timers due in 10 s or more: the sleeps between polls (30 s, less at most 10% jitter)."""
    loop = asyncio.get_running_loop()
    soon = loop.time() + 10
    return sum(1 for handle in loop._scheduled if not handle.cancelled() and handle.when() > soon)  # type: ignore[attr-defined]


async def test_sleeping_waits_hold_no_result_and_share_logger_and_schedule(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    gc.collect()
    before = {id(o) for o in gc.get_objects()}
    triggers = [SeedanceJobTrigger(rid, deadline=time.time() + 120, poll_interval=30.0) for _ in range(WAITS)]
    tasks = [asyncio.create_task(_drain(t)) for t in triggers]
    try:
        await _until(lambda: emu.admin.stats()["gets"] >= WAITS)
        await _until(lambda: _sleeping_waits() == WAITS)  # every wait polled once and sleeps now
        gc.collect()
        kept = [o for o in gc.get_objects() if id(o) not in before and isinstance(o, JobResult)]
        assert kept == []
        assert len({id(t.log) for t in triggers}) == 1
        assert len({id(t.schedule) for t in triggers}) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # A cancelled wait (triggerer shutdown, trigger removed) leaves no timer behind.
    assert _sleeping_waits() == 0


async def test_timeout_event_still_carries_the_last_status_seen(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(status="rendering", never_finishes=True)
    rid = _submit()
    events = await _drain(SeedanceJobTrigger(rid, deadline=time.time() + 0.5, poll_interval=0.05,
                                             max_poll_interval=0.2, owns_job=False))
    event = JobEvent.from_payload(events[0])
    assert event.event == "timeout"
    assert event.result is not None
    assert event.result.request_id == rid
    assert event.result.status is JobStatus.UNKNOWN
    assert event.result.raw_status == "rendering"
    assert event.result.model == "seedance-2.0"


def test_snapshot_round_trips_every_field_and_is_not_tracked_by_the_collector() -> None:
    result = JobResult(
        request_id="req_1", status=JobStatus.UNKNOWN, raw_status="rendering", output_url=None,
        output_type="video", error="slow", credits_charged=64, model="seedance-2.0", prompt="a fox",
        duration=5, aspect_ratio="16:9",
    )
    snapshot = _snapshot(result)
    gc.collect()  # the collector untracks tuples that hold only atomic values
    assert not gc.is_tracked(snapshot)
    assert _restore(snapshot) == result
    assert _restore(_snapshot(JobResult("req_2", JobStatus.QUEUED))) == JobResult("req_2", JobStatus.QUEUED)
    assert _restore(None) is None


def test_each_trigger_class_shares_one_logger_of_its_own() -> None:
    class CustomTrigger(SeedanceJobTrigger):
        pass

    base = SeedanceJobTrigger("req_1")
    custom = CustomTrigger("req_1")
    assert base.log is SeedanceJobTrigger("req_2").log
    assert custom.log is not base.log
    assert custom.log is CustomTrigger("req_2").log
