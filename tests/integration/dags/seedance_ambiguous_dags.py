"""DAGs whose submit answer cannot be read, run against a scripted server (connection ``seedance_scripted``).

- ``seedance_it_ambiguous_charge``: the POST is answered with a 400-digit ``creditsCharged``.
- ``seedance_it_ambiguous_timeout``: the POST's answer comes after ``execution_timeout``, so the task's
  timeout (not a Seedance error) interrupts the submit.

Both have retries=2: a retry must never send the POST again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

START = datetime(2026, 1, 1)
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=1)}

with DAG("seedance_it_ambiguous_charge", schedule=None, start_date=START, catchup=False):
    SeedanceGenerateOperator(task_id="generate", prompt="a lighthouse at dusk", seedance_conn_id="seedance_scripted",
                             deferrable=False, **RETRIES)

with DAG("seedance_it_ambiguous_timeout", schedule=None, start_date=START, catchup=False):
    SeedanceGenerateOperator(task_id="generate", prompt="a lighthouse at dusk", seedance_conn_id="seedance_scripted",
                             deferrable=False, execution_timeout=timedelta(seconds=3), **RETRIES)
