"""SeedanceJobTrigger's own loop, beyond test_job_trigger.py: another job's answer is never delivered, a host
name that stops resolving mid-wait is waited through, serialization is untouched by a run, and deadlines in
every accepted form (and only those)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_seedance.errors import SeedanceHostNotFoundError, SeedanceResponseError
from airflow_provider_seedance.hooks._retry import POLICIES, RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, JobResult, JobStatus
from airflow_provider_seedance.triggers.seedance import JobEvent, SeedanceJobTrigger, parse_deadline
from airflow_provider_seedance.waiting import Verdict

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

FAST = {"poll_interval": 0.05, "max_poll_interval": 0.2}
LOG = logging.getLogger(__name__)
QUICK_POLL_RETRIES = RetryPolicy(max_attempts=3, max_total_seconds=5.0, initial_wait=0.01, max_wait=0.02, jitter=0.0)


@pytest.fixture(autouse=True)
def quick_poll_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trigger's per-poll retry policy with tiny waits (same attempts), so these tests stay fast."""
    monkeypatch.setitem(POLICIES, "poll", QUICK_POLL_RETRIES)


def _submit(prompt: str) -> str:
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt=prompt)).request_id


async def _events(trigger: SeedanceJobTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def _succeeded_body_of_another_job(emu: EmulatorHandle) -> tuple[str, str, str]:
    """Job B, finished: its id, its output URL and its 'succeeded' status body as the API sends it."""
    other = _submit("the other job")
    deadline = time.monotonic() + 10
    while emu.admin.job(other)["status"] != "succeeded":
        assert time.monotonic() < deadline, "job B never finished"
        time.sleep(0.02)
    with SeedanceHook() as hook:
        result = hook.get_job(other)
    assert result.output_url
    body = {"success": True, "requestId": other, "status": "succeeded", "model": result.model,
            "output": {"type": "video", "url": result.output_url}, "creditsCharged": result.credits_charged}
    return other, result.output_url, json.dumps(body)


async def test_another_jobs_succeeded_answer_is_never_delivered_and_the_wait_goes_on(emu: EmulatorHandle) -> None:
    other, other_url, other_body = _succeeded_body_of_another_job(emu)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.3)
    mine = _submit("my job")
    # A confused cache/proxy answers B's "succeeded" for A, for the first four status requests.
    emu.admin.add_fault(kind="malformed", status=200, endpoint="status", request_id=mine, body=other_body,
                        times=4, process=False)
    events = await _events(SeedanceJobTrigger(mine, deadline=time.time() + 30, **FAST))
    assert len(events) == 1
    event = JobEvent.from_payload(events[0])
    assert event.event == "completed"
    assert event.result is not None
    assert event.result.request_id == mine
    assert event.result.output_url == f"{emu.base_url}/files/{mine}.mp4"
    assert other_url not in json.dumps(events[0])
    assert other not in json.dumps(events[0])
    assert emu.admin.stats()["faults_injected"] == 4  # every wrong answer was asked past


async def test_another_jobs_answer_until_the_deadline_ends_in_timeout_not_its_video(emu: EmulatorHandle) -> None:
    other, other_url, other_body = _succeeded_body_of_another_job(emu)
    emu.admin.set_next_jobs(never_finishes=True)
    mine = _submit("my job")
    emu.admin.add_fault(kind="malformed", status=200, endpoint="status", request_id=mine, body=other_body,
                        times=-1, process=False)
    events = await _events(SeedanceJobTrigger(mine, deadline=time.time() + 0.6, owns_job=False, **FAST))
    assert [JobEvent.from_payload(e).event for e in events] == ["timeout"]
    assert other_url not in json.dumps(events[0])
    assert other not in json.dumps(events[0])
    assert emu.admin.stats()["faults_injected"] >= 2  # it kept asking


# -- a host name that does not resolve, while waiting ---------------------------------------------------------


def test_host_not_found_mid_wait_is_transient_and_keeps_the_last_status() -> None:
    wait = SeedanceJobTrigger("req_mid", deadline=time.time() + 60, **FAST).job_wait()
    processing = JobResult(request_id="req_mid", status=JobStatus.PROCESSING, raw_status="processing")
    assert wait.decide(processing, None, log=LOG).verdict is Verdict.WAIT
    dns = SeedanceHostNotFoundError("GET ...: host name 'api.example' does not resolve", sent=False)
    decision = wait.decide(None, dns, log=LOG)
    assert decision.verdict is Verdict.WAIT  # the job exists: a DNS blip is waited through, not an error event
    assert 0 < decision.delay <= FAST["max_poll_interval"]
    assert wait.last is processing


def test_a_malformed_answer_mid_wait_is_transient() -> None:
    wait = SeedanceJobTrigger("req_mid", deadline=time.time() + 60, **FAST).job_wait()
    error = SeedanceResponseError("the answer is about request 'req_B'")
    assert wait.decide(None, error, log=LOG).verdict is Verdict.WAIT


@pytest.mark.parametrize("owns_job", [False, True])
async def test_unresolvable_host_is_waited_through_until_the_deadline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], owns_job: bool,
) -> None:
    try:
        socket.getaddrinfo("seedance.invalid", 443)
    except OSError:
        pass
    else:
        pytest.skip("this machine's DNS answers for .invalid names (NXDOMAIN hijacking)")
    conn = {"conn_type": "seedance", "host": "seedance.invalid", "password": "sd2_dns"}
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DNS", json.dumps(conn))
    trigger = SeedanceJobTrigger("req_dns", seedance_conn_id="seedance_dns", deadline=time.time() + 0.6,
                                 owns_job=owns_job, **FAST)
    events = await _events(trigger)
    event = JobEvent.from_payload(events[0])
    assert event.event == "timeout"  # not "error": the wait did not give up on a paid job
    assert "failed permanently" not in event.message
    if owns_job:
        # The cancel at the deadline could not reach the host either: said so, plainly.
        assert "cancelling it FAILED" in event.message
        assert "seedance.invalid" in event.message
    out = capsys.readouterr()
    assert (out.out + out.err).count("status check failed") >= 2  # polled again and again


# -- serialization is untouched by a run --------------------------------------------------------------------


async def test_serialized_kwargs_are_unchanged_by_a_run(emu: EmulatorHandle) -> None:
    rid = _submit("serialize me")
    trigger = SeedanceJobTrigger(rid, deadline="2099-01-01T00:00:00Z", started_at=time.time(), **FAST)
    before = trigger.serialize()
    events = await _events(trigger)
    assert JobEvent.from_payload(events[0]).event == "completed"
    assert trigger.serialize() == before
    assert before[1]["deadline"] == 4070908800.0
    again = SeedanceJobTrigger(**json.loads(json.dumps(before[1])))
    assert again.serialize() == before


# -- deadlines in every accepted form, and only those -------------------------------------------------------

NEW_YEAR_2026 = 1_767_225_600.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", NEW_YEAR_2026),
        (" 2026-01-01T00:00:00Z ", NEW_YEAR_2026),
        ("2026-01-01T00:00:00.500Z", NEW_YEAR_2026 + 0.5),
        ("2025-12-31T19:00:00-05:00", NEW_YEAR_2026),
        ("2026-01-01T05:30:00+05:30", NEW_YEAR_2026),
        ("2026-01-01T00:00:00", NEW_YEAR_2026),  # naive: UTC, never the machine's local time
        ("2026-01-01 00:00:00", NEW_YEAR_2026),
        (NEW_YEAR_2026, NEW_YEAR_2026),
        (int(NEW_YEAR_2026), NEW_YEAR_2026),
        (NEW_YEAR_2026 + 0.25, NEW_YEAR_2026 + 0.25),
        (datetime(2026, 1, 1), NEW_YEAR_2026),  # naive datetime: UTC too
        (datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), NEW_YEAR_2026),
    ],
)
def test_parse_deadline_accepts(value: Any, expected: float) -> None:
    assert parse_deadline(value) == pytest.approx(expected, abs=1e-6)


def test_naive_deadline_is_utc_whatever_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_deadline("2026-01-01T00:00:00") == NEW_YEAR_2026
        assert parse_deadline(datetime(2026, 1, 1)) == NEW_YEAR_2026
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    "value",
    [
        "PT1H", "P1D", "P1Y2M3D", "PT30M",  # bare durations: a length of time is not a deadline
        "1h", "in an hour", "soon", "", "   ", "2026-13-01T00:00:00Z", "2026-01-01T25:00:00Z", "nan",
        True, False, [1], {"at": 1},
    ],
)
def test_parse_deadline_refuses_naming_the_accepted_forms(value: Any) -> None:
    with pytest.raises(ValueError, match="deadline") as info:
        parse_deadline(value)
    message = str(info.value)
    assert "epoch seconds" in message
    assert "ISO-8601" in message
    assert repr(value) in message


def test_parse_deadline_refuses_a_bare_time() -> None:
    with pytest.raises(ValueError, match="deadline"):
        parse_deadline("12:00")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_parse_deadline_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="deadline"):
        parse_deadline(value)


async def test_trigger_keeps_a_z_deadline_as_epoch_seconds() -> None:
    trigger = SeedanceJobTrigger("req_z", deadline="2026-01-01T00:00:00Z")
    assert trigger.deadline == NEW_YEAR_2026
    assert trigger.serialize()[1]["deadline"] == NEW_YEAR_2026
    await asyncio.sleep(0)
