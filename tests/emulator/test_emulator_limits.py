"""Account limits: concurrent jobs per key (queue or refuse past the limit) and requests per second per key.

Nothing here depends on how fast the machine is. Over HTTP, slot holders never finish by themselves (a
cancel frees a slot at a known moment), and the rate limit is so slow that no token comes back during a
test; what depends on elapsed time (the token bucket's refill, a computed Retry-After, a slot handed over
at the holder's end) is checked on :class:`AccountLimits` itself at explicit times, the emulator's own clock.
"""

from __future__ import annotations

import itertools

import pytest
from emu_client import GENERATIONS, Api, Receiver

from airflow_provider_seedance.emulator.jobs import Job, JobBehaviour
from airflow_provider_seedance.emulator.limits import AccountLimits
from airflow_provider_seedance.emulator.testing import EmulatorHandle, spawn_emulator
from airflow_provider_seedance.models import GenerationRequest

#: One token back every 1,000 s (a burst of 1): the bucket stays empty for the length of any test.
NO_REFILL = 0.001
#: What a refused submit is told to wait when no slot holder will end by itself (``never_finishes``).
UNKNOWN_WAIT = "60"


def _status(api: Api, rid: str) -> str:
    return api.get(rid).json()["status"]


def _hold(emu: EmulatorHandle, count: int = 1) -> None:
    """The next ``count`` jobs hold their slot until cancelled (processing at once, never done)."""
    emu.admin.set_next_jobs(never_finishes=True, queued_seconds=0, count=count)


def _slot_start(row: dict) -> float:
    return row["createdAt"] + row["slotWaitSeconds"]


def _end(row: dict) -> float:
    return row["createdAt"] + row["queuedSeconds"] + row["processingSeconds"]


# -- over HTTP ------------------------------------------------------------------------------------------


def test_no_limits_by_default(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(queued_seconds=3600, count=-1)
    for _ in range(30):
        api.submit_ok()
    limits = emu.admin.limit_stats()
    assert limits["max_concurrent_jobs"] == 0
    assert limits["sent_429"] == 0
    assert limits["waiting_for_slot"] == 0
    assert emu.admin.stats()["jobs"] == {"queued": 30}


def test_queue_mode_keeps_jobs_queued_until_a_slot_frees(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=2, concurrency_mode="queue")
    _hold(emu, count=2)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.2, count=1)
    first, second, third = api.submit_ok(), api.submit_ok(), api.submit_ok()

    # Accepted and charged, but it waits: the first two hold both slots.
    assert _status(api, first) == "processing"
    assert _status(api, third) == "queued"
    limits = emu.admin.limit_stats()
    assert (limits["running"], limits["waiting_for_slot"], limits["jobs_queued_for_slot"]) == (2, 1, 1)
    assert emu.admin.job(third)["waitingForSlot"] is True
    assert emu.admin.stats()["credits_charged"] == 3 * emu.admin.job(first)["creditsCharged"]

    assert api.cancel(first).status_code == 200
    assert emu.admin.job(third)["waitingForSlot"] is False
    api.wait_status(third, {"succeeded"})
    limits = emu.admin.limit_stats()
    assert (limits["running"], limits["waiting_for_slot"], limits["peak_running"]) == (1, 0, 2)
    assert limits["sent_429"] == 0
    assert _status(api, second) == "processing"


def test_queue_mode_serves_waiting_jobs_first_come_first_served(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1)
    _hold(emu)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.1, count=-1)
    holder = api.submit_ok()
    ids = [api.submit_ok() for _ in range(3)]
    assert emu.admin.limit_stats()["peak_waiting_for_slot"] == 3

    api.cancel(holder)
    api.wait_status(ids[-1], {"succeeded"})
    jobs = {j["requestId"]: j for j in emu.admin.jobs()}
    ends = [_end(jobs[rid]) for rid in ids]
    assert ends == sorted(ends)
    # One at a time: each took the slot at the moment the one before it ended (emulator timestamps).
    for before, after in itertools.pairwise(ids):
        assert _slot_start(jobs[after]) == pytest.approx(_end(jobs[before]), abs=0.005)


def test_queue_mode_webhook_fires_for_a_job_that_waited(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1)
    _hold(emu)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.2, count=-1)
    holder = api.submit_ok()
    middle = api.submit_ok()
    waiting = api.submit_ok(webhookUrl=receiver.url)
    api.cancel(holder)  # the middle job gets the slot now and ends by itself 0.2 s later
    # Nobody polls: the last job gets the slot from the emulator's own timer and its webhook is delivered.
    assert receiver.event.wait(20), "no webhook for the job that waited for a slot"
    [call] = receiver.calls
    assert call["body"]["requestId"] == waiting
    assert call["body"]["status"] == "succeeded"
    rows = {j["requestId"]: j for j in emu.admin.jobs()}
    assert _slot_start(rows[waiting]) == pytest.approx(_end(rows[middle]), abs=0.005)


def test_cancelling_a_waiting_job_refunds_it_and_frees_its_place(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1)
    emu.admin.set_next_jobs(never_finishes=True, count=1)
    holder = api.submit_ok()
    waiting = api.submit_ok()
    resp = api.cancel(waiting)
    assert resp.status_code == 200
    assert resp.json()["creditsRefunded"] == emu.admin.job(waiting)["creditsCharged"]
    assert emu.admin.limit_stats()["waiting_for_slot"] == 0

    # Cancelling the holder frees its slot for the next job at once.
    third = api.submit_ok()
    assert _status(api, third) == "queued"
    assert emu.admin.job(third)["waitingForSlot"] is True
    api.cancel(holder)
    assert emu.admin.job(third)["waitingForSlot"] is False


def test_refuse_mode_answers_429_with_retry_after_and_charges_nothing(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=2, concurrency_mode="refuse")
    _hold(emu)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.1, count=1)
    _hold(emu, count=-1)
    api.submit_ok()
    short = api.submit_ok()
    api.wait_status(short, {"succeeded"})
    api.submit_ok()  # the slot the short job held is free again
    charged = emu.admin.stats()["credits_charged"]

    refused = api.submit()

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == UNKNOWN_WAIT  # no holder ends by itself
    assert refused.json()["error"]["code"] == "concurrency_limit"
    assert emu.admin.stats()["credits_charged"] == charged
    assert emu.admin.stats()["jobs_total"] == 3
    limits = emu.admin.limit_stats()
    assert (limits["sent_429"], limits["refused_concurrency"], limits["refused_rate"]) == (1, 1, 0)


def test_refuse_mode_counts_only_running_jobs(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(max_concurrent_jobs=1, concurrency_mode="refuse", retry_after_seconds=0.25)
    emu.admin.set_next_jobs(never_finishes=True, count=1)
    holder = api.submit_ok()
    refused = api.submit()
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "0.250"  # the fixed value, for time-scaled runs
    api.cancel(holder)
    assert api.submit().status_code == 200


def test_requests_per_second_limit_answers_429_past_the_bucket(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_limits(requests_per_second=NO_REFILL, retry_after_seconds=3)
    rid = api.submit_ok()  # the bucket's only token
    answers = [api.session.get(emu.base_url + f"{GENERATIONS}/{rid}", timeout=10) for _ in range(10)]
    assert [r.status_code for r in answers] == [429] * 10
    assert {r.headers["Retry-After"] for r in answers} == {"3"}
    assert answers[0].json()["error"]["code"] == "rate_limited"
    limits = emu.admin.limit_stats()
    assert (limits["refused_rate"], limits["refused_concurrency"]) == (10, 0)
    # Unkeyed endpoints are not limited: the catalogue and the output files.
    for _ in range(10):
        assert api.models().status_code == 200


def test_rate_limit_is_per_key(emu: EmulatorHandle) -> None:
    emu.admin.configure(api_keys=[emu.api_key, "sd2_test_other_key_0000"])
    emu.admin.set_limits(requests_per_second=NO_REFILL)
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


# -- at explicit times (what depends on elapsed time) ---------------------------------------------------

T0 = 1000.0  # any monotonic reading


def _job(name: str, created: float, processing: float = 1.0, *, never: bool = False, key: int = 0) -> Job:
    return Job(
        request_id=name, request=GenerationRequest(prompt=name), key_id=key, credits=1,
        base_url="http://127.0.0.1:1", created=created, queued_for=0.0, processing_for=processing,
        behaviour=JobBehaviour(never_finishes=True) if never else None,
    )


def test_the_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    limits = AccountLimits(requests_per_second=5)
    assert [limits.take_request(0, T0) for _ in range(5)] == [None] * 5  # a burst of 5
    # Empty: one token is 0.2 s away, sent as whole seconds; refused requests take no token.
    assert [limits.take_request(0, T0) for _ in range(3)] == [1.0, 1.0, 1.0]
    # 0.5 s later, 2.5 tokens are back: two requests pass, the third waits for the half token missing.
    assert [limits.take_request(0, T0 + 0.5) for _ in range(3)] == [None, None, 1.0]
    assert limits.counters.refused_rate == 4
    # A long pause refills the burst, never more.
    assert [limits.take_request(0, T0 + 100) for _ in range(6)] == [None] * 5 + [1.0]


def test_the_bucket_is_per_key_and_a_fixed_retry_after_wins() -> None:
    limits = AccountLimits(requests_per_second=0.5, retry_after=0.25)
    assert limits.take_request(0, T0) is None  # a fractional rate still allows a burst of one
    assert limits.take_request(0, T0) == 0.25
    assert limits.take_request(1, T0) is None
    assert limits.take_request(0, T0 + 2) is None  # 2 s at 0.5/s: one token back


def test_refuse_mode_retry_after_is_the_time_until_the_first_holder_ends() -> None:
    limits = AccountLimits(max_concurrent_jobs=2, concurrency_mode="refuse")
    limits.add_job(_job("a", T0, processing=1.5), T0)
    limits.add_job(_job("b", T0, processing=4.0), T0)
    assert limits.admit(0, T0) == 2.0  # 1.5 s, rounded up to whole seconds
    assert limits.admit(0, T0 + 1.0) == 1.0  # 0.5 s: at least one second
    assert limits.admit(0, T0 + 1.5) is None  # "a" ended: a slot is free
    assert limits.counters.refused_concurrency == 2


def test_refuse_mode_without_an_ending_holder_sends_the_unknown_wait() -> None:
    limits = AccountLimits(max_concurrent_jobs=1, concurrency_mode="refuse")
    limits.add_job(_job("a", T0, never=True), T0)
    assert limits.admit(0, T0 + 500) == float(UNKNOWN_WAIT)


def test_a_waiting_job_gets_the_slot_when_the_holder_ends_not_when_it_is_read() -> None:
    limits = AccountLimits(max_concurrent_jobs=1)
    holder, waiting = _job("holder", T0, processing=0.6), _job("waiting", T0 + 0.1, processing=1.0)
    limits.add_job(holder, T0)
    limits.add_job(waiting, T0 + 0.1)
    assert waiting.waiting_for_slot
    assert waiting.finishes_at is None
    limits.advance(T0 + 0.5)
    assert waiting.waiting_for_slot  # the holder still runs
    limits.advance(T0 + 30)  # read long after the holder ended
    assert not waiting.waiting_for_slot
    assert waiting.slot_wait == pytest.approx(0.5)  # from its submit to the holder's end
    assert waiting.finishes_at == pytest.approx(T0 + 0.6 + 1.0)
    assert [job.request_id for job in limits.pop_granted()] == ["waiting"]
    assert (limits.counters.peak_running, limits.counters.peak_waiting) == (1, 1)
