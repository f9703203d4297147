"""SeedanceJobSensor: wait for a generation somebody else submitted (poke, reschedule or deferrable).

It never submits and never cancels: the job is not its own. On success it returns the output URL
(XCom ``return_value``) and pushes it as ``output_url``; a failed or cancelled job (or a success
without a URL) fails the sensor with an ``AirflowFailException`` naming the request id and the vendor's
message (skipped instead with ``soft_fail=True``). What a status answer means is the one wait decision
(:class:`~airflow_provider_seedance.waiting.JobWait`): transient failures count as "not yet" until
``timeout``; permanent ones (401, 404) raise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_seedance._masking import mask_url_secrets
from airflow_provider_seedance._numbers import positive_seconds
from airflow_provider_seedance._redact import redact_text, redact_url
from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.links.seedance import OUTPUT_URL_XCOM_KEY, SeedanceVideoLink
from airflow_provider_seedance.models import REQUEST_ID_RULE, JobResult, JobStatus, is_valid_request_id
from airflow_provider_seedance.polling import DEFAULT_MAX_POLL_INTERVAL, PollSchedule
from airflow_provider_seedance.waiting import EVENT_COMPLETED, EVENT_TIMEOUT, JobEvent, JobWait, Verdict

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["SeedanceJobSensor"]


class SeedanceJobSensor(BaseSensorOperator):
    """Wait until a Seedance generation finishes; return its output URL.

    :param request_id: the generation to wait for (e.g. ``{{ ti.xcom_pull(task_ids='submit') }}``). Templated.
    :param seedance_conn_id: the Seedance connection.
    :param deferrable: wait in the triggerer (``poke_interval`` is then the first polling interval,
        growing to ``max_poll_interval``). Default ``[operators] default_deferrable``.
    :param max_poll_interval: cap of the polling interval in deferrable mode, in seconds.
    :param kwargs: ``BaseSensorOperator`` arguments: ``poke_interval``, ``timeout``, ``mode``, ``soft_fail``...
    """

    template_fields: Sequence[str] = ("request_id",)
    operator_extra_links = (SeedanceVideoLink(),)
    ui_color = "#f2e8ff"

    def __init__(
        self,
        *,
        request_id: str,
        seedance_conn_id: str = "seedance_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.seedance_conn_id = seedance_conn_id
        self.deferrable = deferrable
        self.max_poll_interval = max(positive_seconds("max_poll_interval", max_poll_interval),
                                     float(self.poke_interval))
        #: The URL delivered in this run (read by the "Seedance video" link in the worker).
        self.seedance_output_url: str | None = None
        # The job's last status seen by this process, for the OpenLineage methods (no XCom read there).
        self._lineage_job: JobResult | None = None
        self._job_wait: JobWait | None = None

    @cached_property
    def hook(self) -> SeedanceHook:
        """The Seedance hook (built on first use, in the worker)."""
        from airflow_provider_seedance.hooks.seedance import SeedanceHook

        return SeedanceHook(seedance_conn_id=self.seedance_conn_id)

    def _request_id(self) -> str:
        rid = self.request_id.strip() if isinstance(self.request_id, str) else ""
        if not is_valid_request_id(rid):
            raise AirflowFailException(
                f"SeedanceJobSensor needs a request id ({REQUEST_ID_RULE}); the template rendered "
                f"{redact_text(repr(self.request_id)[:200])}"
            )
        return rid

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check the job once: not finished -> False; succeeded -> the URL; failed/cancelled -> fail.

        :param context: the task's context.
        """
        rid = self._request_id()
        result: JobResult | None = None
        error: SeedanceError | None = None
        try:
            result = self.hook.get_job(rid)
        except SeedanceError as exc:
            error = exc
        # The same decision as every other wait; the sensor's own timeout is its deadline.
        if self._job_wait is None or self._job_wait.request_id != rid:  # one per sensor: a warning is said once
            self._job_wait = JobWait(rid, time.time(), None, PollSchedule())
        decision = self._job_wait.decide(result, error, log=self.log)
        if decision.verdict is Verdict.DONE and decision.result is not None:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(context, decision.result))
        if decision.verdict is Verdict.FAIL and error is not None:
            raise error
        if result is not None:
            self.log.info("Seedance generation %s is %s", rid, result.raw_status)
        return False

    def _finish(self, context: Context, result: JobResult) -> str:
        self._lineage_job = result
        if result.status is JobStatus.SUCCEEDED and result.output_url:
            mask_url_secrets(result.output_url)  # a signed output URL is a credential too
            context["ti"].xcom_push(key=OUTPUT_URL_XCOM_KEY, value=result.output_url)
            self.seedance_output_url = result.output_url
            self.log.info("Seedance generation %s succeeded: %s", result.request_id, redact_url(result.output_url))
            return result.output_url
        status = result.raw_status or result.status.value
        reason = result.error or ("no output URL was returned" if result.status is JobStatus.SUCCEEDED else None)
        # The job will not change its mind: no retry (AirflowFailException), skipped under soft_fail.
        raise AirflowFailException(
            f"Seedance generation {result.request_id} ended {status}: {redact_text(reason or 'no error message given')}"
        )

    def execute(self, context: Context) -> Any:
        """Poke/reschedule as usual; deferrable: check once, then defer until done or ``timeout``.

        :param context: the task's context.
        """
        if not self.deferrable:
            return super().execute(context)
        try:
            first = self.poke(context)
        except AirflowFailException as exc:
            # The base class applies soft_fail only around its own poke loop, not around this call.
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise
        if isinstance(first, PokeReturnValue):
            return first.xcom_value
        # Imported here: the trigger module loads airflow.triggers.base, which a DAG parse does not need.
        from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

        now = time.time()
        self.defer(
            trigger=SeedanceJobTrigger(
                request_id=self._request_id(),
                seedance_conn_id=self.seedance_conn_id,
                deadline=now + self.timeout,
                started_at=now,
                poll_interval=max(float(self.poke_interval), 0.1),
                max_poll_interval=self.max_poll_interval,
                owns_job=False,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired (``soft_fail`` is applied by the base class).

        :param context: the task's context.
        :param event: the trigger's payload.
        """
        job_event = JobEvent.from_payload(event)
        if job_event.event == EVENT_COMPLETED and job_event.result is not None:
            return self._finish(context, job_event.result)
        if job_event.event == EVENT_TIMEOUT:
            raise AirflowSensorTimeout(job_event.message)
        raise AirflowException(job_event.message)

    # -- OpenLineage (called by the OpenLineage provider's listener; imported lazily) ---------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The job waited for (request id) in the ``seedanceGeneration`` and ``externalQuery`` facets."""
        from airflow_provider_seedance.lineage.openlineage import sensor_lineage

        return sensor_lineage(self, None, "start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """As on start, plus the model, charge and status of the last status read, and the output URL.

        :param task_instance: the finished task instance.
        """
        from airflow_provider_seedance.lineage.openlineage import sensor_lineage

        return sensor_lineage(self, task_instance, "complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """As on complete, without an output.

        :param task_instance: the failed task instance.
        """
        from airflow_provider_seedance.lineage.openlineage import sensor_lineage

        return sensor_lineage(self, task_instance, "failure")
