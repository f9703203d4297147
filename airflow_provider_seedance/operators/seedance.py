"""SeedanceGenerateOperator: validate -> resume or submit once -> wait -> hand back the video URL.

``execute`` reads top to bottom as the road of one generation (the whole picture, with the triggerer's side
and why each step is where it is: ``docs/architecture.rst``):

1. Build the request from the rendered fields (literal ones were already checked at DAG parse time,
   :mod:`._request`), validate it once and estimate its price once through the hook.
2. Resume, reuse or replace an earlier try's job, or submit once and record the request id before
   waiting (:mod:`._submission`; credit checks in :class:`~airflow_provider_seedance.budget.CreditGuard`).
3. One status check, then the wait: deferred to
   :class:`~airflow_provider_seedance.triggers.seedance.SeedanceJobTrigger` or polled in the worker, up to
   the job's absolute deadline (fixed at submit; a resumed job keeps it).
4. Hand over the URL (with ``persist_to``, the stored file's URI), or raise with the request id and why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_seedance._masking import mask_url_secrets
from airflow_provider_seedance._numbers import positive_seconds
from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance.budget import CreditGuard, SeedanceBudgetExceededError
from airflow_provider_seedance.errors import SeedanceError, SeedanceJobFailedError, SeedanceJobTimeoutError
from airflow_provider_seedance.links.seedance import OUTPUT_URL_XCOM_KEY, SeedanceVideoLink
from airflow_provider_seedance.models import API_FIELDS, GenerationRequest, JobResult, JobStatus
from airflow_provider_seedance.operators._job_state import JobRecord, JobStateStore, job_store_for
from airflow_provider_seedance.operators._pool_check import warn_if_pool_missing
from airflow_provider_seedance.operators._request import build_request, check_literal_fields
from airflow_provider_seedance.operators._submission import (
    Job,
    SeedanceAmbiguousSubmitNoRetryError,
    Submission,
    cancel_and_log,
)
from airflow_provider_seedance.operators._wait import InWorkerWait
from airflow_provider_seedance.polling import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, PollSchedule
from airflow_provider_seedance.waiting import EVENT_COMPLETED, EVENT_TIMEOUT, JobEvent, JobWait, Verdict

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["SeedanceAmbiguousSubmitNoRetryError", "SeedanceBudgetExceededError", "SeedanceGenerateOperator"]

XCOM_REQUEST_ID = "request_id"
XCOM_CREDITS_CHARGED = "credits_charged"
XCOM_CREDITS_ESTIMATED = "credits_estimated"

DEFAULT_TIMEOUT = timedelta(hours=1)


class SeedanceGenerateOperator(BaseOperator):
    """Generate a video with Seedance and return its URL (XCom ``return_value`` and ``output_url``).

    Literal arguments are checked when the DAG is parsed; templated ones when the task runs, before anything
    is paid for. Guides: ``docs/guides/operator.rst`` (retries, budgets, persist_to, deferral).

    :param prompt: what the video shows. Templated.
    :param media_urls: 1-5 public reference media URLs (list, JSON list string or one URL); None or
        empty for text-to-video. Templated.
    :param model: model id (built-in or listed in the vendor's catalogue). Templated.
    :param aspect_ratio: ``16:9``, ``9:16`` or ``1:1``. Templated.
    :param duration: seconds (range depends on the model). Templated.
    :param resolution: ``480p``, ``720p`` or ``1080p``. Templated.
    :param webhook_url: https URL the vendor calls with the final result. Templated.
    :param metadata: JSON object stored with the request; Airflow lineage is added under the
        ``"airflow"`` key (your keys are never overwritten). Templated.
    :param seedance_conn_id: the Seedance connection.
    :param wait_for_completion: wait for the video; False returns the request id right after submit.
    :param deferrable: wait in the triggerer (frees the worker slot). Default ``[operators] default_deferrable``.
    :param poll_interval: first and smallest polling interval in seconds (it grows with elapsed time).
    :param max_poll_interval: cap of the polling interval in seconds.
    :param timeout: longest wait for the generation (seconds or timedelta; None = no limit), counted from
        the submit. At the deadline the job is cancelled and the task fails.
    :param max_credits: refuse to submit when the estimated price is higher, or unknown. Templated.
    :param resumable: remember the request id so a retry resumes or reuses the job instead of paying
        again (task state store on Airflow >= 3.3, an Airflow Variable before). False: every try submits.
    :param run_budget_credits: the DAG run's budget in credits, shared by every Seedance generation of the
        run; refused before the submit when it would be exceeded (:mod:`airflow_provider_seedance.budget`).
        Give all generating tasks the same value. Templated.
    :param retry_ambiguous_submit: opt in to submitting again after a submit that may have created a job
        (its answer was never read). Default False: the task fails without retry, and a later try refuses
        to POST again, because it could pay for a second job.
    :param persist_to: also save the finished video here (the vendor's URL expires): a file URI or local
        path in any Airflow object storage; the stored URI is the return value and XCom ``video_uri``.
        Checked before the submit. Templated.
    :param persist_conn_id: Airflow connection of the destination store, if not in the URI. Templated.
    :param persist_max_bytes: refuse to save a video larger than this (None: 2 GiB, the helper's default).
    """

    #: Marks tasks whose spend :mod:`airflow_provider_seedance.budget` counts (subclasses included).
    records_seedance_spend = True

    template_fields: Sequence[str] = (
        "prompt", "media_urls", "model", "aspect_ratio", "duration", "resolution", "webhook_url", "metadata",
        "max_credits", "run_budget_credits", "persist_to", "persist_conn_id",
    )
    template_fields_renderers = {"media_urls": "json", "metadata": "json"}
    operator_extra_links = (SeedanceVideoLink(),)
    ui_color = "#f2e8ff"

    def __init__(
        self,
        *,
        prompt: str,
        media_urls: Sequence[str] | str | None = None,
        model: str = "seedance-2.0",
        aspect_ratio: str | None = None,
        duration: int | str | None = None,
        resolution: str | None = None,
        webhook_url: str | None = None,
        metadata: Mapping[str, Any] | str | None = None,
        seedance_conn_id: str = "seedance_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        max_credits: int | str | None = None,
        resumable: bool = True,
        run_budget_credits: int | str | None = None,
        retry_ambiguous_submit: bool = False,
        persist_to: str | None = None,
        persist_conn_id: str | None = None,
        persist_max_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt, self.media_urls, self.model = prompt, media_urls, model
        self.aspect_ratio, self.duration, self.resolution = aspect_ratio, duration, resolution
        self.webhook_url, self.metadata = webhook_url, metadata
        self.max_credits, self.run_budget_credits = max_credits, run_budget_credits
        # Checked now, when the DAG is parsed: a typo is an import error naming the field, not a failed task.
        check_literal_fields({**self._request_fields(), "max_credits": max_credits,
                              "run_budget_credits": run_budget_credits})
        self.seedance_conn_id = seedance_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)
        PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)
        self.timeout = positive_seconds("timeout", timeout, allow_none=True)
        self.resumable = resumable
        self.retry_ambiguous_submit = retry_ambiguous_submit
        if persist_to and not wait_for_completion:
            # Nothing would be saved: the task ends before the video exists.
            raise ValueError(
                "persist_to needs wait_for_completion=True; to save a video submitted with "
                "wait_for_completion=False, use SeedanceJobSensor then SeedancePersistVideoOperator"
            )
        self.persist_to = persist_to
        self.persist_conn_id = persist_conn_id
        self.persist_max_bytes = persist_max_bytes
        # The job this process is waiting for, so on_kill can cancel it; set only while waiting.
        self._in_flight: JobRecord | None = None
        self._worker_wait = InWorkerWait()
        #: The URL delivered in this run (read by the "Seedance video" link in the worker).
        self.seedance_output_url: str | None = None
        # What this process learnt about its job (request id, credits, status), for the OpenLineage
        # methods: the listener may call them in a forked process that must not read XCom itself.
        self._lineage_facts: dict[str, Any] = {}

    @cached_property
    def hook(self) -> SeedanceHook:
        """The Seedance hook (built on first use, in the worker; never at DAG parse time)."""
        from airflow_provider_seedance.hooks.seedance import SeedanceHook

        return SeedanceHook(seedance_conn_id=self.seedance_conn_id)

    def _request_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in API_FIELDS}

    def build_request(self, context: Context) -> GenerationRequest:
        """The request from the rendered fields, with Airflow lineage in its metadata (not validated yet).

        :param context: the task's context.
        """
        return build_request(self._request_fields(), context, self.log)

    def _do_render_template_fields(self, *args: Any, **kwargs: Any) -> None:
        # Runs for plain and mapped tasks alike, before Airflow stores the rendered fields: masking here
        # keeps URL credentials out of the "Rendered Template" view as well as out of the logs.
        super()._do_render_template_fields(*args, **kwargs)
        mask_url_secrets(self.media_urls, self.webhook_url)

    def _job_store(self, context: Context) -> JobStateStore:
        return job_store_for(context, resumable=self.resumable)

    # -- execute ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Validate and estimate once, resume an earlier try's job or submit once, then wait (module docstring).

        :param context: the task's context.
        """
        # `airflow dags test` runs this task even when its pool is missing; a scheduler never would.
        warn_if_pool_missing(self.pool, self.log)
        guard = CreditGuard(context, max_credits=self.max_credits, run_budget_credits=self.run_budget_credits,
                            log=self.log)
        if self.persist_to:
            from airflow_provider_seedance.operators.persist import check_persist_to  # object storage: lazily

            check_persist_to(self.persist_to)
        request = self.build_request(context)
        mask_url_secrets(request.media_urls, request.webhook_url)
        self.hook.validate_request(request)
        estimate = self.hook.estimate(request)
        self.log.info("Estimated cost: %s", f"{estimate.credits} credits ({estimate.source})"
                      if estimate.credits is not None else f"unknown (no price for model {request.model})")
        self._push(context, XCOM_CREDITS_ESTIMATED, estimate.credits)
        store = self._job_store(context)
        job = Submission(self.hook, store, guard, timeout=self.timeout, log=self.log,
                         retry_ambiguous_submit=self.retry_ambiguous_submit).run(request, estimate.credits)
        return self._carry_on(context, store, job, guard)

    def _carry_on(self, context: Context, store: JobStateStore, job: Job, guard: CreditGuard) -> Any:
        self._in_flight = job.record  # on_kill cancels it from now until the result is handed over
        self._push(context, XCOM_REQUEST_ID, job.request_id)
        self._push(context, XCOM_CREDITS_CHARGED, job.record.credits_charged)
        guard.charge(job.request_id, job.record.credits_charged, earlier_credits=job.record.earlier_credits)
        seen = job.current or job.submitted
        if seen is not None:
            self._lineage_facts["vendor_status"] = seen.raw_status or seen.status.value
        if not self.wait_for_completion:
            return self._deliver_request_id(store, job.record, job.request_id)
        current, error = job.current, None
        if current is None:
            # Just submitted: one status check, so a job that is already over needs no deferral.
            try:
                current = self.hook.get_job(job.request_id)
            except SeedanceError as exc:
                error = exc
        decision = self._job_wait(job.record, job.request_id).decide(current, error, log=self.log)
        if decision.verdict is Verdict.DONE and decision.result is not None:
            return self._complete(context, store, job.record, decision.result)
        if decision.verdict is Verdict.FAIL and error is not None:
            raise error
        return self._wait(context, store, job.record, job.request_id)

    # -- waiting -----------------------------------------------------------------------------------

    def _wait(self, context: Context, store: JobStateStore, record: JobRecord, request_id: str) -> Any:
        if self.deferrable:
            # Imported here: the trigger module loads airflow.triggers.base, which a DAG parse does not need.
            from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

            self.defer(
                trigger=SeedanceJobTrigger(
                    request_id=request_id, seedance_conn_id=self.seedance_conn_id, deadline=record.deadline,
                    started_at=record.started_at, poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval, owns_job=True,
                ),
                method_name="execute_complete",
                # No trigger timeout: the trigger enforces the deadline itself and cancels the job
                # first; a trigger timeout would fail the task and leave the job running.
            )
        # _in_flight stays set if this raises: execution_timeout calls on_kill *after* the raise.
        event = self._worker_wait.run(self.hook, self._job_wait(record, request_id), log=self.log)
        return self._on_wait_end(context, store, record, event)

    def _job_wait(self, record: JobRecord, request_id: str) -> JobWait:
        schedule = PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)
        return JobWait(request_id, record.started_at, record.deadline, schedule)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the URL or raise with the request id and the reason.

        :param context: the task's context.
        :param event: the trigger's payload (see :class:`~airflow_provider_seedance.waiting.JobEvent`).
        """
        job_event = JobEvent.from_payload(event)
        store = self._job_store(context)
        record = store.load()
        if record is None or record.request_id != job_event.request_id:
            record = JobRecord(request_id=job_event.request_id, started_at=time.time())
        from airflow_provider_seedance.lineage.facts import note_resumed

        note_resumed(self, context, record)  # this process did not submit: the lineage learns the job here
        return self._on_wait_end(context, store, record, job_event)

    def _on_wait_end(self, context: Context, store: JobStateStore, record: JobRecord, job_event: JobEvent) -> Any:
        if job_event.event == EVENT_COMPLETED and job_event.result is not None:
            return self._complete(context, store, record, job_event.result)
        if job_event.event == EVENT_TIMEOUT:
            raise SeedanceJobTimeoutError(job_event.message)
        raise SeedanceError(job_event.message or f"Waiting for Seedance generation {job_event.request_id} failed")

    # -- the end -----------------------------------------------------------------------------------

    def _complete(self, context: Context, store: JobStateStore, record: JobRecord, result: JobResult) -> Any:
        self._in_flight = None
        self._lineage_facts.update(request_id=result.request_id, vendor_status=result.raw_status or result.status.value)
        if result.status is not JobStatus.SUCCEEDED:
            raise SeedanceJobFailedError(result.request_id, result.raw_status or result.status.value, result.error)
        if not result.output_url:
            raise SeedanceJobFailedError(
                result.request_id, "succeeded", "the API reported success but returned no output URL"
            )
        mask_url_secrets(result.output_url)  # a signed output URL is a credential too
        self._push(context, OUTPUT_URL_XCOM_KEY, result.output_url)
        self.seedance_output_url = result.output_url
        self.log.info("Seedance generation %s succeeded: %s", result.request_id, redact_url(result.output_url))
        value = self.on_success(context, result)
        # Last step: once delivered, clearing this task generates a new video instead of reusing this one.
        store.mark_delivered(record)
        return value

    def on_success(self, context: Context, result: JobResult) -> Any:
        """Turn a succeeded job into the task's return value. Subclasses may extend.

        The output URL; with ``persist_to``, the stored video's URI (the output URL expires; it stays in
        XCom ``output_url``).

        :param context: the task's context.
        :param result: the succeeded job (``output_url`` is set).
        """
        if not self.persist_to:
            return result.output_url
        # Imported here: requests and object storage are not needed to parse a DAG file.
        from airflow_provider_seedance.operators.persist import persist_generated_video

        uri = persist_generated_video(context, result, self.persist_to, conn_id=self.persist_conn_id,
                                      max_bytes=self.persist_max_bytes, resumable=self.resumable,
                                      outlets=self.outlets, log=self.log)
        self._lineage_facts["video_uri"] = uri
        return uri  # the stored copy is what lasts: downstream tasks get it through .output

    def _deliver_request_id(self, store: JobStateStore, record: JobRecord, request_id: str) -> str:
        self._in_flight = None
        store.mark_delivered(record)
        return request_id

    def _push(self, context: Context, key: str, value: Any) -> None:
        if value is not None:
            self._lineage_facts[key] = value
            context["ti"].xcom_push(key=key, value=value)

    def on_kill(self) -> None:
        """Cancel the job this worker is waiting for (task killed, or ``execution_timeout`` reached)."""
        self._worker_wait.interrupt()
        record = self._in_flight
        if record is not None and record.request_id is not None:
            # The cached hook on purpose: its connection is already resolved, so this (often a SIGTERM
            # handler) makes no connection lookup through the supervisor while the main code may be in one.
            cancel_and_log(self.hook, record.request_id, self.log, why="the task was killed")

    # -- OpenLineage (called by the OpenLineage provider's listener; imported lazily) ---------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Media read, the destination when ``persist_to`` is set, the ``seedanceGeneration`` facet."""
        from airflow_provider_seedance.lineage.openlineage import generate_lineage

        return generate_lineage(self, None, "start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """As on start, plus the request id, credits, vendor status and the video written.

        :param task_instance: the finished task instance (unused: the facts come from this process).
        """
        from airflow_provider_seedance.lineage.openlineage import generate_lineage

        return generate_lineage(self, task_instance, "complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """As on complete, with the vendor's status of the job when one was submitted.

        :param task_instance: the failed task instance.
        """
        from airflow_provider_seedance.lineage.openlineage import generate_lineage

        return generate_lineage(self, task_instance, "failure")
