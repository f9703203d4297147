"""The one wait: what a status answer or a failed status check means, and the loop every waiting mode runs.

:meth:`JobWait.decide` is the decision (done, keep waiting, fail, or the deadline passed) that the trigger,
the in-worker wait, the sensor's poke and the batch operator all ask; :func:`watch_job` is the poll loop
around it and :func:`cancel_at_deadline` the one routine that cancels an owned job at its deadline. The table
of outcomes is in ``docs/architecture.rst`` ("The road of one status poll").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

import pendulum

from airflow_provider_seedance._redact import redact_text, redact_url
from airflow_provider_seedance.error_answers import MAX_RETRY_AFTER
from airflow_provider_seedance.errors import (
    SeedanceConflictError,
    SeedanceError,
    SeedanceNotFoundError,
    SeedanceTransportError,
    is_retryable,
)
from airflow_provider_seedance.models import JobResult, JobStatus
from airflow_provider_seedance.polling import PollSchedule

__all__ = [
    "CANCEL_BUDGET",
    "EVENT_COMPLETED",
    "EVENT_ERROR",
    "EVENT_TIMEOUT",
    "MAX_EVENT_MESSAGE",
    "MAX_RETRY_AFTER",
    "MIN_CALL_BUDGET",
    "Decision",
    "JobClient",
    "JobEvent",
    "JobWait",
    "Verdict",
    "cancel_at_deadline",
    "describe_result",
    "format_deadline",
    "is_transient",
    "log_cancel",
    "parse_deadline",
    "watch_job",
]

EVENT_COMPLETED = "completed"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"
_EVENT_KINDS = (EVENT_COMPLETED, EVENT_TIMEOUT, EVENT_ERROR)

#: A poll whose deadline is (nearly) reached still gets this long to answer, so a last look at a job that may
#: just have finished is not cut off before it can succeed.
MIN_CALL_BUDGET = 5.0
#: Bound on the cancel request at the deadline and in on_kill (the triggerer bounds on_kill at 30 s).
CANCEL_BUDGET = 20.0
#: An event's message is logged by the triggerer and stored with the task: a hostile answer must not make it
#: megabytes (the vendor's own text is capped before it gets here; this bounds what we add around it).
MAX_EVENT_MESSAGE = 2000


class Verdict(str, Enum):
    """What one status answer (or failed status check) means for a wait."""

    DONE = "done"  #: the job reached a terminal status: hand it over
    WAIT = "wait"  #: ask again after ``Decision.delay`` seconds
    FAIL = "fail"  #: the status check failed for good (bad key, unknown id, no connection)
    DEADLINE = "deadline"  #: the deadline passed first: cancel the job if the wait owns it


@dataclass(frozen=True)
class Decision:
    """The verdict, with the delay before the next poll (``WAIT``), the terminal result (``DONE``) or the
    failure (``FAIL``)."""

    verdict: Verdict
    delay: float = 0.0
    result: JobResult | None = None
    error: BaseException | None = None


def is_transient(error: BaseException) -> bool:
    """Whether a failed status check is waited through (asked again, until the deadline).

    Every transport failure is, a host name that does not resolve included: the job was submitted through the
    same host, so during a wait that is a blip, and giving up would abandon a paid job. So are timeouts, 408,
    429, 5xx and answers that cannot be read. A rejected key, an unknown id or a missing connection are not.

    :param error: what the status check raised.
    """
    if isinstance(error, (TimeoutError, asyncio.TimeoutError, SeedanceTransportError)):
        return True
    return isinstance(error, SeedanceError) and is_retryable(error, idempotent=True)


@dataclass
class JobWait:
    """One wait for one generation: the decision and the little it remembers (the last status seen).

    :param request_id: the generation.
    :param started_at: epoch seconds it was submitted (drives the schedule).
    :param deadline: absolute deadline in epoch seconds, or None.
    :param schedule: when to ask again.
    """

    request_id: str
    started_at: float
    deadline: float | None
    schedule: PollSchedule
    last: JobResult | None = None
    _unknown_seen: set[str] = field(default_factory=set, repr=False)

    def decide(self, result: JobResult | None, error: BaseException | None, *, log: Any,
               now: float | None = None) -> Decision:
        """What a status answer (``result``) or a failed status check (``error``) means.

        :param result: the answer, or None when the check failed.
        :param error: why it failed, or None.
        :param log: where a retried failure or an undocumented status is reported.
        :param now: epoch seconds (default: the clock).
        """
        retry_after: float | None = None
        if error is not None:
            if not is_transient(error):
                return Decision(Verdict.FAIL, error=error)
            retry_after = getattr(error, "retry_after", None)  # at most MAX_RETRY_AFTER (parse_retry_after)
            log.warning("Seedance generation %s: status check failed (%s: %s); will retry",
                        self.request_id, type(error).__name__, error)
        elif result is not None:
            if result.status.is_terminal:
                return Decision(Verdict.DONE, result=result)
            self.last = result
            raw = result.raw_status or ""
            if result.status is JobStatus.UNKNOWN and raw not in self._unknown_seen:
                # An undocumented status is logged once and waited through, never taken for success.
                self._unknown_seen.add(raw)
                log.warning("Seedance generation %s reports undocumented status %r; still waiting",
                            self.request_id, raw[:100])
            else:
                log.debug("Seedance generation %s is %s", self.request_id, result.status.value)
        now = time.time() if now is None else now
        if self.deadline is not None and now >= self.deadline:
            return Decision(Verdict.DEADLINE)
        remaining = None if self.deadline is None else self.deadline - now
        return Decision(Verdict.WAIT, delay=self.schedule.next_delay(
            now - self.started_at, remaining=remaining, retry_after=retry_after))

    def call_budget(self, now: float | None = None) -> float | None:
        """Seconds the next status check may take: what is left before the deadline, at least MIN_CALL_BUDGET."""
        if self.deadline is None:
            return None
        return max(MIN_CALL_BUDGET, self.deadline - (time.time() if now is None else now))


@dataclass(frozen=True)
class JobEvent:
    """How a wait ended, as a typed object; the trigger's event payload, and what the in-worker wait returns.

    :param event: ``completed`` (terminal status in ``result``), ``timeout`` (the deadline passed) or
        ``error`` (a status check failed for good).
    :param request_id: the generation waited for.
    :param result: the last status seen (for ``completed``: the terminal one), if any.
    :param message: a human-readable summary (the vendor's error text included when there is one).
    """

    event: str
    request_id: str
    result: JobResult | None
    message: str

    def to_payload(self) -> dict[str, Any]:
        """JSON-simple payload of a :class:`~airflow.triggers.base.TriggerEvent`."""
        return {
            "event": self.event,
            "request_id": self.request_id,
            "result": self.result.to_dict() if self.result is not None else None,
            "message": _bounded(self.message),
        }

    @classmethod
    def from_payload(cls, payload: Any) -> JobEvent:
        """Inverse of :meth:`to_payload`; ``ValueError`` when the payload is not one of ours.

        :param payload: the event payload handed to ``execute_complete``.
        """
        if not isinstance(payload, Mapping) or payload.get("event") not in _EVENT_KINDS:
            raise ValueError(f"not a SeedanceJobTrigger event: {_bounded(repr(payload), 300)}")
        raw_result = payload.get("result")
        result = JobResult.from_dict(raw_result) if isinstance(raw_result, Mapping) else None
        request_id = payload.get("request_id") or (result.request_id if result is not None else "")
        return cls(event=str(payload["event"]), request_id=str(request_id), result=result,
                   message=str(payload.get("message") or ""))


def _bounded(text: str, limit: int = MAX_EVENT_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " ... (truncated)"


def describe_result(result: JobResult) -> str:
    """One line saying how a generation ended (its output URL redacted, the vendor's error included).

    :param result: a terminal result.
    """
    status = result.raw_status or result.status.value
    text = f"Seedance generation {result.request_id} ended {status}"
    if result.status is JobStatus.SUCCEEDED:
        return text + (f": {redact_url(result.output_url)}" if result.output_url else " without an output URL")
    return text + (f": {redact_text(_bounded(result.error))}" if result.error else "")


class JobClient(Protocol):
    """What a wait needs of the hook (``SeedanceHook``, or a rate-limited wrapper of it)."""

    async def aget_job(self, request_id: str, *, timeout: float | None = None) -> JobResult:
        """The job's status."""

    async def acancel_job(self, request_id: str) -> JobResult:
        """Cancel the job."""


async def watch_job(client: JobClient, wait: JobWait, *, owns_job: bool, log: Any) -> JobEvent:
    """Poll until the job is terminal, a status check fails for good, or the deadline passes.

    At the deadline an owned job is cancelled first (:func:`cancel_at_deadline`).

    :param client: the hook.
    :param wait: the wait (request id, schedule, deadline).
    :param owns_job: the wait's task submitted the job, so it cancels it at the deadline.
    :param log: the caller's logger.
    """
    while True:
        result: JobResult | None = None
        error: BaseException | None = None
        try:
            result = await client.aget_job(wait.request_id, timeout=wait.call_budget())
        except (SeedanceError, TimeoutError, asyncio.TimeoutError) as exc:  # anything else is a bug: it fails loudly
            error = exc
        decision = wait.decide(result, error, log=log)
        if decision.verdict is Verdict.WAIT:
            await asyncio.sleep(decision.delay)
        elif decision.verdict is Verdict.DONE and decision.result is not None:
            return JobEvent(EVENT_COMPLETED, wait.request_id, decision.result, describe_result(decision.result))
        elif decision.verdict is Verdict.FAIL:
            return JobEvent(EVENT_ERROR, wait.request_id, wait.last,
                            f"Waiting for Seedance generation {wait.request_id} failed permanently: "
                            f"{type(error).__name__}: {redact_text(_bounded(str(error)))}")
        else:
            return await cancel_at_deadline(client, wait, owns_job=owns_job, log=log)


async def cancel_at_deadline(client: JobClient, wait: JobWait, *, owns_job: bool, log: Any) -> JobEvent:
    """The deadline passed: cancel the job when the wait owns it, and say what became of it.

    A job that finished between the last poll and the cancel (409) is handed back as completed.

    :param client: the hook.
    :param wait: the wait whose deadline passed.
    :param owns_job: whether to cancel (a sensor waits for somebody else's job and cancels nothing).
    :param log: the caller's logger.
    """
    rid, last = wait.request_id, wait.last
    text = f"Seedance generation {rid} did not finish before its deadline {format_deadline(wait.deadline or 0)}"
    if not owns_job:
        return JobEvent(EVENT_TIMEOUT, rid, last, text + " (not cancelled: this wait does not own the job)")
    try:
        cancelled = await asyncio.wait_for(client.acancel_job(rid), timeout=CANCEL_BUDGET)
    except SeedanceConflictError:
        try:
            final = await asyncio.wait_for(client.aget_job(rid), timeout=CANCEL_BUDGET)
        except (SeedanceError, TimeoutError, asyncio.TimeoutError) as exc:  # two classes before Python 3.11
            return JobEvent(EVENT_TIMEOUT, rid, last, f"{text}; cancel refused (already finished?): {exc}")
        if final.status.is_terminal:
            return JobEvent(EVENT_COMPLETED, rid, final, describe_result(final))
        return JobEvent(EVENT_TIMEOUT, rid, final, f"{text}; the cancel was refused (status {final.raw_status})")
    except (SeedanceError, TimeoutError, asyncio.TimeoutError) as exc:
        log.warning("Seedance generation %s: cancelling it at its deadline FAILED (%s): it may still run", rid, exc)
        return JobEvent(EVENT_TIMEOUT, rid, last,
                        f"{text}; cancelling it FAILED ({type(exc).__name__}: {exc}): it may still run")
    log.info("Seedance generation %s cancelled at its deadline (status %s)", rid, cancelled.raw_status)
    return JobEvent(EVENT_TIMEOUT, rid, cancelled, f"{text}; it was cancelled (status {cancelled.raw_status})")


def log_cancel(log: Any, request_id: str, why: str, result: JobResult | None, error: BaseException | None) -> None:
    """Say how a cancel ended, the same way in every mode (``on_kill`` in the worker and in the trigger, a
    changed request's old job): a job already over or unknown needs nothing, a failed cancel may run on.

    :param log: the caller's logger.
    :param request_id: the generation.
    :param why: the reason, for the log ("the task was killed").
    :param result: the cancel's answer, when it succeeded.
    :param error: why it failed, otherwise.
    """
    if isinstance(error, (SeedanceConflictError, SeedanceNotFoundError)):
        state = "already finished" if isinstance(error, SeedanceConflictError) else "unknown to the API"
        log.info("Seedance generation %s is %s; nothing to cancel", request_id, state)
    elif error is not None:
        log.warning("Could not cancel Seedance generation %s (%s: %s); it may run to its end", request_id,
                    type(error).__name__, error)
    elif result is not None:
        log.info("Cancelled Seedance generation %s (status %s) because %s", request_id, result.raw_status, why)


def parse_deadline(value: float | int | str | datetime | None) -> float | None:
    """Normalize a deadline to epoch seconds: accepts epoch numbers, ISO-8601 strings and datetimes.

    Strings are parsed by pendulum (a trailing ``Z`` included); a timestamp without a zone is taken as UTC
    (what Airflow stores), never as the machine's local time.

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
