"""Fixtures for the example DAGs: the repository's dags/ folder and real `airflow dags test` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
AIRFLOW = [str(Path(sys.executable).with_name("airflow"))]


def airflow_env(**extra: str) -> dict[str, str]:
    """The test's Airflow environment (its AIRFLOW_HOME) with the repository's dags/ as the DAGs folder.

    :param extra: more variables.
    """
    env = dict(os.environ)
    env.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@dataclass
class DagTestRun:
    """Outcome of one ``airflow dags test``.

    :param returncode: the CLI's exit code (non-zero when the run failed).
    :param output: everything it printed (task logs included).
    """

    returncode: int
    output: str


@dataclass
class DagRunner:
    """Runs example DAGs with ``airflow dags test`` against an emulator, saving videos under ``video_dir``.

    :param connection_json: the emulator's connection.
    :param video_dir: value of the ``seedance_video_dir`` Variable.
    """

    connection_json: str
    video_dir: Path

    def run(self, dag_id: str, logical_date: str | None = None, conf: dict[str, Any] | None = None) -> DagTestRun:
        """Run one DAG to completion.

        :param dag_id: the DAG.
        :param logical_date: ``YYYY-MM-DD`` (default: now).
        :param conf: run configuration (``-c``).
        """
        cmd = [*AIRFLOW, "dags", "test", dag_id]
        if logical_date:
            cmd.append(logical_date)
        if conf is not None:
            cmd += ["-c", json.dumps(conf)]
        env = airflow_env(
            AIRFLOW_CONN_SEEDANCE_DEFAULT=self.connection_json,
            AIRFLOW_VAR_SEEDANCE_VIDEO_DIR=str(self.video_dir),
        )
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=300, check=False, start_new_session=True)
        return DagTestRun(proc.returncode, proc.stdout)


@pytest.fixture
def dag_runner(
    airflow_home: Path, seedance_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> DagRunner:
    """A :class:`DagRunner` bound to the (reset) session emulator and a fresh video directory.

    The test gets its own migrated AIRFLOW_HOME (a copy), set in the environment: every ``airflow``
    subprocess of the test, and its reads of ``$AIRFLOW_HOME/airflow.db``, use it.
    """
    monkeypatch.setenv("AIRFLOW_HOME", str(airflow_home))
    return DagRunner(seedance_emulator.connection_json, tmp_path / "videos")
