"""DAGs run by a real Airflow engine (scheduler, LocalExecutor, triggerer) in tests/faults/engine_run.py.

- ``seedance_engine_kill``: try 1 is SIGKILLed right after it saved the request id; try 2 must resume it.
- ``seedance_engine_secrets``: generations of every kind with a recognisable API key in the connection,
  URLs with credentials, and vendor messages echoing the key; everything is then scanned for them.
- ``seedance_engine_budget``: four mapped generations of 40 credits under ``run_budget_credits=100``.

The prompts carry tags (``[kill]``, ``[secrets-slow]``...) the emulator's next-job behaviours match on.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_seedance.budget import seedance_run_spend
from airflow_provider_seedance.operators._job_state import JobRecord, JobStateStore
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

START = datetime(2026, 1, 1)
FAST: dict[str, Any] = {"poll_interval": 0.5, "max_poll_interval": 2.0}
IMAGE = "https://example.com/cat.jpg"
#: Credentials inside URLs: they must never show in a log line or a rendered template field.
CREDENTIALED_MEDIA = "https://mediauser:MEDIAPASS-CANARY-51@cdn.example.com/cat.jpg?X-Amz-Signature=AMZSIG-CANARY-52"
CREDENTIALED_WEBHOOK = "https://hooks.example.com/done?token=HOOKTOKEN-CANARY-53"


class _KillAfterSave(JobStateStore):
    """The real store; right after it saved the submitted job, the task process dies (SIGKILL)."""

    def __init__(self, inner: JobStateStore) -> None:
        self.inner = inner
        self.kind = inner.kind

    def load(self) -> JobRecord | None:
        return self.inner.load()

    def save(self, record: JobRecord) -> None:
        self.inner.save(record)
        if record.request_id is not None:  # not the intent record written before the POST
            os.kill(os.getpid(), signal.SIGKILL)


class KillAfterSaveOperator(SeedanceGenerateOperator):
    """Test-only: try 1 is killed between recording the request id and anything else; submit/resume untouched."""

    def _job_store(self, context: Any) -> JobStateStore:
        store = super()._job_store(context)
        return _KillAfterSave(store) if context["ti"].try_number == 1 else store


with DAG("seedance_engine_kill", schedule=None, start_date=START, catchup=False):
    KillAfterSaveOperator(
        task_id="generate", prompt="[kill] a storm over the sea", deferrable=True, retries=1,
        retry_delay=timedelta(seconds=2), **FAST,
    )


with DAG("seedance_engine_secrets", schedule=None, start_date=START, catchup=False):
    SeedanceGenerateOperator(
        task_id="deferrable_i2v", prompt="[secrets-slow] a red fox in the snow", media_urls=[IMAGE],
        metadata={"campaign": "{{ run_id }}"}, deferrable=True, **FAST,
    )
    SeedanceGenerateOperator(task_id="worker_t2v", prompt="[secrets] a quiet harbour", deferrable=False, **FAST)
    submitted = SeedanceGenerateOperator(
        task_id="submit_only", prompt="[secrets] a train in the rain", wait_for_completion=False, **FAST
    )
    submitted >> SeedanceJobSensor(
        task_id="sensor_deferrable", request_id="{{ ti.xcom_pull(task_ids='submit_only') }}", deferrable=True,
        poke_interval=0.5, max_poll_interval=2.0,
    )
    SeedanceGenerateOperator(
        task_id="credentialed_urls", prompt="[secrets] signed media", media_urls=[CREDENTIALED_MEDIA],
        webhook_url=CREDENTIALED_WEBHOOK, deferrable=True, **FAST,
    )
    SeedanceGenerateOperator(task_id="vendor_echoes_key", prompt="[fail-echo] a forbidden scene", deferrable=True,
                             **FAST)


with DAG("seedance_engine_budget", schedule=None, start_date=START, catchup=False):

    @task
    def prompts() -> list[str]:
        return [f"[budget] scene {i}" for i in range(4)]

    generated = SeedanceGenerateOperator.partial(
        task_id="generate", deferrable=True, run_budget_credits=100, **FAST
    ).expand(prompt=prompts())

    @task(trigger_rule="all_done")
    def run_spend() -> dict[str, Any]:
        return seedance_run_spend()

    generated >> run_spend()
