"""``airflow dags test`` ignores pools; the operator warns there when its pool does not exist.

Real Airflow: the CLI in a subprocess (its tasks run in-process through ``InProcessTestSupervisor``),
the pool created with ``airflow pools set``, the DAG in dags/seedance_pool_dags.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_seedance.operators._pool_check import missing_pool_message

if TYPE_CHECKING:
    from .conftest import AirflowCli

pytestmark = pytest.mark.airflow_cli

DAG_ID = "seedance_it_pools"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _task_log(output: str, task_id: str) -> str:
    """The part of the CLI output between this task's start and end markers (dags test runs tasks in turn)."""
    match = re.search(rf"\[DAG TEST\] starting task_id={task_id} .*?\[DAG TEST\] end task task_id={task_id} ",
                      output, flags=re.DOTALL)
    assert match, f"no log section for {task_id}"
    return match.group(0)


@pytest.mark.usefixtures("seedance_emulator")  # reset: an earlier test on this worker may have slowed its jobs
def test_a_missing_pool_is_reported_under_dags_test(airflow_cli: AirflowCli) -> None:
    subprocess.run([AIRFLOW, "pools", "set", "seedance_it_pool", "2", "pool check", "--include-deferred"],
                   env=airflow_cli.env, capture_output=True, text=True, check=True, timeout=120)

    run = airflow_cli.dags_test(DAG_ID)

    # dags test ran every task, the one in the missing pool included: that is the trap.
    assert run.returncode == 0, run.output[-4000:]
    for task_id in ("in_missing_pool", "in_existing_pool", "in_default_pool"):
        assert run.state(task_id) == "success"
    warning = missing_pool_message("seedance_it_no_such_pool")
    [line] = [line for line in _task_log(run.output, "in_missing_pool").splitlines() if warning in line]
    assert "warning" in line.lower().replace(warning.lower(), "")  # logged at WARNING level
    assert "airflow pools set seedance_it_no_such_pool <slots> '<description>' --include-deferred" in warning
    assert "does not exist" not in _task_log(run.output, "in_existing_pool")
    assert "does not exist" not in _task_log(run.output, "in_default_pool")
    assert run.output.count("does not exist. `airflow dags test` ignores pools") == 1
