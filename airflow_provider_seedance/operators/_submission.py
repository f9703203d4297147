"""Resume or submit, once: the one place the operator decides whether a POST is sent.

An earlier try's job (:mod:`._job_state`) is resumed while it runs, reused when it succeeded, and replaced
when it failed, was cancelled, is unknown to the API, or was made for another request (digest). Otherwise the
request is submitted once: an intent record is written *before* the POST, and the request id replaces it as
soon as the answer is read. A submit whose answer cannot be read is ambiguous (its job may exist): the
intent stays, the task fails without retry, and a later try refuses to POST again unless
``retry_ambiguous_submit=True``. Why: ``docs/architecture.rst`` ("The road of one generation", step 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance._redact import redact_text
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceError,
    SeedanceNotFoundError,
    created_nothing,
)
from airflow_provider_seedance.models import JobResult, JobStatus
from airflow_provider_seedance.operators._job_state import JobRecord, JobStateStore
from airflow_provider_seedance.waiting import log_cancel

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_seedance.budget import CreditGuard
    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.models import GenerationRequest
else:
    from airflow.providers.common.compat.sdk import AirflowFailException

__all__ = ["Job", "SeedanceAmbiguousSubmitNoRetryError", "Submission", "cancel_and_log"]


class SeedanceAmbiguousSubmitNoRetryError(SeedanceAmbiguousSubmitError, AirflowFailException):
    """The submit may have created (and charged) a job whose id never arrived; Airflow must not retry it.

    The API has no idempotency key: a retry would POST again and could pay for a second job. Set
    ``retry_ambiguous_submit=True`` on the operator to let Airflow's retries submit again anyway.
    """


@dataclass(frozen=True)
class Job:
    """The job this try carries on with: its record (request id set), its status now when resumed (``current``),
    the submit's answer when just submitted (``submitted``)."""

    record: JobRecord
    request_id: str
    current: JobResult | None = None
    submitted: JobResult | None = None


def cancel_and_log(hook: SeedanceHook, request_id: str, log: Any, *, why: str) -> None:
    """Cancel a generation, logging what happened; never raises a Seedance error (it may run to its end).

    :param hook: the hook (already resolved: ``on_kill`` may run in a signal handler).
    :param request_id: the generation.
    :param why: the reason, for the log ("the task was killed").
    """
    try:
        result = hook.cancel_job(request_id)
    except SeedanceError as exc:
        log_cancel(log, request_id, why, None, exc)
    else:
        log_cancel(log, request_id, why, result, None)


class Submission:
    """Resume or submit for one try of one task instance.

    :param hook: the Seedance hook.
    :param store: where the task instance's job record lives.
    :param guard: the credit checks (``max_credits``, run budget).
    :param timeout: seconds from submit to the job's deadline (None: no deadline).
    :param retry_ambiguous_submit: let a try POST again after an ambiguous submit.
    :param log: the operator's logger.
    """

    def __init__(self, hook: SeedanceHook, store: JobStateStore, guard: CreditGuard, *, timeout: float | None,
                 retry_ambiguous_submit: bool, log: Any) -> None:
        self.hook, self.store, self.guard, self.log = hook, store, guard, log
        self.timeout = timeout
        self.retry_ambiguous_submit = retry_ambiguous_submit

    def run(self, request: GenerationRequest, estimate: int | None) -> Job:
        """The earlier try's job when it can be carried on with, else a new one submitted and recorded (the caller
        then records its charge: :meth:`CreditGuard.charge`).

        :param request: the validated request.
        :param estimate: its estimated charge.
        """
        self.guard.estimate = estimate
        previous = self.store.load()
        if previous is not None and not previous.delivered:
            if previous.is_ambiguous:
                self._check_ambiguous(previous)
            elif previous.request_id is not None:
                job = self._resume(previous, previous.request_id, request)
                if job is not None:
                    return job
        # A job this task instance already paid for in this run keeps counting (a clear, or a failed job).
        earlier = previous.credits_total if previous is not None else 0
        self.guard.reserve(request, estimate, earlier_credits=earlier)
        return self._submit(request, earlier)

    def _check_ambiguous(self, previous: JobRecord) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(previous.started_at))
        if self.retry_ambiguous_submit:
            self.log.warning("An earlier try's submit (%s) may have created a job whose id never arrived; "
                             "retry_ambiguous_submit=True: submitting again, which may pay for a second job", when)
            return
        raise SeedanceAmbiguousSubmitNoRetryError(RuntimeError(
            f"an earlier try of this task sent the submit at {when} and never read its answer, so that job may "
            "exist and be charged. Not sending it again: check the vendor's dashboard (or the API) for a job "
            "submitted then; to submit anyway, set retry_ambiguous_submit=True or clear the task"))

    def _resume(self, record: JobRecord, request_id: str, request: GenerationRequest) -> Job | None:
        if record.matches_request(request.digest()) is False:
            # Resuming it would hand over another video than this try asks for. Cancelled (when still running) so
            # it stops using the vendor's capacity; its charge keeps counting in the run's spend (earlier_credits).
            self.log.warning(
                "Seedance generation %s from an earlier try was submitted for a different request (the prompt, media "
                "URLs, model, aspect ratio, duration or resolution changed since, e.g. an edited prompt or template): "
                "it is not resumed; cancelling it if still running and submitting the request as it is now", request_id)
            cancel_and_log(self.hook, request_id, self.log, why="the request changed")
            return None
        try:
            current = self.hook.get_job(request_id)
        except SeedanceNotFoundError:
            self.log.warning("Seedance generation %s from an earlier try is unknown to the API; submitting anew",
                             request_id)
            return None
        self.log.info("Found Seedance generation %s from an earlier try (%s store): status %s",
                      request_id, self.store.kind, current.raw_status)
        if current.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            self.log.warning("It ended %s (%s); submitting a new generation", current.raw_status,
                             redact_text(current.error or "no error message"))
            return None
        if current.status is JobStatus.SUCCEEDED:
            self.log.info("It already succeeded: returning its result, nothing is submitted")
        else:
            self.log.info("It is still running: resuming the wait (deadline kept from the first submit)")
        return Job(record, request_id, current)

    def _submit(self, request: GenerationRequest, earlier: int) -> Job:
        submitted_at = time.time()
        intent = JobRecord(request_id=None, started_at=submitted_at, earlier_credits=earlier,
                           request_digest=request.digest(), sending=True)
        self.store.save(intent)  # before the POST: a try that never reads the answer leaves this behind
        try:
            result = self.hook.submit(request, validate=False)  # the operator validated it (execute)
        except Exception as exc:
            if created_nothing(exc):
                self.store.save(replace(intent, sending=False))  # nothing to resume; earlier charges still count
                self.guard.release()
                raise
            # The reservation and the intent stay: the job may exist and be charged.
            if self.retry_ambiguous_submit:
                self.log.warning("retry_ambiguous_submit=True: a retry of this task may pay for a second job")
                raise
            cause = exc.cause if isinstance(exc, SeedanceAmbiguousSubmitError) else exc
            raise SeedanceAmbiguousSubmitNoRetryError(cause) from exc
        record = replace(intent, request_id=result.request_id, sending=False, credits_charged=result.credits_charged,
                         deadline=submitted_at + self.timeout if self.timeout is not None else None)
        # Recorded before anything else can fail: a retry must find this job, not pay for another.
        try:
            self.store.save(record)
        except Exception:
            # A retry could not find this job and would pay for a second one: do not let this one run on.
            self.log.exception("Could not record Seedance generation %s; cancelling it", result.request_id)
            cancel_and_log(self.hook, result.request_id, self.log, why="it could not be recorded")
            raise
        self.log.info("Submitted Seedance generation %s (status %s, %s credits charged)",
                      result.request_id, result.raw_status, result.credits_charged)
        return Job(record, result.request_id, submitted=result)
