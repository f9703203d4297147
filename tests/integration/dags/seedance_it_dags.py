"""DAGs run by tests/integration with ``airflow dags test`` against the emulator.

Which job does what is chosen by the test through the emulator's next-job behaviours, matched on a
tag in the prompt: ``[ok]`` finishes normally, ``[sensor]`` takes 2 s (so the sensors really wait),
``[fail]`` fails with a vendor message, ``[hang]`` and ``[slow]`` never finish, ``[retry-slow]``
takes a few seconds. Tasks that arm faults talk to the
emulator's admin API at the connection's base URL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseHook, task

from airflow_provider_seedance.operators._job_state import JobStateStore, VariableJobStore
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

START = datetime(2026, 1, 1)
FAST: dict[str, Any] = {"poll_interval": 0.2, "max_poll_interval": 1.0}
IMAGE = "https://example.com/cat.jpg"


def _arm_status_404() -> None:
    """Make the next status check fail with a permanent 404 (e.g. a read replica lagging behind)."""
    from airflow_provider_seedance.emulator.testing import EmulatorAdmin

    admin = EmulatorAdmin(BaseHook.get_connection("seedance_default").host)
    admin.add_fault(kind="http", endpoint="status", status=404, times=1, body="not found (replica lag)")


class VariableStoreGenerateOperator(SeedanceGenerateOperator):
    """Forces the Airflow < 3.3 fallback (an Airflow Variable) so it is exercised on this Airflow too."""

    def _job_store(self, context: Any) -> JobStateStore:
        return VariableJobStore.for_context(context)


with DAG(
    "seedance_it_generate",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"subject": "a lighthouse at dusk", "no_media": []},
):
    SeedanceGenerateOperator(
        task_id="deferrable_i2v",
        prompt="[ok] a cat surfing a wave",
        media_urls=[IMAGE],
        metadata={"campaign": "spring", "run": "{{ run_id }}"},
        deferrable=True,
        **FAST,
    )
    SeedanceGenerateOperator(
        task_id="worker_t2v",
        prompt="[ok] {{ params.subject }}",
        media_urls="{{ params.no_media }}",  # renders "[]": text-to-video
        duration="{{ 4 + 1 }}",
        deferrable=False,
        **FAST,
    )
    submit_only = SeedanceGenerateOperator(
        task_id="submit_only", prompt="[sensor] a train in the rain", wait_for_completion=False, **FAST
    )
    submit_only >> [
        SeedanceJobSensor(
            task_id="sensor_deferrable",
            request_id="{{ ti.xcom_pull(task_ids='submit_only') }}",
            deferrable=True,
            poke_interval=0.2,
            max_poll_interval=1.0,
        ),
        SeedanceJobSensor(
            task_id="sensor_reschedule",
            request_id="{{ ti.xcom_pull(task_ids='submit_only', key='request_id') }}",
            mode="reschedule",
            poke_interval=1,
        ),
    ]
    failed = SeedanceGenerateOperator(task_id="failed_job", prompt="[fail] a forbidden scene", deferrable=True, **FAST)
    failed >> SeedanceJobSensor(
        task_id="sensor_soft_fail",
        request_id="{{ ti.xcom_pull(task_ids='failed_job', key='request_id') }}",
        soft_fail=True,
        trigger_rule="all_done",
        poke_interval=0.2,
    )
    SeedanceGenerateOperator(
        task_id="timeout_job", prompt="[hang] an endless render", deferrable=True, timeout=2, **FAST
    )
    SeedanceGenerateOperator(
        task_id="killed_job",
        prompt="[slow] a very long render",
        deferrable=False,
        execution_timeout=timedelta(seconds=3),
        **FAST,
    )


with DAG("seedance_it_retry", schedule=None, start_date=START, catchup=False):
    arm_a = task(task_id="arm_404_a")(_arm_status_404)()
    resume_deferrable = SeedanceGenerateOperator(
        task_id="resume_deferrable",
        prompt="[retry-slow] deferrable try 1 loses its status check",
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **FAST,
    )
    arm_b = task(task_id="arm_404_b")(_arm_status_404)()
    resume_variable = VariableStoreGenerateOperator(
        task_id="resume_variable_store",
        prompt="[ok] worker try 1 loses its status check",
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **FAST,
    )
    arm_a >> resume_deferrable >> arm_b >> resume_variable
