"""SeedanceJobTrigger against the real emulator (real HTTP, real asyncio), as the triggerer runs it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

try:
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow < 3.1 keeps serde in core
    from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.triggers.seedance import JobEvent, SeedanceJobTrigger, parse_deadline

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

FAST = {"poll_interval": 0.05, "max_poll_interval": 0.2}


def _submit(prompt: str = "a red fox in the snow") -> str:
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt=prompt, media_urls=("https://example.com/fox.jpg",))).request_id


async def _events(trigger: SeedanceJobTrigger) -> list[dict[str, Any]]:
    """Drain run() completely: proves it yields exactly what it yields, then ends."""
    return [event.payload async for event in trigger.run()]


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def _status_gets(emu: EmulatorHandle, request_id: str) -> list[dict[str, Any]]:
    return [r for r in emu.admin.requests(endpoint="status") if r.get("requestId") == request_id]


async def test_completes_with_the_output_url(emu: EmulatorHandle) -> None:
    rid = _submit()
    events = await _events(SeedanceJobTrigger(rid, deadline=time.time() + 30, **FAST))
    assert len(events) == 1
    event = JobEvent.from_payload(events[0])
    assert event.event == "completed"
    assert event.request_id == rid
    assert event.result is not None
    assert event.result.succeeded
    assert event.result.output_url == f"{emu.base_url}/files/{rid}.mp4"
    assert emu.admin.stats()["cancels"] == 0
    # The payload survives Airflow's serde, as the triggerer stores it.
    assert deserialize(serialize(events[0])) == events[0]


async def test_failed_job_is_one_completed_event_carrying_the_vendor_message(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(fail_with="content policy violation")
    rid = _submit()
    events = await _events(SeedanceJobTrigger(rid, **FAST))
    assert len(events) == 1
    event = JobEvent.from_payload(events[0])
    assert event.event == "completed"
    assert event.result is not None
    assert event.result.status.value == "failed"
    assert "content policy violation" in (event.result.error or "")
    assert "content policy violation" in event.message
    assert rid in event.message


async def test_unknown_status_is_waited_through_not_taken_for_success(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(status="rendering", queued_seconds=0, processing_seconds=0.6)
    rid = _submit()
    events = await _events(SeedanceJobTrigger(rid, **FAST))
    assert [JobEvent.from_payload(e).event for e in events] == ["completed"]
    assert JobEvent.from_payload(events[0]).result.succeeded  # type: ignore[union-attr]
    # It kept polling while the API said "rendering".
    assert len(_status_gets(emu, rid)) >= 3


async def test_unknown_status_forever_ends_in_timeout_not_success(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(status="rendering", never_finishes=True)
    rid = _submit()
    events = await _events(SeedanceJobTrigger(rid, deadline=time.time() + 0.5, **FAST))
    assert [JobEvent.from_payload(e).event for e in events] == ["timeout"]


async def test_deadline_cancels_the_job_at_the_emulator(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    events = await _events(SeedanceJobTrigger(rid, deadline=time.time() + 0.5, **FAST))
    assert len(events) == 1
    event = JobEvent.from_payload(events[0])
    assert event.event == "timeout"
    assert rid in event.message
    assert "cancelled" in event.message
    assert emu.admin.job(rid)["status"] == "cancelled"
    assert emu.admin.stats()["cancels"] == 1


async def test_deadline_without_ownership_cancels_nothing(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    events = await _events(SeedanceJobTrigger(rid, deadline=time.time() + 0.3, owns_job=False, **FAST))
    assert JobEvent.from_payload(events[0]).event == "timeout"
    assert emu.admin.job(rid)["status"] == "processing"
    assert emu.admin.stats()["cancels"] == 0


async def test_deadline_already_passed_still_looks_once_and_returns_a_finished_job(emu: EmulatorHandle) -> None:
    # E.g. the triggerer was down past the deadline while the job finished: the result is not thrown away.
    rid = _submit()
    await _until(lambda: emu.admin.job(rid)["status"] == "succeeded")
    events = await _events(SeedanceJobTrigger(rid, deadline=time.time() - 60, **FAST))
    assert JobEvent.from_payload(events[0]).event == "completed"
    assert emu.admin.stats()["cancels"] == 0


async def test_transient_503_429_and_malformed_answers_are_absorbed(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.3)
    rid = _submit()
    emu.admin.add_fault(kind="http", endpoint="status", status=503, times=2)
    emu.admin.add_fault(kind="http", endpoint="status", status=429, retry_after="0", times=2)
    emu.admin.add_fault(kind="malformed", endpoint="status", times=1)
    emu.admin.add_fault(kind="close", endpoint="status", times=1)
    events = await _events(SeedanceJobTrigger(rid, deadline=time.time() + 30, **FAST))
    assert len(events) == 1
    event = JobEvent.from_payload(events[0])
    assert event.event == "completed"
    assert event.result is not None
    assert event.result.succeeded
    assert emu.admin.stats()["faults_injected"] == 6


async def test_retry_after_is_honoured_between_polls(emu: EmulatorHandle) -> None:
    rid = _submit()
    emu.admin.add_fault(kind="http", endpoint="status", status=429, retry_after="1", times=1)
    await _events(SeedanceJobTrigger(rid, **FAST))
    gets = _status_gets(emu, rid)
    assert gets[0]["status"] == 429
    # The server asked for 1 s; the next poll did not come earlier (a lower bound, not a timing race).
    assert gets[1]["time"] - gets[0]["time"] >= 0.9


async def test_bad_key_is_one_error_event_without_retries_or_key(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _submit()
    wrong_key = "sd2_live_not_the_right_key_123"
    conn = {"conn_type": "seedance", "host": emu.base_url, "password": wrong_key}
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_WRONG", json.dumps(conn))
    events = await _events(SeedanceJobTrigger(rid, seedance_conn_id="seedance_wrong", **FAST))
    assert len(events) == 1
    event = JobEvent.from_payload(events[0])
    assert event.event == "error"
    assert rid in event.message
    assert "401" in event.message
    assert wrong_key not in json.dumps(events[0])
    assert len(_status_gets(emu, rid)) == 1  # a permanent error is not retried


async def test_unknown_request_id_is_an_error_event(emu: EmulatorHandle) -> None:
    events = await _events(SeedanceJobTrigger("req_does_not_exist", **FAST))
    event = JobEvent.from_payload(events[0])
    assert event.event == "error"
    assert "404" in event.message
    assert "req_does_not_exist" in event.message


async def test_missing_connection_is_an_error_event_not_a_crash(emu: EmulatorHandle) -> None:
    events = await _events(SeedanceJobTrigger("req_x", seedance_conn_id="no_such_conn", **FAST))
    assert JobEvent.from_payload(events[0]).event == "error"


async def test_on_kill_cancels_the_job(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    trigger = SeedanceJobTrigger(rid, **FAST)
    runner = asyncio.create_task(_events(trigger))
    await _until(lambda: len(_status_gets(emu, rid)) >= 2)
    # What the triggerer does on a user's mark-failed/clear: cancel run(), await on_kill(), then cleanup().
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await trigger.on_kill()
    await trigger.cleanup()
    assert emu.admin.job(rid)["status"] == "cancelled"
    assert emu.admin.stats()["cancels"] == 1


async def test_on_kill_of_a_finished_job_is_harmless(emu: EmulatorHandle) -> None:
    rid = _submit()
    await _events(SeedanceJobTrigger(rid, **FAST))
    await SeedanceJobTrigger(rid, **FAST).on_kill()  # 409 from the API: logged, not raised
    assert emu.admin.job(rid)["status"] == "succeeded"


async def test_sensor_trigger_on_kill_cancels_nothing(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    await SeedanceJobTrigger(rid, owns_job=False, **FAST).on_kill()
    assert emu.admin.stats()["cancels"] == 0


async def test_triggerer_restart_does_not_cancel_and_the_recreated_trigger_keeps_the_deadline(
    emu: EmulatorHandle,
) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=1.0)
    rid = _submit()
    deadline = time.time() + 30
    first = SeedanceJobTrigger(rid, deadline=deadline, **FAST)
    runner = asyncio.create_task(_events(first))
    await _until(lambda: len(_status_gets(emu, rid)) >= 2)
    # Triggerer shutdown: run() is cancelled and cleanup() runs; on_kill() does not.
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await first.cleanup()
    assert emu.admin.job(rid)["status"] == "processing"
    assert emu.admin.stats()["cancels"] == 0

    # Another triggerer re-creates it from the stored kwargs (serde round trip, as in the metadata DB).
    _classpath, kwargs = first.serialize()
    stored = deserialize(serialize(kwargs))
    second = SeedanceJobTrigger(**stored)
    assert second.deadline == deadline
    assert second.started_at == first.started_at
    events = await _events(second)
    assert JobEvent.from_payload(events[0]).event == "completed"
    assert emu.admin.stats()["submits"] == 1


def test_serialize_round_trips_json_simple_and_without_secret(emu: EmulatorHandle) -> None:
    trigger = SeedanceJobTrigger(
        "req_1", seedance_conn_id="seedance_default", deadline="2030-01-01T00:00:00+00:00", started_at=1_700_000_000.0,
        poll_interval=2, max_poll_interval=30, owns_job=False,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_seedance.triggers.seedance.SeedanceJobTrigger"
    text = json.dumps(kwargs)  # plain JSON, no custom types
    assert emu.api_key not in text
    assert kwargs["deadline"] == parse_deadline("2030-01-01T00:00:00Z")
    again = SeedanceJobTrigger(**json.loads(text))
    assert again.serialize() == (classpath, kwargs)
    assert SeedanceJobTrigger(**deserialize(serialize(kwargs))).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1_700_000_000, 1_700_000_000.0),
        ("2030-01-01T00:00:00+00:00", 1_893_456_000.0),
        ("2030-01-01T01:00:00+01:00", 1_893_456_000.0),
        ("2030-01-01T00:00:00", 1_893_456_000.0),  # naive = UTC
    ],
)
def test_parse_deadline(value: Any, expected: float | None) -> None:
    assert parse_deadline(value) == expected


@pytest.mark.parametrize("value", ["tomorrow", True, [1]])
def test_parse_deadline_rejects_garbage(value: Any) -> None:
    with pytest.raises(ValueError, match="deadline"):
        parse_deadline(value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"request_id": ""}, "request_id"),
        ({"request_id": "r", "poll_interval": 0}, "poll interval"),
        ({"request_id": "r", "poll_interval": 10, "max_poll_interval": 5}, "max poll interval"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SeedanceJobTrigger(**kwargs)


def test_event_payload_round_trip_and_rejects_foreign_payloads() -> None:
    event = JobEvent("timeout", "req_1", None, "late")
    assert JobEvent.from_payload(event.to_payload()) == event
    with pytest.raises(ValueError, match="not a SeedanceJobTrigger event"):
        JobEvent.from_payload({"status": "success"})
