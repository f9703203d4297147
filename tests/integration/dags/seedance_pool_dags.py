"""The DAG of tests/integration/test_pool_warning.py: three generations, each in another kind of pool.

``airflow dags test`` runs all three whatever their pool; only the one whose pool does not exist must
log the "Pool ... does not exist" warning.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

#: Created by the test before the run.
EXISTING_POOL = "seedance_it_pool"
#: Never created.
MISSING_POOL = "seedance_it_no_such_pool"

with DAG("seedance_it_pools", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for task_id, pool in (("in_missing_pool", MISSING_POOL), ("in_existing_pool", EXISTING_POOL),
                          ("in_default_pool", None)):
        SeedanceGenerateOperator(
            task_id=task_id,
            prompt=f"[ok] pool check: {task_id}",
            deferrable=False,
            poll_interval=0.2,
            max_poll_interval=1.0,
            **({"pool": pool} if pool else {}),
        )
