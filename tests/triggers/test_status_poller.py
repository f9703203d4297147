"""The shared status poller: many waits, one hook and one connection lookup; each poll in its own trigger's
context; a rotated key or changed connection picked up; failures reach the waiting trigger."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_seedance.emulator.testing import DEFAULT_API_KEY
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, JobResult
from airflow_provider_seedance.triggers import _status_poller
from airflow_provider_seedance.triggers._status_poller import StatusPoller
from airflow_provider_seedance.triggers.seedance import JobEvent, SeedanceJobTrigger

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def _submit() -> str:
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt="a patient heron")).request_id


async def _run(trigger: SeedanceJobTrigger, who: str = "nobody") -> JobEvent:
    WHO.set(who)  # what the triggerer's bind_log_contextvars does for each trigger's task
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1
    return JobEvent.from_payload(events[0])


@contextlib.asynccontextmanager
async def _waiting(emu: EmulatorHandle, interval: float) -> AsyncIterator[asyncio.Task[JobEvent]]:
    """A trigger waiting for a job that never finishes, polling every ``interval`` s; cancelled on exit."""
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    task = asyncio.create_task(_run(SeedanceJobTrigger(rid, deadline=time.time() + 60, poll_interval=interval,
                                                       max_poll_interval=interval)))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection lookup a hook makes (Airflow's own lookup still runs)."""
    seen: list[str] = []
    original = SeedanceHook._alookup

    async def counted(self: SeedanceHook) -> Any:
        seen.append(self.seedance_conn_id)
        return await original(self)

    monkeypatch.setattr(SeedanceHook, "_alookup", counted)
    return seen


async def test_many_waits_share_one_hook_and_one_connection_lookup(emu: EmulatorHandle, lookups: list[str]) -> None:
    emu.admin.configure(time_scale=0.002)  # a few hundred milliseconds per job
    ids = [_submit() for _ in range(30)]
    connections_before = emu.admin.stats()["connections"]
    events = await asyncio.gather(*(
        _run(SeedanceJobTrigger(rid, deadline=time.time() + 60, poll_interval=0.05, max_poll_interval=0.2))
        for rid in ids
    ))
    assert [e.event for e in events] == ["completed"] * 30
    assert [e.request_id for e in events] == ids
    assert lookups == ["seedance_default"]
    # All 30 first polls go out together; answers come back on kept-alive connections after that.
    assert emu.admin.stats()["connections"] - connections_before <= 30


async def test_each_poll_runs_in_its_own_triggers_context(emu: EmulatorHandle) -> None:
    """The triggerer routes a trigger's log lines by context variables: the shared poller keeps them apart."""
    seen: dict[str, set[str]] = {}

    class Recording(SeedanceJobTrigger):
        def after_poll(self, result: JobResult | None, error: BaseException | None) -> float | None:
            seen.setdefault(self.request_id, set()).add(WHO.get())
            return super().after_poll(result, error)

    emu.admin.configure(time_scale=0.002)
    ids = [_submit() for _ in range(3)]
    await asyncio.gather(*(
        _run(Recording(rid, deadline=time.time() + 60, poll_interval=0.05, max_poll_interval=0.1), who=f"task-{i}")
        for i, rid in enumerate(ids)
    ))
    assert seen == {rid: {f"task-{i}"} for i, rid in enumerate(ids)}


async def test_cancelling_one_wait_leaves_the_others_polling(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    stuck = _submit()
    emu.admin.configure(time_scale=0.002)
    emu.admin.set_next_jobs(never_finishes=False)
    done = _submit()
    stuck_task = asyncio.create_task(_run(SeedanceJobTrigger(stuck, poll_interval=0.05, max_poll_interval=0.1)))
    await asyncio.sleep(0.3)
    stuck_task.cancel()
    event = await _run(SeedanceJobTrigger(done, deadline=time.time() + 60, poll_interval=0.05, max_poll_interval=0.1))
    assert event.event == "completed"
    with pytest.raises(asyncio.CancelledError):
        await stuck_task
    gets_after_cancel = [r for r in emu.admin.requests(endpoint="status") if stuck in r["path"]]
    await asyncio.sleep(0.3)
    assert [r for r in emu.admin.requests(endpoint="status") if stuck in r["path"]] == gets_after_cancel


async def test_a_rotated_key_is_read_again_after_an_auth_failure(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, lookups: list[str],
) -> None:
    try:
        async with _waiting(emu, 0.5) as task:
            await asyncio.sleep(1.2)  # two polls with the old key
            # The key is rotated: the server takes only the new one, the connection already holds it.
            emu.admin.configure(api_keys=["sd2_rotated_key"])
            monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", json.dumps(
                {"conn_type": "seedance", "host": emu.base_url, "password": "sd2_rotated_key"}))
            await asyncio.sleep(1.2)
            assert not task.done()  # no permanent error: the poll after the 401 used the re-read key
            statuses = [r["auth"] for r in emu.admin.requests(endpoint="status")]
            assert statuses[-1] == "valid"
            assert statuses.count("invalid") == 1
            assert lookups == ["seedance_default", "seedance_default"]
    finally:
        emu.admin.configure(api_keys=[DEFAULT_API_KEY])


async def test_a_wrong_key_is_a_permanent_error_after_one_re_read(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid = _submit()
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT",
                       json.dumps({"conn_type": "seedance", "host": emu.base_url, "password": "sd2_wrong"}))
    event = await _run(SeedanceJobTrigger(rid, deadline=time.time() + 60, poll_interval=0.05))
    assert event.event == "error"
    assert "SeedanceAuthError" in event.message
    assert len(emu.admin.requests(endpoint="status")) == 1  # just read: no second try with the same key


async def test_connection_settings_are_read_again_after_the_ttl(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, lookups: list[str],
) -> None:
    monkeypatch.setattr(_status_poller, "CONNECTION_TTL", 0.3)
    async with _waiting(emu, 0.1):
        await asyncio.sleep(1.0)
    assert 2 <= len(lookups) <= 5


async def test_a_bug_in_after_poll_fails_the_trigger_instead_of_hanging(emu: EmulatorHandle) -> None:
    class Broken(SeedanceJobTrigger):
        def after_poll(self, result: JobResult | None, error: BaseException | None) -> float | None:
            raise ZeroDivisionError("a bug")

    rid = _submit()
    with pytest.raises(ZeroDivisionError, match="a bug"):
        await _run(Broken(rid, deadline=time.time() + 60))
    assert StatusPoller.shared("seedance_default")._waits == 0


async def test_one_waits_failure_to_start_a_poll_is_its_own(emu: EmulatorHandle) -> None:
    """A wait that cannot even start a poll gets an error event; the waits beside it are not touched."""
    class Unpollable(SeedanceJobTrigger):
        def poll_budget(self) -> float | None:
            raise ValueError("no budget for this one")

    emu.admin.configure(time_scale=0.002)
    good_ids = [_submit() for _ in range(3)]
    bad = _submit()
    events = await asyncio.gather(
        *(_run(SeedanceJobTrigger(rid, deadline=time.time() + 60, poll_interval=0.05, max_poll_interval=0.1))
          for rid in good_ids),
        _run(Unpollable(bad, deadline=time.time() + 60, poll_interval=0.05)),
    )
    assert [e.event for e in events] == ["completed", "completed", "completed", "error"]
    assert "no budget for this one" in events[-1].message


async def test_an_unexpected_failure_while_polling_fails_the_trigger_instead_of_hanging(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_backend(self: SeedanceHook) -> Any:
        raise RuntimeError("secrets backend unavailable")

    monkeypatch.setattr(SeedanceHook, "_alookup", broken_backend)
    with pytest.raises(RuntimeError, match="secrets backend unavailable"):
        await asyncio.wait_for(_run(SeedanceJobTrigger("req_1", deadline=time.time() + 60)), 10)


async def test_a_failed_re_read_keeps_the_previous_connection_settings(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, lookups: list[str],
) -> None:
    """The connection vanishing (or the secrets backend failing) at a periodic re-read fails no wait."""
    monkeypatch.setattr(_status_poller, "CONNECTION_TTL", 0.2)
    async with _waiting(emu, 0.1) as task:
        await asyncio.sleep(0.5)
        monkeypatch.delenv("AIRFLOW_CONN_SEEDANCE_DEFAULT")
        gets = emu.admin.stats()["gets"]
        await asyncio.sleep(1.0)
        assert not task.done()  # no error event: polls went on with the settings read before
        assert emu.admin.stats()["gets"] > gets
        assert len(lookups) >= 3  # it did try to read the connection again
