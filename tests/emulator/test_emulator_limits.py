"""Account limits: concurrent jobs per key (queue or refuse past the limit) and requests per second per key."""

from __future__ import annotations

import time

import pytest
from emu_client import GENERATIONS, Api, Receiver

from airflow_provider_seedance.emulator.testing import EmulatorHandle, spawn_emulator


def _status(api: Api, rid: str) -> str:
    return api.session.get(api.emu.base_url + f"{GENERATIONS}/{rid}", timeout=10).json()["status"]


def _wait_status(api: Api, rid: str, wanted: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _status(api, rid) != wanted:
        assert time.monotonic() < deadline, f"{rid} never became {wanted}"
        time.sleep(0.02)


def test_no_limits_by_default(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.configure(time_scale=10)
    for _ in range(30):
        api.submit_ok()
    limits = emu.admin.limit_stats()
    assert limits["max_concurrent_jobs"] == 0
    assert limits["sent_429"] == 0
    assert limits["waiting_for_slot"] == 0
    assert emu.admin.stats()["jobs"] == {"queued": 30}


def test_queue_mode_keeps_jobs_queued_until_a_slot_frees(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=2, concurrency_mode="queue")
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.6, count=2)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.2, count=1)
    first, second, third = api.submit_ok(), api.submit_ok(), api.submit_ok()

    # Accepted and charged, but it waits: the first two hold both slots.
    assert _status(api, first) == "processing"
    assert _status(api, third) == "queued"
    limits = emu.admin.limit_stats()
    assert (limits["running"], limits["waiting_for_slot"], limits["jobs_queued_for_slot"]) == (2, 1, 1)
    assert emu.admin.job(third)["waitingForSlot"] is True
    assert emu.admin.stats()["credits_charged"] == 3 * emu.admin.job(first)["creditsCharged"]

    _wait_status(api, first, "succeeded")
    # It got the slot when the first job ended, not when it was next read.
    row = emu.admin.job(third)
    assert row["waitingForSlot"] is False
    assert row["slotWaitSeconds"] >= 0.5
    assert _status(api, third) in ("processing", "succeeded")
    _wait_status(api, third, "succeeded")
    _wait_status(api, second, "succeeded")
    limits = emu.admin.limit_stats()
    assert (limits["running"], limits["waiting_for_slot"], limits["peak_running"]) == (0, 0, 2)
    assert limits["sent_429"] == 0


def test_queue_mode_serves_waiting_jobs_first_come_first_served(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.1, count=-1)
    ids = [api.submit_ok() for _ in range(4)]
    _wait_status(api, ids[-1], "succeeded")
    jobs = {j["requestId"]: j for j in emu.admin.jobs()}
    ends = [jobs[rid]["createdAt"] + jobs[rid]["queuedSeconds"] + jobs[rid]["processingSeconds"] for rid in ids]
    assert ends == sorted(ends)
    # One at a time: each started when the one before it ended.
    for index in range(1, len(ids)):
        start = jobs[ids[index]]["createdAt"] + jobs[ids[index]]["queuedSeconds"]
        assert start >= ends[index - 1] - 0.01
    assert emu.admin.limit_stats()["peak_waiting_for_slot"] == 3


def test_queue_mode_webhook_fires_for_a_job_that_waited(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.2, count=-1)
    api.submit_ok()
    waiting = api.submit_ok(webhookUrl=receiver.url)
    # Nobody polls: the slot is handed over by the emulator's own timer and the webhook is delivered.
    assert receiver.event.wait(10), "no webhook for the job that waited for a slot"
    [call] = receiver.calls
    assert call["body"]["requestId"] == waiting
    assert call["body"]["status"] == "succeeded"


def test_cancelling_a_waiting_job_refunds_it_and_frees_its_place(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1)
    emu.admin.set_next_jobs(never_finishes=True, count=1)
    holder = api.submit_ok()
    waiting = api.submit_ok()
    resp = api.session.post(emu.base_url + f"{GENERATIONS}/{waiting}/cancel", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["creditsRefunded"] == emu.admin.job(waiting)["creditsCharged"]
    assert emu.admin.limit_stats()["waiting_for_slot"] == 0

    # Cancelling the holder frees its slot for the next job at once.
    third = api.submit_ok()
    assert _status(api, third) == "queued"
    assert emu.admin.job(third)["waitingForSlot"] is True
    api.session.post(emu.base_url + f"{GENERATIONS}/{holder}/cancel", timeout=10)
    assert emu.admin.job(third)["waitingForSlot"] is False


def test_refuse_mode_answers_429_with_retry_after_and_charges_nothing(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=2, concurrency_mode="refuse")
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=1.5, count=2)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.1, count=-1)
    first = api.submit_ok()
    api.submit_ok()
    charged = emu.admin.stats()["credits_charged"]

    refused = api.submit()

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"  # 1.5 s until a slot frees, in whole seconds
    assert refused.json()["error"]["code"] == "concurrency_limit"
    assert emu.admin.stats()["credits_charged"] == charged
    assert emu.admin.stats()["jobs_total"] == 2
    limits = emu.admin.limit_stats()
    assert (limits["sent_429"], limits["refused_concurrency"], limits["refused_rate"]) == (1, 1, 0)

    _wait_status(api, first, "succeeded")
    assert api.submit().status_code == 200  # a slot is free again


def test_refuse_mode_counts_only_running_jobs(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1, concurrency_mode="refuse", retry_after_seconds=0.25)
    emu.admin.set_next_jobs(never_finishes=True, count=1)
    holder = api.submit_ok()
    refused = api.submit()
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "0.250"  # the fixed value, for time-scaled runs
    api.session.post(emu.base_url + f"{GENERATIONS}/{holder}/cancel", timeout=10)
    assert api.submit().status_code == 200


def test_requests_per_second_limit_answers_429_past_the_bucket(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(requests_per_second=5)
    rid = api.submit_ok()
    answers = [api.session.get(emu.base_url + f"{GENERATIONS}/{rid}", timeout=10) for _ in range(10)]
    codes = [r.status_code for r in answers]
    # A burst of 5 tokens (the submit took one), then refused; refused requests take no token.
    assert codes.count(200) in (4, 5)
    limited = [r for r in answers if r.status_code == 429]
    assert limited
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json()["error"]["code"] == "rate_limited"
    limits = emu.admin.limit_stats()
    assert limits["refused_rate"] == len(limited)
    assert limits["refused_concurrency"] == 0

    time.sleep(0.5)  # 2.5 tokens back
    assert api.session.get(emu.base_url + f"{GENERATIONS}/{rid}", timeout=10).status_code == 200
    # Unkeyed endpoints are not limited: the catalogue and the output files.
    for _ in range(10):
        assert api.session.get(emu.base_url + "/api/open/v1/models", timeout=10).status_code == 200


def test_rate_limit_is_per_key(emu: EmulatorHandle) -> None:
    emu.admin.configure(api_keys=[emu.api_key, "sd2_test_other_key_0000"])
    emu.admin.set_limits(requests_per_second=1)
    mine, other = Api(emu), Api(emu, key="sd2_test_other_key_0000")
    try:
        assert mine.submit().status_code == 200
        assert mine.submit().status_code == 429
        assert other.submit().status_code == 200  # its own bucket
    finally:
        mine.session.close()
        other.session.close()


def test_concurrency_limit_is_per_key(emu: EmulatorHandle) -> None:
    emu.admin.configure(api_keys=[emu.api_key, "sd2_test_other_key_0000"])
    emu.admin.set_limits(max_concurrent_jobs=1, concurrency_mode="refuse")
    emu.admin.set_next_jobs(never_finishes=True, count=-1)
    mine, other = Api(emu), Api(emu, key="sd2_test_other_key_0000")
    try:
        assert mine.submit().status_code == 200
        assert mine.submit().status_code == 429
        assert other.submit().status_code == 200
    finally:
        mine.session.close()
        other.session.close()


def test_reset_clears_limits_and_their_counters(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1, concurrency_mode="refuse")
    emu.admin.set_next_jobs(never_finishes=True)
    api.submit_ok()
    assert api.submit().status_code == 429
    emu.admin.reset()
    assert emu.admin.limit_stats()["sent_429"] == 0
    assert emu.admin.config()["max_concurrent_jobs"] == 0
    assert api.submit().status_code == 200


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"concurrency_mode": "drop"}, "concurrency_mode must be one of"),
        ({"max_concurrent_jobs": -1}, "max_concurrent_jobs must be an integer >= 0"),
        ({"requests_per_second": "fast"}, "requests_per_second must be a number >= 0"),
        ({"retry_after_seconds": -2}, "retry_after_seconds must be a number >= 0"),
    ],
)
def test_bad_limit_settings_are_refused_by_name(emu: EmulatorHandle, settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        emu.admin.configure(**settings)
    assert emu.admin.config()["max_concurrent_jobs"] == 0


@pytest.mark.seedance_limits(max_concurrent_jobs=1, concurrency_mode="refuse")
def test_the_pytest_marker_sets_limits_for_one_test(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    api.submit_ok()
    assert api.submit().status_code == 429


def test_the_marker_does_not_leak_into_the_next_test(emu: EmulatorHandle) -> None:
    assert emu.admin.config()["max_concurrent_jobs"] == 0


def test_cli_flags_set_the_limits() -> None:
    with spawn_emulator(max_concurrent_jobs=3, concurrency_mode="refuse", requests_per_second=40) as emu:
        config = emu.admin.config()
        assert (config["max_concurrent_jobs"], config["concurrency_mode"], config["requests_per_second"]) == (
            3, "refuse", 40.0)
        emu.admin.configure(max_concurrent_jobs=5)
        emu.admin.reset()  # back to the command line's limits, not to "no limit"
        assert emu.admin.config()["max_concurrent_jobs"] == 3
