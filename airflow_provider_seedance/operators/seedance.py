"""SeedanceGenerateOperator: validate -> submit (or resume) -> record -> wait -> hand back the video URL.

Road of one generation (the whole picture, with the rooms and the triggerer's side: ``docs/architecture.rst``):

1. ``execute()`` renders the templates, builds the :class:`~airflow_provider_seedance.models.GenerationRequest`
   with the Airflow lineage in its metadata, and validates it through the hook (unknown models are
   looked up in the vendor's catalogue). A bad field fails here, before any request that costs money.
2. The credit estimate is logged with where its price came from and pushed (XCom ``credits_estimated``);
   ``max_credits`` refuses a request whose estimate is higher (or unknown), and ``run_budget_credits``
   reserves the estimate against the DAG run's budget (:mod:`airflow_provider_seedance.budget`), both
   before any POST. (The estimate may read the vendor's free model catalogue first, unless the
   connection's ``price_table`` prices the model.)
3. An earlier try's job (see :mod:`._job_state`) is resumed when it is still running, reused when it
   succeeded, and replaced when it failed or was cancelled, or when it was submitted for a different
   request (its stored :meth:`~airflow_provider_seedance.models.GenerationRequest.digest` differs: the
   prompt was edited, a template changed; it is then cancelled if still running). Otherwise the request
   is submitted once; the request id and that digest are recorded (state store; XCom ``request_id``,
   ``credits_charged``, ``seedance_spend``) *before* waiting. A submit that failed after it may have
   reached the API is not retried by Airflow (:class:`SeedanceAmbiguousSubmitNoRetryError`) unless
   ``retry_ambiguous_submit=True``: with no idempotency key, a second POST could create and charge a
   second job.
4. One status check, then the wait: deferred to :class:`~airflow_provider_seedance.triggers.seedance.SeedanceJobTrigger`
   or polled in the worker, up to the job's absolute deadline (cancelled when it passes).
5. Success pushes XCom ``output_url`` and returns the URL (with ``persist_to``: saves the video and returns
   the stored file's URI); failure, cancellation, timeout or success without a URL raise with the request
   id and the vendor's message.

Deadline: fixed once, at submit (``submit time + timeout``), and stored with the request id. A retry
that resumes the same job keeps that deadline (a retry does not buy a job more time; if it already
passed, the job is cancelled at once). A retry that submits a new job (the old one failed, was
cancelled or timed out) gives the new job a fresh deadline. ``execution_timeout`` does not run while
a task is deferred, so the deadline is the only bound there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, conf, mask_secret

from airflow_provider_seedance._numbers import positive_seconds
from airflow_provider_seedance._redact import redact_text, redact_url, url_secrets
from airflow_provider_seedance.budget import RunBudget, SeedanceBudgetExceededError
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceConflictError,
    SeedanceError,
    SeedanceJobFailedError,
    SeedanceJobTimeoutError,
    SeedanceNotFoundError,
    SeedanceValidationError,
)
from airflow_provider_seedance.links.seedance import OUTPUT_URL_XCOM_KEY, SeedanceVideoLink
from airflow_provider_seedance.models import GenerationRequest, JobResult, JobStatus
from airflow_provider_seedance.operators._job_state import JobRecord, JobStateStore, job_store_for
from airflow_provider_seedance.operators._lineage import lineage_of, with_lineage
from airflow_provider_seedance.operators._pool_check import warn_if_pool_missing
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


class SeedanceAmbiguousSubmitNoRetryError(SeedanceAmbiguousSubmitError, AirflowFailException):
    """The submit may have created (and charged) a job whose id never arrived; Airflow must not retry it.

    The API has no idempotency key: a retry would POST again and could pay for a second job. Set
    ``retry_ambiguous_submit=True`` on the operator to let Airflow's retries submit again anyway.
    """


def _priced_as(request: GenerationRequest) -> str:
    """Duration and resolution as the estimate priced them (an omitted one at the vendor's default)."""
    from airflow_provider_seedance.catalogue import DEFAULT_DURATION, DEFAULT_RESOLUTION

    duration = f"{request.duration} s" if request.duration is not None else f"{DEFAULT_DURATION} s (default)"
    resolution = request.resolution if request.resolution is not None else f"{DEFAULT_RESOLUTION} (default)"
    return f"duration {duration}, resolution {resolution}"


def _seconds(name: str, value: float | timedelta | None, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(value)


class SeedanceGenerateOperator(BaseOperator):
    """Generate a video with Seedance and return its URL (XCom ``return_value`` and ``output_url``).

    With ``persist_to``, the return value is the stored video's URI instead (the vendor's URL expires);
    XCom ``output_url`` still holds the vendor's URL.

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
    :param timeout: longest wait for the generation (seconds or timedelta; None = no limit). At the
        deadline the job is cancelled and the task fails.
    :param max_credits: refuse to submit when the estimated price is higher, or unknown. Templated.
    :param resumable: remember the request id so a retry resumes or reuses the job instead of paying
        again (task state store on Airflow >= 3.3, an Airflow Variable before). False: every try submits.
    :param run_budget_credits: the DAG run's budget in credits, shared by every Seedance generation of the
        run (mapped ones included): this task reserves its estimate before submitting and is refused
        (:class:`SeedanceBudgetExceededError`, nothing sent) when the run's charges and reservations plus
        its estimate would exceed it. Give all generating tasks the same value. Guarantees and limits:
        :mod:`airflow_provider_seedance.budget`. Templated.
    :param retry_ambiguous_submit: opt in to Airflow retries after a submit that may have created a job
        (connection reset, timeout, 5xx or unreadable answer after the POST was sent). Default False:
        such a failure fails the task without retry, because a retry could pay for a second job.
    :param persist_to: also save the finished video here, because the vendor's URL expires: a file URI
        or local path in any Airflow object storage (``s3://aws_default@bucket/videos/{{ run_id }}.mp4``,
        ``file:///data/videos/x.mp4``). Streamed, size- and type-checked, written atomically
        (:func:`~airflow_provider_seedance.persist.persist_video`); the stored URI goes to XCom
        ``video_uri`` and to the extra of each Asset outlet's event, and is the task's return value
        (``.output``); XCom ``output_url`` keeps the vendor's URL. A failed save fails the task before
        the job is marked delivered, so a retry saves the same video again without paying for a new
        one. Checked before the submit: a value ending with ``/``, an existing local directory or a local
        path the worker cannot create files under is refused (:class:`SeedanceValidationError`); object
        stores get only the trailing-slash check. Make it unique per run (two runs writing one path
        overwrite each other's video). Templated.
    :param persist_conn_id: Airflow connection of the destination store, if not in the URI. Templated.
    :param persist_max_bytes: refuse to save a video larger than this (None: 2 GiB, the helper's default).
    """

    #: Marks tasks whose spend :mod:`airflow_provider_seedance.budget` counts (subclasses included).
    records_seedance_spend = True

    template_fields: Sequence[str] = (
        "prompt",
        "media_urls",
        "model",
        "aspect_ratio",
        "duration",
        "resolution",
        "webhook_url",
        "metadata",
        "max_credits",
        "run_budget_credits",
        "persist_to",
        "persist_conn_id",
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
        self.prompt = prompt
        self.media_urls = media_urls
        self.model = model
        self.aspect_ratio = aspect_ratio
        self.duration = duration
        self.resolution = resolution
        self.webhook_url = webhook_url
        self.metadata = metadata
        self.seedance_conn_id = seedance_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        # Checked now, at DAG parse time, so a bad schedule never reaches a worker.
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)
        PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)
        self.timeout = _seconds("timeout", timeout, allow_none=True)
        self.max_credits = max_credits
        self.resumable = resumable
        self.run_budget_credits = run_budget_credits
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
        self._budget: RunBudget | None = None
        self._estimate: int | None = None
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

    # -- the request ---------------------------------------------------------------------------

    def build_request(self, context: Context) -> GenerationRequest:
        """The request from the rendered fields, with Airflow lineage in its metadata (not validated yet).

        :param context: the task's context.
        """
        # The model's own coercion (JSON string -> dict, errors naming ``metadata``) runs first, so the
        # lineage is merged into a real dict.
        user_metadata = GenerationRequest(prompt="", metadata=self.metadata).metadata  # type: ignore[arg-type]
        request = GenerationRequest(
            prompt=self.prompt,
            media_urls=self.media_urls,  # type: ignore[arg-type]  # coerced by the model
            model=self.model,
            aspect_ratio=self.aspect_ratio,
            duration=self.duration,  # type: ignore[arg-type]  # coerced by the model
            resolution=self.resolution,
            webhook_url=self.webhook_url,
            metadata=with_lineage(user_metadata, lineage_of(context)),
        )
        if request.media_urls is None:
            self.log.info("media_urls not given: text-to-video")
        elif not request.media_urls:
            # Often a template that rendered empty by mistake: make it visible.
            self.log.info("no media URLs: text-to-video (media_urls rendered empty)")
        return request

    @staticmethod
    def _credits_setting(name: str, value: Any) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            return int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise SeedanceValidationError(name, value, "a whole number of credits >= 0, or None")

    def _max_credits(self) -> int | None:
        return self._credits_setting("max_credits", self.max_credits)

    def _run_budget_credits(self) -> int | None:
        return self._credits_setting("run_budget_credits", self.run_budget_credits)

    def _do_render_template_fields(self, *args: Any, **kwargs: Any) -> None:
        # Runs for plain and mapped tasks alike, before Airflow stores the rendered fields: masking here
        # keeps URL credentials out of the "Rendered Template" view as well as out of the logs.
        super()._do_render_template_fields(*args, **kwargs)
        self._mask_url_credentials(self.media_urls, self.webhook_url)

    @staticmethod
    def _mask_url_credentials(*values: Any) -> None:
        urls: list[Any] = []
        for value in values:
            urls.extend(value if isinstance(value, (list, tuple)) else [value])
        for secret in url_secrets(urls):
            mask_secret(secret)

    def _check_budget(self, request: GenerationRequest, estimate: int | None) -> None:
        limit = self._max_credits()
        if limit is None:
            return
        if estimate is None:
            raise SeedanceBudgetExceededError(
                f"max_credits={limit} is set but the price of model {request.model!r} cannot be estimated "
                "(no catalogue pricing and not in the bundled table); nothing was submitted"
            )
        if estimate > limit:
            raise SeedanceBudgetExceededError(
                f"Estimated cost {estimate} credits exceeds max_credits={limit} "
                f"(model {request.model}, {_priced_as(request)}); nothing was submitted"
            )

    # -- execute ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Validate, then resume an earlier try's job or submit once, then wait (see module docstring).

        :param context: the task's context.
        """
        # `airflow dags test` runs this task even when its pool is missing; a scheduler never would.
        warn_if_pool_missing(self.pool, self.log)
        self._max_credits()  # bad values fail here, with the other input checks
        run_limit = self._run_budget_credits()
        self._check_persist_to()
        request = self.build_request(context)
        self._mask_url_credentials(request.media_urls, request.webhook_url)
        self.hook.validate_request(request)
        estimate = self.hook.estimate(request)
        self._estimate = estimate.credits
        if estimate.credits is None:
            self.log.info("Estimated cost: unknown (no price for model %s)", request.model)
        else:
            self.log.info("Estimated cost: %s credits (%s)", estimate.credits, estimate.source)
        self._push(context, XCOM_CREDITS_ESTIMATED, estimate.credits)

        store = self._job_store(context)
        previous = store.load()
        self._budget = RunBudget(context, run_limit, log=self.log)
        if previous is not None and not previous.delivered:
            resumed = self._resume(context, store, previous, request)
            if resumed is not None:
                return resumed[0]

        self._check_budget(request, estimate.credits)
        # A job this task instance already paid for in this run keeps counting (a clear, or a failed job).
        earlier = previous.credits_total if previous is not None else 0
        self._budget.reserve(estimate.credits, earlier_credits=earlier, describe=self._describe(request))
        return self._submit(context, store, request, earlier)

    @staticmethod
    def _describe(request: GenerationRequest) -> str:
        kind = "text" if request.is_text_to_video else "image"
        return f"model {request.model}, {_priced_as(request)}, {kind}-to-video"

    def _check_persist_to(self) -> None:
        """Refuse a ``persist_to`` that cannot take the video before anything is paid for.

        Not a directory (no trailing ``/``; locally, not an existing directory), and, on the local file
        system, a path whose nearest existing directory the worker can create files in. Object stores
        (``s3://``...) get only the trailing-slash check: more would need their credentials and a request.
        """
        if not self.persist_to:
            return
        from airflow_provider_seedance.persist import destination_problem

        problem = destination_problem(self.persist_to, check_writable=True)
        if problem is not None:
            why, example = problem
            raise SeedanceValidationError(
                "persist_to", self.persist_to,
                f"a file path (URI such as s3://bucket/videos/clip.mp4, or a local path) the worker can "
                f"write, e.g. {example!r}; this one fails because {why}. Nothing was submitted",
            )

    def _job_store(self, context: Context) -> JobStateStore:
        return job_store_for(context, resumable=self.resumable)

    def _resume(
        self, context: Context, store: JobStateStore, record: JobRecord, request: GenerationRequest
    ) -> tuple[Any] | None:
        """Carry on with an earlier try's job; None when a new job must be submitted.

        :param context: the task's context.
        :param store: where the record came from.
        :param record: the earlier try's job.
        :param request: the request this try would submit (a job made for another one is not resumed).
        """
        if record.matches_request(request.digest()) is False:
            self._drop_changed_job(record)
            return None
        try:
            current = self.hook.get_job(record.request_id)
        except SeedanceNotFoundError:
            self.log.warning("Seedance generation %s from an earlier try is unknown to the API; submitting anew",
                             record.request_id)
            return None
        self.log.info("Found Seedance generation %s from an earlier try (%s store): status %s",
                      record.request_id, store.kind, current.raw_status)
        if current.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            self.log.warning("It ended %s (%s); submitting a new generation", current.raw_status,
                             redact_text(current.error or "no error message"))
            return None
        self._record_submitted(context, record)
        if current.status is JobStatus.SUCCEEDED:
            self.log.info("It already succeeded: returning its result, nothing is submitted")
            if not self.wait_for_completion:
                return (self._deliver_request_id(store, record),)
            return (self._deliver(context, store, record, current),)
        if not self.wait_for_completion:
            return (self._deliver_request_id(store, record),)
        self.log.info("It is still running: resuming the wait (deadline kept from the first submit)")
        return (self._wait(context, store, record),)

    def _drop_changed_job(self, record: JobRecord) -> None:
        # The earlier job renders another video than this try asks for: resuming it would hand over the
        # wrong video. Cancelling it (when still running) stops it using the vendor's capacity; its charge
        # keeps counting in the run's spend (earlier_credits).
        self.log.warning(
            "Seedance generation %s from an earlier try was submitted for a different request (the prompt, "
            "media URLs, model, aspect ratio, duration or resolution changed since, e.g. an edited prompt or "
            "template): it is not resumed; cancelling it if still running and submitting the request as it "
            "is now", record.request_id)
        try:
            result = self.hook.cancel_job(record.request_id)
        except SeedanceConflictError:
            self.log.info("Seedance generation %s had already finished; nothing to cancel", record.request_id)
        except SeedanceNotFoundError:
            self.log.info("Seedance generation %s is unknown to the API; nothing to cancel", record.request_id)
        except SeedanceError as exc:
            self.log.warning("Could not cancel Seedance generation %s (%s); it may run to its end",
                             record.request_id, exc)
        else:
            self.log.info("Cancelled Seedance generation %s (status %s)", record.request_id, result.raw_status)

    def _submit(self, context: Context, store: JobStateStore, request: GenerationRequest, earlier: int) -> Any:
        submitted_at = time.time()
        try:
            result = self.hook.submit(request)
        except SeedanceAmbiguousSubmitError as exc:
            # The reservation stays: the job may exist and be charged.
            if self.retry_ambiguous_submit:
                self.log.warning("retry_ambiguous_submit=True: a retry of this task may pay for a second job")
                raise
            raise SeedanceAmbiguousSubmitNoRetryError(exc.cause) from exc
        except SeedanceError:
            if self._budget is not None:
                self._budget.release()  # refused by the API: no job, nothing charged
            raise
        record = JobRecord(
            request_id=result.request_id,
            started_at=submitted_at,
            deadline=submitted_at + self.timeout if self.timeout is not None else None,
            credits_charged=result.credits_charged,
            earlier_credits=earlier,
            request_digest=request.digest(),
        )
        self._in_flight = record  # on_kill cancels it from now on
        self._lineage_facts["vendor_status"] = result.raw_status or result.status.value
        # Recorded before anything else can fail: a retry must find this job, not pay for another.
        try:
            store.save(record)
        except Exception:
            # A retry could not find this job and would pay for a second one: do not let this one run on.
            self.log.exception("Could not record Seedance generation %s; cancelling it", record.request_id)
            self.on_kill()
            raise
        self._record_submitted(context, record)
        self.log.info("Submitted Seedance generation %s (status %s, %s credits charged)",
                      record.request_id, result.raw_status, record.credits_charged)
        if not self.wait_for_completion:
            return self._deliver_request_id(store, record)
        # One status check first: a job that is already over needs no deferral (the same decision as the wait).
        current: JobResult | None = None
        error: SeedanceError | None = None
        try:
            current = self.hook.get_job(record.request_id)
        except SeedanceError as exc:
            error = exc
        decision = self._job_wait(record).decide(current, error, log=self.log)
        if decision.verdict is Verdict.DONE and decision.result is not None:
            return self._complete(context, store, record, decision.result)
        if decision.verdict is Verdict.FAIL and error is not None:
            raise error
        return self._wait(context, store, record)

    def _record_submitted(self, context: Context, record: JobRecord) -> None:
        # From here until the result is handed over, on_kill cancels this job.
        self._in_flight = record
        self._push(context, XCOM_REQUEST_ID, record.request_id)
        self._push(context, XCOM_CREDITS_CHARGED, record.credits_charged)
        if self._budget is not None:
            self._budget.charge(record.request_id, record.credits_charged, self._estimate,
                                earlier_credits=record.earlier_credits)
        limit = self._max_credits()
        if record.credits_charged is not None and limit is not None and record.credits_charged > limit:
            self.log.warning("Seedance charged %s credits, more than max_credits=%s (the estimate was lower)",
                             record.credits_charged, limit)
        charged, estimate = record.credits_charged, self._estimate
        if charged is not None and estimate is not None and charged > estimate:
            self.log.warning("Seedance charged %s credits, more than the %s estimated: budgets may be overshot "
                             "by the difference (set the connection's price_table)", charged, estimate)

    # -- waiting -----------------------------------------------------------------------------------

    def _wait(self, context: Context, store: JobStateStore, record: JobRecord) -> Any:
        if self.deferrable:
            # Imported here: the trigger module loads airflow.triggers.base, which a DAG parse does not need.
            from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

            self.defer(
                trigger=SeedanceJobTrigger(
                    request_id=record.request_id,
                    seedance_conn_id=self.seedance_conn_id,
                    deadline=record.deadline,
                    started_at=record.started_at,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    owns_job=True,
                ),
                method_name="execute_complete",
                # No trigger timeout: the trigger enforces the deadline itself and cancels the job
                # first; a trigger timeout would fail the task and leave the job running.
            )
        # _in_flight stays set if this raises: execution_timeout calls on_kill *after* the raise.
        event = self._worker_wait.run(self.hook, self._job_wait(record), log=self.log)
        return self._on_wait_end(context, store, record, event)

    def _job_wait(self, record: JobRecord) -> JobWait:
        schedule = PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)
        return JobWait(record.request_id, record.started_at, record.deadline, schedule)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the URL or raise with the request id and the reason.

        :param context: the task's context.
        :param event: the trigger's payload (see :class:`~airflow_provider_seedance.triggers.seedance.JobEvent`).
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
        self._lineage_facts.update(request_id=record.request_id, vendor_status=result.raw_status or result.status.value)
        if result.status is JobStatus.SUCCEEDED:
            return self._deliver(context, store, record, result)
        raise SeedanceJobFailedError(record.request_id, result.raw_status or result.status.value, result.error)

    def _deliver(self, context: Context, store: JobStateStore, record: JobRecord, result: JobResult) -> Any:
        if not result.output_url:
            raise SeedanceJobFailedError(
                record.request_id, "succeeded", "the API reported success but returned no output URL"
            )
        self._mask_url_credentials(result.output_url)  # a signed output URL is a credential too
        self._push(context, OUTPUT_URL_XCOM_KEY, result.output_url)
        self.seedance_output_url = result.output_url
        self.log.info("Seedance generation %s succeeded: %s", record.request_id, redact_url(result.output_url))
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
        if self.persist_to:
            # Imported here: requests and object storage are not needed to parse a DAG file.
            from airflow_provider_seedance.persist import (
                DEFAULT_MAX_BYTES,
                VIDEO_URI_XCOM_KEY,
                SeedancePersistError,
                annotate_video_outlets,
                persist_video,
            )

            try:
                uri = persist_video(
                    result.output_url or "",
                    self.persist_to,
                    max_bytes=self.persist_max_bytes if self.persist_max_bytes is not None else DEFAULT_MAX_BYTES,
                    conn_id=self.persist_conn_id or None,
                    field="persist_to",
                )
            except SeedancePersistError as exc:
                # The job is not marked delivered yet (that happens after this returns): a retry finds it.
                retry = ("a retry of this task saves the same video again without paying for a new generation "
                         "(while the vendor's output URL is still valid)" if self.resumable else
                         "with resumable=False a retry submits (and pays for) a new generation")
                raise SeedancePersistError(
                    f"Seedance generation {result.request_id} succeeded, but saving its video to persist_to="
                    f"{self.persist_to!r} failed: {str(exc).rstrip('.')}. Fix persist_to (or the store it "
                    f"points at); {retry}",
                    reason=exc.reason,
                ) from exc
            self.log.info("Saved the video of %s to %s", result.request_id, uri)
            self._push(context, VIDEO_URI_XCOM_KEY, uri)
            annotate_video_outlets(context, self.outlets, uri, result.request_id)
            # The stored copy is what lasts: downstream tasks get it through .output.
            return uri
        return result.output_url

    def _deliver_request_id(self, store: JobStateStore, record: JobRecord) -> str:
        self._in_flight = None
        store.mark_delivered(record)
        return record.request_id

    def _push(self, context: Context, key: str, value: Any) -> None:
        if value is not None:
            self._lineage_facts[key] = value
            context["ti"].xcom_push(key=key, value=value)

    def on_kill(self) -> None:
        """Cancel the job this worker is waiting for (task killed, or ``execution_timeout`` reached)."""
        self._worker_wait.interrupt()
        record = self._in_flight
        if record is None:
            return
        # The cached hook on purpose: its connection is already resolved, so this (often a SIGTERM
        # handler) makes no connection lookup through the supervisor while the main code may be in one.
        try:
            result = self.hook.cancel_job(record.request_id)
        except SeedanceConflictError:
            self.log.info("Seedance generation %s already finished; nothing to cancel", record.request_id)
        except SeedanceError as exc:
            self.log.warning("Could not cancel Seedance generation %s: %s", record.request_id, exc)
        else:
            self.log.info("Cancelled Seedance generation %s (status %s) because the task was killed",
                          record.request_id, result.raw_status)

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
