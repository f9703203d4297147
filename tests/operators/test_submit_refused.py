"""A submit the vendor refuses with 429 (its concurrency limit, refuse mode) is waited out, never a failed try.

Against the emulator with one concurrent job per key in *refuse* mode: a blocking job holds the slot, so
every submit of the operator is answered 429 until it ends. The operator's hook is given a short retry
budget (2 attempts) so the hook alone would give up long before the slot frees: what waits is the
operator's submit loop, which these tests pin.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_seedance.errors import SeedanceRateLimitError
from airflow_provider_seedance.hooks._retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators._wait import REFUSED_SUBMIT_WAIT, WaitInterruptedError, refusal_wait
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

IMAGE = "https://example.com/cat.jpg"
SHORT_HOOK_RETRIES = RetryPolicy(max_attempts=2, max_total_seconds=5.0, initial_wait=0.1, max_wait=0.1, jitter=0.0)


def _op(**kwargs: Any) -> SeedanceGenerateOperator:
    op = SeedanceGenerateOperator(
        task_id="generate", prompt="a cat surfing a wave", media_urls=[IMAGE], poll_interval=0.05,
        max_poll_interval=0.2, deferrable=False, **kwargs,
    )
    op.hook = SeedanceHook(retry_policy=SHORT_HOOK_RETRIES)  # the hook alone gives up after ~0.3 s
    return op


def _block_the_only_slot(emu: EmulatorHandle, seconds: float) -> str:
    emu.admin.set_limits(max_concurrent_jobs=1, concurrency_mode="refuse", retry_after_seconds=1)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=seconds, count=1)
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt="the blocker", media_urls=(IMAGE,))).request_id


def test_refused_submits_are_waited_out_until_the_slot_frees(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    blocker = _block_the_only_slot(emu, seconds=3.0)
    started = time.monotonic()

    url = _op().execute(context)

    assert url
    assert url.startswith("http")
    jobs = emu.admin.jobs()
    assert len(jobs) == 2  # the blocker and ours: every refused POST created nothing
    ours = next(j for j in jobs if j["requestId"] != blocker)
    assert ours["status"] == "succeeded"
    limits = emu.admin.limit_stats()
    # More refusals than the hook's own two attempts: the operator submitted again after it gave up.
    assert limits["refused_concurrency"] > SHORT_HOOK_RETRIES.max_attempts
    assert time.monotonic() - started >= 2.0  # it really waited for the blocker to end
    assert context["ti"].xcom("request_id") == ours["requestId"]


def test_a_refusal_past_the_timeout_fails_with_nothing_created(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    _block_the_only_slot(emu, seconds=60.0)

    with pytest.raises(SeedanceRateLimitError):
        _op(timeout=2.5).execute(context)

    assert len(emu.admin.jobs()) == 1  # the blocker only
    assert context["ti"].xcom("request_id") is None


def test_on_kill_ends_the_wait_for_a_slot(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    _block_the_only_slot(emu, seconds=60.0)
    op = _op()
    threading.Timer(1.5, op.on_kill).start()
    started = time.monotonic()

    with pytest.raises(WaitInterruptedError):
        op.execute(context)

    assert time.monotonic() - started < 10.0
    assert len(emu.admin.jobs()) == 1


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [(None, REFUSED_SUBMIT_WAIT), (0.0, 1.0), (0.2, 1.0), (7.0, 7.0), (1e300, 3600.0)],
)
def test_the_wait_after_a_refusal_honours_retry_after_within_bounds(retry_after: float | None, wait: float) -> None:
    # A hostile or broken Retry-After (1e300) must not overflow the sleep of a task with timeout=None.
    assert refusal_wait(retry_after) == wait
