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
from airflow_provider_seedance.triggers._status_poller import StatusPoller
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


def _sleeping_timers() -> int:
    """Live timers due in 10 s or more: what waits between polls (30 s apart) hold."""
    loop = asyncio.get_running_loop()
    soon = loop.time() + 10
    return sum(1 for handle in loop._scheduled if not handle.cancelled() and handle.when() > soon)  # type: ignore[attr-defined]


async def test_sleeping_waits_share_one_timer_and_hold_no_result_logger_or_schedule(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    gc.collect()
    before = {id(o) for o in gc.get_objects()}
    triggers = [SeedanceJobTrigger(rid, deadline=time.time() + 120, poll_interval=30.0) for _ in range(WAITS)]
    tasks = [asyncio.create_task(_drain(t)) for t in triggers]
    try:
        await _until(lambda: emu.admin.stats()["gets"] >= WAITS)
        # Every wait polled once and sleeps now, all of them on the status poller's one timer.
        await _until(lambda: StatusPoller.shared("seedance_default").polls >= WAITS)
        await _until(lambda: _sleeping_timers() == 1)
        await asyncio.sleep(0.2)
        assert _sleeping_timers() == 1
        gc.collect()
        new = [o for o in gc.get_objects() if id(o) not in before]
        assert [o for o in new if isinstance(o, JobResult)] == []
        assert len([o for o in new if isinstance(o, SeedanceHook)]) == 1  # the poller's, shared by all waits
        assert len({id(t.log) for t in triggers}) == 1
        assert len({id(t.schedule) for t in triggers}) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # Cancelled waits (triggerer shutdown, triggers removed) leave no timer behind.
    await _until(lambda: _sleeping_timers() == 0)


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
