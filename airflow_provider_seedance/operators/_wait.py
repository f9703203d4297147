"""Waiting for a generation inside the worker (the non-deferrable path).

Same schedule, deadline and cancel rules as :class:`~airflow_provider_seedance.triggers.seedance.SeedanceJobTrigger`,
with the hook's blocking calls. The sleep is interruptible so ``on_kill`` ends the wait at once.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance.errors import (
    SeedanceConflictError,
    SeedanceError,
    SeedanceJobTimeoutError,
    is_retryable,
)
from airflow_provider_seedance.models import JobResult, JobStatus
from airflow_provider_seedance.polling import PollSchedule

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["WaitInterruptedError", "wait_in_worker"]


class WaitInterruptedError(SeedanceError):
    """The task was killed while it waited (its job was cancelled by ``on_kill``)."""


def wait_in_worker(
    hook: SeedanceHook,
    request_id: str,
    *,
    started_at: float,
    deadline: float | None,
    schedule: PollSchedule,
    stop: threading.Event,
    log: Any,
) -> JobResult:
    """Poll until the job is terminal; at the deadline cancel it and raise.

    :param hook: the Seedance hook.
    :param request_id: the generation.
    :param started_at: epoch seconds it was submitted (drives the schedule).
    :param deadline: absolute deadline in epoch seconds, or None.
    :param schedule: polling schedule.
    :param stop: set by ``on_kill``; ends the wait with :class:`WaitInterruptedError`.
    :param log: the operator's logger.
    :return: the terminal result (succeeded, failed or cancelled).
    :raises SeedanceJobTimeoutError: the deadline passed (the job was cancelled when possible).
    :raises SeedanceError: a permanent error while polling (401, 404, ...).
    """
    reported_unknown: set[str] = set()
    while True:
        if stop.is_set():
            raise WaitInterruptedError(f"Task killed while waiting for Seedance generation {request_id}")
        retry_after: float | None = None
        try:
            result = hook.get_job(request_id)
        except SeedanceError as exc:
            if not is_retryable(exc, idempotent=True):
                raise
            retry_after = getattr(exc, "retry_after", None)
            log.warning("Seedance generation %s: status check failed (%s); will retry", request_id, exc)
        else:
            if result.status.is_terminal:
                return result
            if result.status is JobStatus.UNKNOWN and (result.raw_status or "") not in reported_unknown:
                reported_unknown.add(result.raw_status or "")
                log.warning("Seedance generation %s reports undocumented status %r; still waiting",
                            request_id, result.raw_status)
            else:
                log.info("Seedance generation %s is %s", request_id, result.status.value)
        now = time.time()
        if deadline is not None and now >= deadline:
            return _cancel_at_deadline(hook, request_id, deadline, log)
        remaining = None if deadline is None else deadline - now
        if stop.wait(schedule.next_delay(now - started_at, remaining=remaining, retry_after=retry_after)):
            raise WaitInterruptedError(f"Task killed while waiting for Seedance generation {request_id}")


def _cancel_at_deadline(hook: SeedanceHook, request_id: str, deadline: float, log: Any) -> JobResult:
    when = datetime.fromtimestamp(deadline, tz=timezone.utc).isoformat(timespec="seconds")
    text = f"Seedance generation {request_id} did not finish before its deadline {when}"
    try:
        cancelled = hook.cancel_job(request_id)
    except SeedanceConflictError:
        # It finished between the last poll and the cancel: hand back what it finished with.
        final = hook.get_job(request_id)
        if final.status.is_terminal:
            return final
        raise SeedanceJobTimeoutError(f"{text}; the cancel was refused (status {final.raw_status})") from None
    except SeedanceError as exc:
        raise SeedanceJobTimeoutError(f"{text}; cancelling it FAILED ({exc}): it may still run") from exc
    log.info("Seedance generation %s cancelled at its deadline (status %s)", request_id, cancelled.raw_status)
    raise SeedanceJobTimeoutError(f"{text}; it was cancelled (status {cancelled.raw_status})")
