"""A numeric field that a template renders wrong fails the task with the field's allowed range.

Real Airflow: ``airflow dags test`` with a run configuration, the task log read from the CLI output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

    from .conftest import AirflowCli

pytestmark = pytest.mark.airflow_cli

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "seedance_it_templated_duration"


def _run(cli: AirflowCli, duration: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, "dags", "test", DAG_ID, "-c", json.dumps({"duration": duration})], env=cli.env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)


def test_a_duration_rendered_as_7s_names_the_models_durations(
    airflow_cli: AirflowCli, seedance_emulator: EmulatorHandle
) -> None:
    run = _run(airflow_cli, "7s")

    assert run.returncode != 0, run.stdout[-4000:]
    assert "Invalid duration: '7s'. Allowed: a whole number of seconds, for seedance-1.5-pro: 5 or 10." in run.stdout
    assert seedance_emulator.admin.stats()["requests"] == 0  # refused before anything was sent


def test_the_same_template_rendering_a_number_runs(airflow_cli: AirflowCli, seedance_emulator: EmulatorHandle) -> None:
    run = _run(airflow_cli, "10")

    assert run.returncode == 0, run.stdout[-4000:]
    [submit] = [e["body"] for e in seedance_emulator.admin.requests() if e["endpoint"] == "submit"]
    assert submit["duration"] == 10
