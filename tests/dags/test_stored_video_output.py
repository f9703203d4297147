"""With ``persist_to`` the task's output is the stored video, and the example DAGs run without a logical date.

Real Airflow: ``airflow dags test`` in a subprocess against the emulator, XComs read back from the
session's metadata database; and ``DAG.test(logical_date=None)`` for a manual run that has no logical
date (which ``airflow dags test`` cannot make: it defaults the date to now).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.airflow_cli

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def airflow_env(**extra: str) -> dict[str, str]:
    """The session's Airflow environment (its AIRFLOW_HOME) with the repository's dags/ and ``extra``.

    :param extra: more variables.
    """
    return {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONUNBUFFERED": "1", **extra}

PIPELINE = "example_seedance_content_pipeline"


def _db() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"


def _run_key(run_id: str) -> str:
    """The run id as the pipeline's persist_to writes it (':' and '+' are not path-safe everywhere)."""
    return run_id.replace(":", "-").replace("+", "-")


def _latest_run(dag_id: str) -> tuple[str, str | None]:
    with sqlite3.connect(_db()) as db:
        run_id, logical_date = db.execute(
            "SELECT run_id, logical_date FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
    return run_id, logical_date


def _xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    with sqlite3.connect(_db()) as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=?", (dag_id, run_id, task_id, key)
        ).fetchone()
    return None if row is None else json.loads(row[0])


def test_the_pipelines_output_is_the_stored_video(dag_runner, seedance_emulator) -> None:
    seedance_emulator.admin.configure(time_scale=0)
    run = dag_runner.run(PIPELINE, "2025-03-05")

    assert run.returncode == 0, run.output[-4000:]
    run_id, _ = _latest_run(PIPELINE)
    [job] = seedance_emulator.admin.jobs()
    stored = f"file://{dag_runner.video_dir}/content_pipeline/2025-03-05/{_run_key(run_id)}.mp4"
    assert _xcom(PIPELINE, run_id, "generate_video") == stored  # generate.output
    assert _xcom(PIPELINE, run_id, "generate_video", "video_uri") == stored
    assert _xcom(PIPELINE, run_id, "generate_video", "output_url") == (
        f"{seedance_emulator.base_url}/files/{job['requestId']}.mp4"
    )
    # The downstream @task got the stored file, and could read it.
    assert _xcom(PIPELINE, run_id, "announce_video") == stored
    assert f"Today's video: {stored} (" in run.output


# DAG.test() with logical_date=None: what a manual run gets in Airflow 3 (UI Trigger button, `airflow dags
# trigger` without --logical-date, the REST API with "logical_date": null).
NO_LOGICAL_DATE = """
import sys
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]
run = dag.test(logical_date=None)
print("RUN", run.run_id, run.logical_date, run.state)
sys.exit(0 if run.state == "success" else 1)
"""


def test_the_pipeline_runs_without_a_logical_date(dag_runner, seedance_emulator) -> None:
    seedance_emulator.admin.configure(time_scale=0)
    env = airflow_env(AIRFLOW_CONN_SEEDANCE_DEFAULT=seedance_emulator.connection_json,
                      AIRFLOW_VAR_SEEDANCE_VIDEO_DIR=str(dag_runner.video_dir))
    proc = subprocess.run([sys.executable, "-c", NO_LOGICAL_DATE, str(DAGS_DIR), PIPELINE], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
                          start_new_session=True)

    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "UndefinedError" not in proc.stdout
    run_id, logical_date = _latest_run(PIPELINE)
    assert logical_date is None
    [body] = [e["body"] for e in seedance_emulator.admin.requests() if e["endpoint"] == "submit"]
    with sqlite3.connect(_db()) as db:
        (run_after,) = db.execute("SELECT run_after FROM dag_run WHERE run_id=? AND dag_id=?",
                                  (run_id, PIPELINE)).fetchone()
    day = str(run_after)[:10]
    # The run's day came from run_after: in the prompt, the metadata and the stored file's name.
    assert body["metadata"]["day"] == day
    assert body["prompt"].startswith("A quiet harbour town waking up on a ")
    stored = f"file://{dag_runner.video_dir}/content_pipeline/{day}/{_run_key(run_id)}.mp4"
    assert _xcom(PIPELINE, run_id, "announce_video") == stored


def test_two_runs_of_one_day_keep_their_own_videos(dag_runner, seedance_emulator) -> None:
    # Two manual runs without a logical date, the same day: with a day-only path the second overwrote the
    # first's video, and the first run's XCom and Asset event then pointed at the second's file.
    seedance_emulator.admin.configure(time_scale=0)
    env = airflow_env(AIRFLOW_CONN_SEEDANCE_DEFAULT=seedance_emulator.connection_json,
                      AIRFLOW_VAR_SEEDANCE_VIDEO_DIR=str(dag_runner.video_dir))
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", NO_LOGICAL_DATE, str(DAGS_DIR), PIPELINE], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
                              start_new_session=True)
        assert proc.returncode == 0, proc.stdout[-4000:]
        run_id, _ = _latest_run(PIPELINE)  # read now: DAG.test drops the DAG's earlier runs from the database
        runs.append((run_id, _xcom(PIPELINE, run_id, "generate_video")))

    (first_id, first_uri), (second_id, second_uri) = runs
    assert first_id != second_id
    assert first_uri != second_uri
    assert len(seedance_emulator.admin.jobs()) == 2
    for run_id, uri in runs:
        assert uri.endswith(f"/{_run_key(run_id)}.mp4")
        assert Path(uri.removeprefix("file://")).read_bytes()[4:8] == b"ftyp"  # each run's file is still there
    assert len(list(dag_runner.video_dir.rglob("*.mp4"))) == 2


def test_the_image_to_video_example_runs_without_a_logical_date(dag_runner, seedance_emulator) -> None:
    seedance_emulator.admin.configure(time_scale=0)
    env = airflow_env(AIRFLOW_CONN_SEEDANCE_DEFAULT=seedance_emulator.connection_json,
                      AIRFLOW_VAR_SEEDANCE_VIDEO_DIR=str(dag_runner.video_dir))
    proc = subprocess.run([sys.executable, "-c", NO_LOGICAL_DATE, str(DAGS_DIR), "example_seedance_image_to_video"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False, start_new_session=True)

    assert proc.returncode == 0, proc.stdout[-4000:]
    _, logical_date = _latest_run("example_seedance_image_to_video")
    assert logical_date is None
    assert len(list(dag_runner.video_dir.rglob("*.mp4"))) == 1


def test_a_logical_date_template_fails_a_manual_run_without_one(dag_runner, seedance_emulator, tmp_path) -> None:
    # The trap the examples avoid, shown for real: `{{ ds }}` in a run without a logical date.
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "uses_ds.py").write_text(
        "from airflow.sdk import DAG\n"
        "from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator\n"
        "with DAG('seedance_uses_ds', schedule=None):\n"
        "    SeedanceGenerateOperator(task_id='generate', prompt='A harbour on {{ ds }}')\n"
    )
    env = airflow_env(AIRFLOW_CONN_SEEDANCE_DEFAULT=seedance_emulator.connection_json,
                      AIRFLOW__CORE__DAGS_FOLDER=str(dags))
    proc = subprocess.run([sys.executable, "-c", NO_LOGICAL_DATE, str(dags), "seedance_uses_ds"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
                          start_new_session=True)

    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "UndefinedError" in proc.stdout
    assert "'ds' is undefined" in proc.stdout
    assert seedance_emulator.admin.stats()["submits"] == 0
