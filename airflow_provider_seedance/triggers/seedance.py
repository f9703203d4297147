"""SeedanceJobTrigger: wait for one generation in the triggerer, without holding a worker slot.

The trigger owns its loop: ask ``GET /api/open/v1/video/generations/{id}`` through the hook (one aiohttp
session shared by every trigger of the event loop), decide what the answer means
(:meth:`SeedanceJobTrigger.after_poll`), sleep on the adaptive
:class:`~airflow_provider_seedance.polling.PollSchedule`; transient failures are absorbed until the absolute
deadline. It yields exactly one event (see :class:`JobEvent`):

- ``completed``: the job reached a terminal status (succeeded, failed or cancelled); ``result`` holds it.
- ``timeout``: the deadline passed first; when the trigger owns the job it was cancelled before.
- ``error``: a permanent failure while waiting (e.g. 401 bad key, 404 unknown id); ``message`` says which.

Ownership decides cancellation: a trigger that *owns* its job (the operator's) cancels it at the
deadline and in :meth:`SeedanceJobTrigger.on_kill` (Airflow >= 3.3: the user marked/cleared the
deferred task). It never cancels in :meth:`~SeedanceJobTrigger.cleanup`, which also runs on a triggerer
restart or redistribution. A sensor's trigger waits for somebody else's job and cancels nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.providers.common.compat.sdk import AirflowNotFoundException, mask_secret
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_seedance._redact import redact_text, redact_url, url_secrets
from airflow_provider_seedance.errors import (
    SeedanceConflictError,
    SeedanceError,
    SeedanceTransportError,
    is_retryable,
)
from airflow_provider_seedance.hooks._retry import RetryPolicy
from airflow_provider_seedance.models import JobResult, JobStatus
from airflow_provider_seedance.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    PollSchedule,
)

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = [
    "EVENT_COMPLETED",
    "EVENT_ERROR",
    "EVENT_TIMEOUT",
    "JobEvent",
    "SeedanceJobTrigger",
    "format_deadline",
    "parse_deadline",
]

EVENT_COMPLETED = "completed"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"
_EVENT_KINDS = (EVENT_COMPLETED, EVENT_TIMEOUT, EVENT_ERROR)

#: A poll whose deadline is (nearly) reached still gets this long to answer, so a last look at a job
#: that may just have finished is not cut off before it can succeed.
MIN_CALL_BUDGET = 5.0
#: Bound on the cancel request at the deadline and in on_kill (the triggerer bounds on_kill at 30 s).
CANCEL_BUDGET = 20.0


@dataclass(frozen=True)
class JobEvent:
    """The one event a :class:`SeedanceJobTrigger` yields, as a typed object.

    :param event: ``completed``, ``timeout`` or ``error``.
    :param request_id: the generation waited for.
    :param result: the last status seen (for ``completed``: the terminal one), if any.
    :param message: human-readable summary (the vendor's error text included when there is one).
    """

    event: str
    request_id: str
    result: JobResult | None
    message: str

    def to_payload(self) -> dict[str, Any]:
        """JSON-simple payload of the :class:`~airflow.triggers.base.TriggerEvent`."""
        return {
            "event": self.event,
            "request_id": self.request_id,
            "result": self.result.to_dict() if self.result is not None else None,
            "message": self.message,
        }

    @classmethod
    def from_payload(cls, payload: Any) -> JobEvent:
        """Inverse of :meth:`to_payload`; ``ValueError`` when the payload is not one of ours.

        :param payload: the event payload handed to ``execute_complete``.
        """
        if not isinstance(payload, Mapping) or payload.get("event") not in _EVENT_KINDS:
            raise ValueError(f"not a SeedanceJobTrigger event: {payload!r}")
        raw_result = payload.get("result")
        result = JobResult.from_dict(raw_result) if isinstance(raw_result, Mapping) else None
        request_id = payload.get("request_id") or (result.request_id if result is not None else "")
        return cls(
            event=str(payload["event"]),
            request_id=str(request_id),
            result=result,
            message=str(payload.get("message") or ""),
        )


def parse_deadline(value: float | int | str | datetime | None) -> float | None:
    """Normalize a deadline to epoch seconds: accepts epoch numbers, ISO-8601 strings and datetimes.

    Strings are parsed by pendulum (a trailing ``Z`` included, on every Python version); a timestamp without
    a zone is taken as UTC (what Airflow stores), never as the machine's local time.

    :param value: the deadline; None means no deadline.
    """
    if value is None:
        return None
    problem = f"deadline must be epoch seconds or an ISO-8601 timestamp, got {value!r}"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):  # a NaN deadline is never reached and would make the trigger spin
            raise ValueError(problem)
        return float(value)
    if isinstance(value, str):
        try:
            # exact: a bare time or date stays what it is (not today's date at that time), and is refused.
            parsed = pendulum.parse(value.strip(), tz="UTC", exact=True)
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            raise ValueError(problem) from None
        if not isinstance(parsed, datetime):  # a bare date, time or duration is no deadline
            raise ValueError(problem)
        if parsed.tzinfo is None:
            parsed = pendulum.instance(parsed, tz="UTC")
        return float(parsed.timestamp())
    if isinstance(value, datetime):
        return (value if value.tzinfo else pendulum.instance(value, tz="UTC")).timestamp()
    raise ValueError(problem)


def format_deadline(epoch: float) -> str:
    """An epoch deadline as ISO-8601 UTC, to the second (for messages).

    :param epoch: seconds since the epoch.
    """
    return pendulum.from_timestamp(epoch, tz="UTC").to_iso8601_string()


def _describe(result: JobResult) -> str:
    status = result.raw_status or result.status.value
    text = f"Seedance generation {result.request_id} ended {status}"
    if result.status is JobStatus.SUCCEEDED:
        return text + (f": {redact_url(result.output_url)}" if result.output_url else " without an output URL")
    return text + (f": {redact_text(result.error)}" if result.error else "")


def _transient(error: BaseException) -> bool:
    """A poll failure worth asking again after, until the deadline.

    Any transport failure counts, a host name that does not resolve included: the job was submitted through
    the same host, so for a wait that is a blip, and giving up would abandon a paid job.
    """
    if isinstance(error, (TimeoutError, SeedanceTransportError)):
        return True
    return isinstance(error, SeedanceError) and is_retryable(error, idempotent=True)


#: The hook's retries for one status check: a quick second try for a stale connection (a 408 or a reset)
#: or a 5xx blip; longer outages are the trigger's own loop's to wait out, on the poll schedule.
POLL_RETRY_POLICY = RetryPolicy(max_attempts=3, max_total_seconds=10.0, initial_wait=0.5, max_wait=2.0, jitter=0.5)

_HOOK_MODULE = "airflow_provider_seedance.hooks.seedance"


_hook_module: Any = None


async def _import_hook_module() -> Any:
    """The hook module, imported in a thread the first time.

    Importing it pulls in aiohttp, requests and the http provider: ~0.3 s the first time in a fresh
    triggerer, which would block the event loop every trigger runs on (Airflow's "async thread was
    blocked" warning). Not ``sys.modules``: a module is there from the moment its import *starts*, so a
    second trigger starting meanwhile would get it half-initialised; ``import_module`` in its own thread
    waits on the import lock instead.
    """
    global _hook_module
    if _hook_module is None:
        _hook_module = await asyncio.to_thread(importlib.import_module, _HOOK_MODULE)
    return _hook_module


class SeedanceJobTrigger(BaseTrigger):
    """Wait for a Seedance generation to finish; yield one :class:`JobEvent` payload.

    Every argument is JSON-simple and none is secret (the API key stays in the connection).

    :param request_id: the generation to wait for.
    :param seedance_conn_id: the Seedance connection.
    :param deadline: absolute deadline (epoch seconds or ISO-8601); None waits indefinitely.
    :param started_at: epoch seconds the job was submitted (drives the polling schedule); default now.
    :param poll_interval: first and smallest polling interval, in seconds.
    :param max_poll_interval: cap of the polling interval, in seconds.
    :param owns_job: cancel the job at the deadline and when a user kills the task.
    """

    def __init__(
        self,
        request_id: str,
        seedance_conn_id: str = "seedance_default",
        deadline: float | str | None = None,
        started_at: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        owns_job: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(request_id, str) or not request_id.strip():
            raise ValueError(f"request_id must be a non-empty string, got {request_id!r}")
        self.request_id = request_id
        self.seedance_conn_id = seedance_conn_id
        self.deadline = parse_deadline(deadline)
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self.owns_job = bool(owns_job)
        # Validates the poll settings here, in the worker, rather than later in the triggerer.
        self.schedule = PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)
        self._last: JobResult | None = None  # the last status seen while waiting
        self._unknown_seen: tuple[str, ...] = ()  # undocumented statuses already logged

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-simple kwargs (no secret) to re-create this trigger anywhere."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "seedance_conn_id": self.seedance_conn_id,
                "deadline": self.deadline,
                "started_at": self.started_at,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "owns_job": self.owns_job,
            },
        )

    async def _hook(self, retry_policy: RetryPolicy | None = None) -> SeedanceHook:
        module = await _import_hook_module()
        return module.SeedanceHook(seedance_conn_id=self.seedance_conn_id, retry_policy=retry_policy)

    def _event(self, kind: str, result: JobResult | None, message: str) -> TriggerEvent:
        if result is not None and result.output_url:
            # The triggerer logs the whole payload ("Trigger fired event"): a signed output URL is a
            # credential, so its secret parts are masked there (the payload keeps the real URL).
            for secret in url_secrets(result.output_url):
                mask_secret(secret)
        return TriggerEvent(JobEvent(kind, self.request_id, result, redact_text(message)).to_payload())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job is terminal, the wait fails for good or the deadline passes; yield one event."""
        hook = await self._hook(POLL_RETRY_POLICY)
        try:
            result, error = await self._poll_until_done(hook)
        finally:
            await hook.aclose()
        if result is not None and result.status.is_terminal:
            event = self._event(EVENT_COMPLETED, result, _describe(result))
        elif error is not None and not _transient(error):
            event = self._event(
                EVENT_ERROR, self._last,
                f"Waiting for Seedance generation {self.request_id} failed permanently: "
                f"{type(error).__name__}: {error}",
            )
        else:
            event = await self._on_deadline(self._last)
        yield event

    async def _poll_until_done(self, hook: SeedanceHook) -> tuple[JobResult | None, BaseException | None]:
        while True:
            result: JobResult | None = None
            error: BaseException | None = None
            try:
                result = await hook.aget_job(self.request_id, timeout=self.poll_budget())
            except (SeedanceError, TimeoutError, AirflowNotFoundException) as exc:
                # Only what a status check can fail with: anything else is a bug, and fails the trigger loudly.
                error = exc
            delay = self.after_poll(result, error)
            if delay is None:
                return result, error
            await asyncio.sleep(delay)

    def after_poll(self, result: JobResult | None, error: BaseException | None) -> float | None:
        """What a status answer means: seconds until the next poll, or None when the wait is over.

        Over means: the job is terminal, the poll failed for good, or the deadline passed.

        :param result: the answer, or None when the poll failed.
        :param error: why the poll failed, or None.
        """
        retry_after: float | None = None
        if error is not None:
            if not _transient(error):
                return None
            retry_after = getattr(error, "retry_after", None)
            if isinstance(error, TimeoutError):
                self.log.warning("Seedance generation %s: status check timed out; will retry", self.request_id)
            else:
                self.log.warning("Seedance generation %s: status check failed (%s); will retry",
                                 self.request_id, error)
        elif result is not None:
            if result.status.is_terminal:
                return None
            self._last = result
            if result.status is JobStatus.UNKNOWN and (result.raw_status or "") not in self._unknown_seen:
                # An undocumented status is logged once and waited through, never taken for success.
                self._unknown_seen += (result.raw_status or "",)
                self.log.warning("Seedance generation %s reports undocumented status %r; still waiting",
                                 self.request_id, result.raw_status)
            else:
                self.log.debug("Seedance generation %s is %s", self.request_id, result.status.value)
        now = time.time()
        if self.deadline is not None and now >= self.deadline:
            return None
        remaining = None if self.deadline is None else self.deadline - now
        return self.schedule.next_delay(now - self.started_at, remaining=remaining, retry_after=retry_after)

    def poll_budget(self) -> float | None:
        """Seconds the next poll may take: what is left before the deadline, but at least MIN_CALL_BUDGET."""
        if self.deadline is None:
            return None
        return max(MIN_CALL_BUDGET, self.deadline - time.time())

    async def _on_deadline(self, last: JobResult | None) -> TriggerEvent:
        text = (f"Seedance generation {self.request_id} did not finish before its deadline "
                f"{format_deadline(self.deadline or 0)}")
        if not self.owns_job:
            return self._event(EVENT_TIMEOUT, last, text + " (not cancelled: this wait does not own the job)")
        # A cancel keeps the hook's default retries, bounded by CANCEL_BUDGET, because it must get through.
        canceller = await self._hook()
        try:
            return await self._cancel_at_deadline(canceller, last, text)
        finally:
            await canceller.aclose()

    async def _cancel_at_deadline(self, hook: SeedanceHook, last: JobResult | None, text: str) -> TriggerEvent:
        try:
            cancelled = await asyncio.wait_for(hook.acancel_job(self.request_id), timeout=CANCEL_BUDGET)
        except SeedanceConflictError:
            # It finished between the last poll and the cancel: hand back what it finished with.
            try:
                final = await asyncio.wait_for(hook.aget_job(self.request_id), timeout=CANCEL_BUDGET)
            except (SeedanceError, TimeoutError) as exc:
                return self._event(EVENT_TIMEOUT, last, f"{text}; cancel refused (already finished?): {exc}")
            if final.status.is_terminal:
                return self._event(EVENT_COMPLETED, final, _describe(final))
            return self._event(EVENT_TIMEOUT, final, f"{text}; the cancel was refused (status {final.raw_status})")
        except (SeedanceError, TimeoutError) as exc:
            return self._event(
                EVENT_TIMEOUT, last, f"{text}; cancelling it FAILED ({type(exc).__name__}: {exc}): it may still run"
            )
        self.log.info("Seedance generation %s cancelled at its deadline (status %s)",
                      self.request_id, cancelled.raw_status)
        return self._event(EVENT_TIMEOUT, cancelled, f"{text}; it was cancelled (status {cancelled.raw_status})")

    async def on_kill(self) -> None:
        """Cancel the job: a user marked, cleared or killed the deferred task (Airflow >= 3.3 only).

        Not called on a triggerer restart or redistribution, where the job must keep running.
        """
        if not self.owns_job:
            return
        hook = await self._hook()
        try:
            result = await asyncio.wait_for(hook.acancel_job(self.request_id), timeout=CANCEL_BUDGET)
        except SeedanceConflictError:
            self.log.info("Seedance generation %s already finished; nothing to cancel", self.request_id)
        except (SeedanceError, AirflowNotFoundException, TimeoutError) as exc:
            self.log.warning("Could not cancel Seedance generation %s: %s", self.request_id, exc)
        else:
            self.log.info("Cancelled Seedance generation %s (status %s) because the task was killed",
                          self.request_id, result.raw_status)
        finally:
            await hook.aclose()

    async def cleanup(self) -> None:
        """Release nothing and, deliberately, cancel nothing.

        ``cleanup`` also runs when the triggerer restarts or hands the trigger to another triggerer;
        the job must survive that. The hook's reference to the shared HTTP session was already
        given back when :meth:`run` ended.
        """
