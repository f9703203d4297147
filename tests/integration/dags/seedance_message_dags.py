"""The DAG of tests/integration/test_field_messages.py: a duration that a template renders from the run's config."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

with DAG("seedance_it_templated_duration", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         params={"duration": Param("5", type="string")}):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="[ok] templated duration",
        model="seedance-1.5-pro",
        duration="{{ params.duration }}",
        deferrable=False,
        poll_interval=0.2,
        max_poll_interval=1.0,
    )
