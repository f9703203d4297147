"""The fault matrix's DAGs, one per scenario of ``fault_scenarios.SCENARIOS`` (built by ``dags/fault_matrix_dags.py``).

The operator and sensor run unmodified but for their hook's retry *waits*: the policy keeps the default 5
attempts, with milliseconds instead of seconds between them, so the request counts are those of the
default policy and the matrix stays fast. Every failure (and retry) is written to the JSON-lines file
named by ``SEEDANCE_FAULT_EVENTS`` with its exception text, which the report quotes.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import DAG
from fault_scenarios import SCENARIOS, Scenario, dag_id_of

from airflow_provider_seedance.hooks.seedance import RetryPolicy, SeedanceHook
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

__all__ = ["EVENTS_ENV", "FAST_RETRIES", "build_fault_dags", "record_failure"]

EVENTS_ENV = "SEEDANCE_FAULT_EVENTS"
START = datetime(2026, 1, 1)
#: Same number of attempts as the default RetryPolicy; waits shrunk (a Retry-After is still honoured).
FAST_RETRIES = RetryPolicy(max_attempts=5, max_total_seconds=60.0, initial_wait=0.05, max_wait=0.2, jitter=0.05)


class FastRetryGenerateOperator(SeedanceGenerateOperator):
    """The operator, its hook built with :data:`FAST_RETRIES`."""

    @cached_property
    def hook(self) -> SeedanceHook:
        """The hook with short retry waits."""
        return SeedanceHook(seedance_conn_id=self.seedance_conn_id, retry_policy=FAST_RETRIES)


class FastRetryJobSensor(SeedanceJobSensor):
    """The sensor, its hook built with :data:`FAST_RETRIES`."""

    @cached_property
    def hook(self) -> SeedanceHook:
        """The hook with short retry waits."""
        return SeedanceHook(seedance_conn_id=self.seedance_conn_id, retry_policy=FAST_RETRIES)


def record_failure(context: Any) -> None:
    """``on_failure_callback`` / ``on_retry_callback``: append the exception text to the events file.

    :param context: the task's context.
    """
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    ti = context["ti"]
    exc = context.get("exception")
    line = {
        "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "try_number": ti.try_number,
        "error": f"{type(exc).__name__}: {exc}" if exc is not None else None,
        "cause": f"{type(exc.cause).__name__}: {exc.cause}" if hasattr(exc, "cause") else None,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def _task(scenario: Scenario) -> None:
    kwargs = dict(scenario.operator_kwargs)
    if scenario.path == "sensor":
        FastRetryJobSensor(
            task_id="wait", request_id="{{ dag_run.conf['request_id'] }}", seedance_conn_id=scenario.conn_id,
            poke_interval=0.1, timeout=30, mode="poke", **kwargs,
        )
        return
    FastRetryGenerateOperator(
        task_id="generate",
        prompt=f"[{scenario.name}] a lighthouse at dusk",
        seedance_conn_id=scenario.conn_id,
        deferrable=scenario.path == "deferrable",
        poll_interval=0.1,
        max_poll_interval=0.5,
        **kwargs,
    )


def build_fault_dags(namespace: dict[str, Any]) -> None:
    """Add one DAG per in-process scenario to ``namespace`` (a DAG file's globals).

    :param namespace: where the DAGs go.
    """
    for scenario in SCENARIOS:
        if scenario.path == "engine":
            continue
        with DAG(
            dag_id_of(scenario),
            schedule=None,
            start_date=START,
            catchup=False,
            default_args={
                "retries": 0,
                "retry_delay": timedelta(seconds=0.5),
                "on_failure_callback": record_failure,
                "on_retry_callback": record_failure,
            },
            tags=["seedance-fault-matrix"],
        ) as dag:
            _task(scenario)
        namespace[dag.dag_id] = dag
