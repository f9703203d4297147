"""SeedanceJobTrigger: wait for one generation in the triggerer, without holding a worker slot.

The trigger waits on the event loop's shared status poller (:mod:`._status_poller`: one schedule, one hook
and one keep-alive pool for every wait of a connection), which polls
``GET /api/open/v1/video/generations/{id}`` on the trigger's adaptive
:class:`~airflow_provider_seedance.polling.PollSchedule`; the trigger decides what each answer means
(:meth:`SeedanceJobTrigger.after_poll`), absorbs transient failures until its absolute deadline, and yields
exactly one event (see :class:`JobEvent`):

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
import dataclasses
import functools
import operator
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowNotFoundException, mask_secret
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_seedance._logging import ClassLoggerMixin
from airflow_provider_seedance._redact import redact_text, redact_url, url_secrets
from airflow_provider_seedance.errors import (
    SeedanceConflictError,
    SeedanceError,
    is_retryable,
)
from airflow_provider_seedance.models import JobResult, JobStatus
from airflow_provider_seedance.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    PollSchedule,
)

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["EVENT_COMPLETED", "EVENT_ERROR", "EVENT_TIMEOUT", "JobEvent", "SeedanceJobTrigger", "parse_deadline"]

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

    :param value: the deadline; None means no deadline.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"deadline must be epoch seconds or an ISO-8601 timestamp, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"deadline must be epoch seconds or an ISO-8601 timestamp, got {value!r}") from None
    if isinstance(value, datetime):
        # A naive timestamp is taken as UTC (what Airflow stores), never as the machine's local time.
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    raise ValueError(f"deadline must be epoch seconds or an ISO-8601 timestamp, got {value!r}")


def _describe(result: JobResult) -> str:
    status = result.raw_status or result.status.value
    text = f"Seedance generation {result.request_id} ended {status}"
    if result.status is JobStatus.SUCCEEDED:
        return text + (f": {redact_url(result.output_url)}" if result.output_url else " without an output URL")
    return text + (f": {redact_text(result.error)}" if result.error else "")


T = TypeVar("T")

# Why the waiting state below is kept so lean: CPython's full garbage collection stops the triggerer's
# event loop for as long as it takes to walk every GC-tracked object, and a triggerer may hold
# 10,000 sleeping waits. So a sleeping wait keeps no object it does not need: no logger of its own
# (ClassLoggerMixin), no schedule of its own, the last status as an untracked tuple of atomics, no helper
# coroutine.

#: JobResult fields after ``status``, in order: a snapshot stores status as its value, then these.
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(JobResult) if f.name != "status")
_FIELD_VALUES = operator.attrgetter(*_RESULT_FIELDS)  # one C call per poll instead of a generator


def _snapshot(result: JobResult) -> tuple[Any, ...]:
    """The result as a tuple of its field values: with atomic fields, the collector stops tracking it.

    :param result: a status answer.
    """
    return (result.status.value, *_FIELD_VALUES(result))


def _restore(snapshot: tuple[Any, ...] | None) -> JobResult | None:
    """Inverse of :func:`_snapshot` (an equal :class:`JobResult`).

    :param snapshot: what :func:`_snapshot` returned, or None.
    """
    if snapshot is None:
        return None
    return JobResult(status=JobStatus(snapshot[0]), **dict(zip(_RESULT_FIELDS, snapshot[1:], strict=True)))


@functools.lru_cache(maxsize=64)
def _shared_schedule(initial: float, maximum: float) -> PollSchedule:
    # PollSchedule is frozen: waits with the same settings share one instance.
    return PollSchedule(initial=initial, maximum=maximum)


def _transient(error: BaseException) -> bool:
    """A poll failure worth asking again after (the connection lookup timing out included)."""
    if isinstance(error, TimeoutError):
        return True
    return isinstance(error, SeedanceError) and is_retryable(error, idempotent=True)


class SeedanceJobTrigger(ClassLoggerMixin, BaseTrigger):
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
        self.schedule = _shared_schedule(self.poll_interval, self.max_poll_interval)
        self._last: tuple[Any, ...] | None = None  # _snapshot() of the last status seen while waiting
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

    def _cancel_hook(self) -> SeedanceHook:
        # Imported here: the hook module pulls in the HTTP clients, which a DAG parse does not need.
        from airflow_provider_seedance.hooks.seedance import SeedanceHook

        # A cancel keeps the hook's retries, bounded by CANCEL_BUDGET, because it must get through.
        return SeedanceHook(seedance_conn_id=self.seedance_conn_id)

    def _event(self, kind: str, result: JobResult | None, message: str) -> TriggerEvent:
        if result is not None and result.output_url:
            # The triggerer logs the whole payload ("Trigger fired event"): a signed output URL is a
            # credential, so its secret parts are masked there (the payload keeps the real URL).
            for secret in url_secrets(result.output_url):
                mask_secret(secret)
        return TriggerEvent(JobEvent(kind, self.request_id, result, redact_text(message)).to_payload())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait (polling through the loop's shared status poller) until the job is terminal or the deadline
        passes; yield exactly one event."""
        # Imported here, like the hook: a DAG parse imports this module but never waits.
        from airflow_provider_seedance.triggers._status_poller import StatusPoller

        result, error = await StatusPoller.shared(self.seedance_conn_id).watch(self)
        if result is not None and result.status.is_terminal:
            event = self._event(EVENT_COMPLETED, result, _describe(result))
        elif error is not None and not _transient(error):
            event = self._event(
                EVENT_ERROR, _restore(self._last),
                f"Waiting for Seedance generation {self.request_id} failed permanently: "
                f"{type(error).__name__}: {error}",
            )
        else:
            event = await self._on_deadline(_restore(self._last))
        yield event

    def after_poll(self, result: JobResult | None, error: BaseException | None) -> float | None:
        """What a status answer means: seconds until the next poll, or None when the wait is over.

        Called by the status poller after each poll, in this trigger's context (its log lines go to this
        task's log). Over means: the job is terminal, the poll failed for good, or the deadline passed.

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
            self._last = _snapshot(result)
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
        when = datetime.fromtimestamp(self.deadline or 0, tz=timezone.utc).isoformat(timespec="seconds")
        text = f"Seedance generation {self.request_id} did not finish before its deadline {when}"
        if not self.owns_job:
            return self._event(EVENT_TIMEOUT, last, text + " (not cancelled: this wait does not own the job)")
        canceller = self._cancel_hook()
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
        hook = self._cancel_hook()
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
