"""Retry counts for reads and submits, Retry-After, and the POST that is never re-sent when a job may exist."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from tenacity import RetryCallState

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceTransportError,
)
from airflow_provider_seedance.hooks._retry import RetryPolicy, StopAtBudget, WaitRetryAfterOrBackoff
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, JobStatus

from .conftest import FAST, closed_port, set_connection

T = TypeVar("T")
REQUEST = GenerationRequest(prompt="waves", media_urls=["https://example.com/a.jpg"], duration=5)


def run(hook: SeedanceHook, call: Callable[[], Awaitable[T]]) -> T:
    """Run one async hook call in a fresh event loop and release the hook's shared session."""

    async def main() -> T:
        try:
            return await call()
        finally:
            await hook.aclose()

    return asyncio.run(main())


def status_times(emu: EmulatorHandle) -> list[float]:
    return [r["time"] for r in emu.admin.requests("status")]


# -- the wait and stop strategies on their own -----------------------------------------------------------


def state(attempt: int, exc: BaseException, *, elapsed: float = 0.0, upcoming: float = 0.0) -> RetryCallState:
    from tenacity import Retrying

    rs = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    rs.attempt_number = attempt
    rs.start_time = time.monotonic() - elapsed
    rs.outcome_timestamp = time.monotonic()
    rs.set_exception((type(exc), exc, None))
    rs.upcoming_sleep = upcoming
    return rs


def test_wait_uses_retry_after_then_backoff_never_less() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=8.0, jitter=0.5)
    no_jitter = WaitRetryAfterOrBackoff(policy, rng=lambda: 0.0)
    full_jitter = WaitRetryAfterOrBackoff(policy, rng=lambda: 0.999)
    limited = SeedanceRateLimitError("slow", retry_after=42.0)
    assert no_jitter(state(1, limited)) == 42.0
    assert 42.0 < full_jitter(state(1, limited)) < 42.5
    server = SeedanceServerError("boom")
    assert [no_jitter(state(n, server)) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert no_jitter(state(2, SeedanceRateLimitError("no header"))) == 2.0
    assert no_jitter(state(100, server)) == 8.0


def test_retry_after_http_date_drives_the_wait() -> None:
    from airflow_provider_seedance.error_answers import classify_http_error

    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    err = classify_http_error(429, {"error": "slow"}, {"Retry-After": when})
    wait = WaitRetryAfterOrBackoff(RetryPolicy(jitter=0.0))(state(1, err))
    assert 115 <= wait <= 121


def test_stop_bounds_attempts_and_total_time() -> None:
    stop = StopAtBudget(RetryPolicy(max_attempts=3, max_total_seconds=10.0))
    err = SeedanceServerError("boom")
    assert not stop(state(1, err, elapsed=0.0, upcoming=1.0))
    assert stop(state(3, err))
    assert stop(state(1, err, elapsed=9.5, upcoming=1.0))
    assert stop(state(1, err, elapsed=0.0, upcoming=11.0))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"max_attempts": True}, {"max_attempts": 1.5}, {"max_total_seconds": -1},
     {"initial_wait": float("nan")}, {"jitter": float("inf")}, {"max_wait": "1"}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)


def test_max_retries_kwarg_sets_attempts() -> None:
    assert SeedanceHook(max_retries=0).retry_policy.max_attempts == 1
    assert SeedanceHook(max_retries=6, retry_policy=FAST).retry_policy.max_attempts == 7
    assert SeedanceHook(max_retries=6, retry_policy=FAST).retry_policy.initial_wait == FAST.initial_wait


# -- reads (GET, cancel) are retried -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_get_honours_retry_after_seconds(emu: EmulatorHandle, hook: SeedanceHook, mode: str) -> None:
    job = hook.submit(REQUEST)
    emu.admin.add_fault(kind="http", status=429, retry_after="1", endpoint="status", times=1)
    result = hook.get_job(job.request_id) if mode == "sync" else run(hook, lambda: hook.aget_job(job.request_id))
    assert result.request_id == job.request_id
    first, second = status_times(emu)
    assert second - first >= 1.0  # the server saw the retry no earlier than it asked for


def test_get_honours_retry_after_http_date(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    job = hook.submit(REQUEST)
    retry_at = math.ceil(time.time()) + 2  # HTTP dates have whole seconds
    emu.admin.add_fault(kind="http", status=429, endpoint="status", times=1,
                        retry_after=email.utils.formatdate(retry_at, usegmt=True))
    assert hook.get_job(job.request_id).request_id == job.request_id
    _, second = status_times(emu)
    assert second >= retry_at - 0.05  # not retried before the date the server named


@pytest.mark.parametrize("retry_after", ["3600", "date"])
def test_retry_after_beyond_the_budget_stops_at_once(emu: EmulatorHandle, hook: SeedanceHook, retry_after: str) -> None:
    value = email.utils.formatdate(time.time() + 3600, usegmt=True) if retry_after == "date" else retry_after
    emu.admin.add_fault(kind="http", status=429, endpoint="status", times=-1, retry_after=value)
    with pytest.raises(SeedanceRateLimitError) as info:
        hook.get_job("req_1")
    assert info.value.retry_after is not None
    assert 3590 <= info.value.retry_after <= 3600
    assert emu.admin.stats()["gets"] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_get_retries_5xx_then_succeeds(emu: EmulatorHandle, hook: SeedanceHook, mode: str) -> None:
    job = hook.submit(REQUEST)
    emu.admin.add_fault(kind="http", status=503, endpoint="status", times=2)
    if mode == "sync":
        hook.get_job(job.request_id)
    else:
        run(hook, lambda: hook.aget_job(job.request_id))
    assert emu.admin.stats()["gets"] == 3


@pytest.mark.parametrize("kind", ["close", "drop", "malformed"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_get_retries_broken_answers(emu: EmulatorHandle, hook: SeedanceHook, mode: str, kind: str) -> None:
    job = hook.submit(REQUEST)
    emu.admin.add_fault(kind=kind, endpoint="status", times=2)
    result = hook.get_job(job.request_id) if mode == "sync" else run(hook, lambda: hook.aget_job(job.request_id))
    assert result.request_id == job.request_id
    assert emu.admin.stats()["gets"] == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_get_retries_a_timeout(
    emu: EmulatorHandle, make_hook: Callable[..., SeedanceHook], mode: str
) -> None:
    hook = make_hook(timeout=0.5)
    job = hook.submit(REQUEST)
    emu.admin.add_fault(kind="latency", delay=2.0, endpoint="status", times=1)
    result = hook.get_job(job.request_id) if mode == "sync" else run(hook, lambda: hook.aget_job(job.request_id))
    assert result.request_id == job.request_id
    assert emu.admin.stats()["gets"] == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_refused_is_retried_up_to_the_bound(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook], capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    set_connection(monkeypatch, "refused", host=f"127.0.0.1:{closed_port()}", password="sd2_k")
    hook = make_hook("refused")
    with pytest.raises(SeedanceTransportError) as info:
        hook.get_job("req_1") if mode == "sync" else run(hook, lambda: hook.aget_job("req_1"))
    assert info.value.sent is False
    # Nothing listens, so the attempts are counted from the hook's own retry warnings.
    out = capsys.readouterr()
    assert (out.out + out.err).count("retrying in") == FAST.max_attempts - 1


def test_cancel_is_retried(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    job = hook.submit(REQUEST)
    emu.admin.add_fault(kind="http", status=502, endpoint="cancel", times=1)
    assert hook.cancel_job(job.request_id).status is JobStatus.CANCELLED
    assert emu.admin.stats()["cancels"] == 2


# -- submits (POST) --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_submit_retries_429(emu: EmulatorHandle, hook: SeedanceHook, mode: str) -> None:
    emu.admin.add_fault(kind="http", status=429, retry_after="0", endpoint="submit", times=2)
    result = hook.submit(REQUEST) if mode == "sync" else run(hook, lambda: hook.asubmit(REQUEST))
    assert result.status is JobStatus.QUEUED
    stats = emu.admin.stats()
    assert stats["submits"] == 3
    assert stats["jobs_total"] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_submit_retries_when_the_connection_never_opened(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook], capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    set_connection(monkeypatch, "refused", host=f"127.0.0.1:{closed_port()}", password="sd2_k")
    hook = make_hook("refused")
    with pytest.raises(SeedanceTransportError) as info:  # not "ambiguous": nothing can exist
        hook.submit(REQUEST) if mode == "sync" else run(hook, lambda: hook.asubmit(REQUEST))
    assert info.value.sent is False
    out = capsys.readouterr()
    assert (out.out + out.err).count("retrying in") == FAST.max_attempts - 1


AMBIGUOUS = [
    pytest.param({"kind": "http", "status": 500}, 0, SeedanceServerError, id="500"),
    pytest.param({"kind": "http", "status": 503, "process": True}, 1, SeedanceServerError, id="503-after-create"),
    pytest.param({"kind": "drop"}, 1, SeedanceTransportError, id="reset-mid-response"),
    pytest.param({"kind": "close"}, 0, SeedanceTransportError, id="closed-without-answer"),
    pytest.param({"kind": "malformed"}, 1, SeedanceResponseError, id="malformed-2xx"),
    pytest.param({"kind": "latency", "delay": 2.0}, 1, SeedanceTransportError, id="timeout-after-sending"),
]


@pytest.mark.parametrize(("fault", "jobs", "cause"), AMBIGUOUS)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_submit_is_never_resent_when_a_job_may_exist(
    emu: EmulatorHandle, make_hook: Callable[..., SeedanceHook], mode: str,
    fault: dict[str, Any], jobs: int, cause: type[Exception],
) -> None:
    hook = make_hook(timeout=0.5)
    emu.admin.add_fault(endpoint="submit", times=-1, **fault)
    with pytest.raises(SeedanceAmbiguousSubmitError) as info:
        hook.submit(REQUEST) if mode == "sync" else run(hook, lambda: hook.asubmit(REQUEST))
    assert isinstance(info.value.cause, cause)
    if isinstance(info.value.cause, SeedanceTransportError):
        assert info.value.cause.sent is True
    assert "may exist" in str(info.value)
    # The emulator may still be handling the abandoned request (latency): wait until its job shows up.
    deadline = time.monotonic() + 10
    while emu.admin.stats()["jobs_total"] < jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = emu.admin.stats()
    assert stats["submits"] == 1  # exactly one POST reached the server
    assert stats["jobs_total"] == jobs


async def test_a_per_call_timeout_shorter_than_the_connections_bounds_the_request(emu: EmulatorHandle) -> None:
    """What a trigger near its deadline passes: the request gives up after it, not after the 30 s default."""
    hook = SeedanceHook(max_retries=0)
    try:
        job = await hook.asubmit(REQUEST)
        emu.admin.add_fault(kind="latency", delay=5.0, endpoint="status", times=1)
        # Without the per-call limit the 30 s connection timeout would wait for the 5 s answer and succeed.
        with pytest.raises(SeedanceTransportError, match="TimeoutError") as info:
            await hook.aget_job(job.request_id, timeout=0.3)
        assert info.value.sent is True
        assert (await hook.aget_job(job.request_id, timeout=5.0)).request_id == job.request_id
    finally:
        await hook.aclose()


async def test_a_per_call_timeout_also_bounds_the_first_connection_lookup() -> None:
    class SlowLookup(SeedanceHook):
        @classmethod
        async def aget_connection(cls, conn_id: str) -> Any:
            await asyncio.sleep(5)
            raise AssertionError("not reached")

    hook = SlowLookup(max_retries=0)
    with pytest.raises(TimeoutError, match="looking up connection 'seedance_default' timed out"):
        await hook.aget_job("req_1", timeout=0.2)
