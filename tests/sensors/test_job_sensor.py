"""SeedanceJobSensor against the real emulator, in-process (DAG runs are in tests/integration)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_seedance.errors import SeedanceNotFoundError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle


def _submit() -> str:
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt="a lighthouse at dusk")).request_id


def _sensor(request_id: str, **kwargs: Any) -> SeedanceJobSensor:
    return SeedanceJobSensor(task_id="wait", request_id=request_id, poke_interval=0.05, **kwargs)


def test_poke_is_false_while_running_then_returns_the_url(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.5)
    rid = _submit()
    sensor = _sensor(rid)
    assert sensor.poke(context) is False
    url = sensor.execute(context)  # poke mode loop of the base class
    assert url == f"{emu.base_url}/files/{rid}.mp4" == context["ti"].pushed["output_url"]
    assert emu.admin.stats()["cancels"] == 0


def test_failed_job_fails_without_retry_naming_request_and_vendor_message(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    emu.admin.set_next_jobs(fail_with="GPU on fire")
    rid = _submit()
    with pytest.raises(AirflowFailException, match=f"{rid} ended failed: .*GPU on fire"):
        _sensor(rid).execute(context)


def test_soft_fail_skips_a_failed_job(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(fail_with="GPU on fire")
    rid = _submit()
    with pytest.raises(AirflowSkipException):
        _sensor(rid, soft_fail=True).execute(context)
    with pytest.raises(AirflowSkipException):
        _sensor(rid, soft_fail=True, deferrable=True).execute(context)


def test_transient_errors_are_not_yet_and_timeout_applies(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit()
    emu.admin.add_fault(kind="http", endpoint="status", status=503, times=-1)
    sensor = SeedanceJobSensor(task_id="wait", request_id=rid, poke_interval=0.05, timeout=0.3)
    sensor.hook.retry_policy = type(sensor.hook.retry_policy)(max_attempts=1)  # keep the test short
    assert sensor.poke(context) is False
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(context)
    assert emu.admin.stats()["cancels"] == 0  # not the sensor's job to cancel


def test_unknown_request_id_raises(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    with pytest.raises(SeedanceNotFoundError, match="req_nope"):
        _sensor("req_nope").poke(context)


def test_empty_rendered_request_id_fails_clearly(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    with pytest.raises(AirflowFailException, match="needs a request id"):
        _sensor(" ").poke(context)


def test_deferrable_defers_without_owning_the_job_then_finishes(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.5)
    rid = _submit()
    sensor = _sensor(rid, deferrable=True, timeout=600, max_poll_interval=0.2)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context)
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["owns_job"] is False
    assert kwargs["request_id"] == rid
    assert kwargs["deadline"] - kwargs["started_at"] == pytest.approx(600)

    async def fire() -> dict[str, Any]:
        async for event in info.value.trigger.run():
            return event.payload
        raise AssertionError("no event")

    assert sensor.execute_complete(context, asyncio.run(fire())) == f"{emu.base_url}/files/{rid}.mp4"


def test_deferrable_returns_at_once_when_already_done(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    rid = _submit()
    asyncio.run(asyncio.sleep(0.5))
    assert _sensor(rid, deferrable=True).execute(context).endswith(f"{rid}.mp4")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"event": "timeout", "request_id": "req_1", "result": None, "message": "late"}, AirflowSensorTimeout),
        ({"event": "error", "request_id": "req_1", "result": None, "message": "401"}, AirflowException),
        ({"event": "completed", "request_id": "req_1", "message": "",
          "result": {"request_id": "req_1", "status": "cancelled", "error": "by user"}}, AirflowFailException),
    ],
)
def test_execute_complete_failures(context: dict[str, Any], payload: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        _sensor("req_1", deferrable=True).execute_complete(context, payload)


def test_poke_return_value_carries_the_url(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    rid = _submit()
    asyncio.run(asyncio.sleep(0.5))
    value = _sensor(rid).poke(context)
    assert isinstance(value, PokeReturnValue)
    assert value.xcom_value.endswith(".mp4")
