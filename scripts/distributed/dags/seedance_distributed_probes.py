"""Two single-generation DAGs used by ``make e2e-distributed`` (copied into the run's DAGs folder).

- ``seedance_dist_worker_wait``: waits **in the worker** (``deferrable=False``) with retries, so the
  driver can SIGKILL the Celery worker mid-wait and watch the retry resume the same request id.
- ``seedance_dist_deferred``: waits **in the triggerer**, so the driver can mark it failed through
  the REST API and watch the trigger's ``on_kill`` cancel the job.

The prompt comes from the run's conf; the driver puts a unique token in it to find the job at the
emulator (and to give that one job its own duration).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

PARAMS = {"prompt": Param("A paper boat drifting down a rain gutter, macro shot", type="string", minLength=1)}

with DAG(
    dag_id="seedance_dist_worker_wait",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    tags=["seedance", "e2e-distributed"],
):
    SeedanceGenerateOperator(
        task_id="generate_video",
        prompt="{{ params.prompt }}",
        duration=5,
        resolution="720p",
        deferrable=False,
        # A retry after a dead worker must come quickly; it resumes the job, it does not resubmit.
        retries=2,
        retry_delay=timedelta(seconds=2),
    )

with DAG(
    dag_id="seedance_dist_deferred",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    tags=["seedance", "e2e-distributed"],
):
    SeedanceGenerateOperator(
        task_id="generate_video",
        prompt="{{ params.prompt }}",
        duration=5,
        resolution="720p",
        deferrable=True,
    )
