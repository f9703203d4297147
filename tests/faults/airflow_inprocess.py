"""A private Airflow installation driven in this process with ``DAG.test()`` (the engine of ``airflow dags test``).

``DAG.test()`` runs each task through the real Task SDK runner and the in-process execution API (real
task states, XComs, task state store, retries with their delay), and runs a deferred task's trigger
inline, re-created from its serde-serialized kwargs as a triggerer would. It costs about half a second
per DAG run once warm, against ten for an ``airflow dags test`` process, which makes a 30-row fault
matrix affordable.

Call :func:`prepare` before anything imports Airflow: it points ``AIRFLOW_HOME`` at a fresh folder and
migrates its SQLite metadata DB.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DagRunView", "load_dags", "prepare", "quiet_fds", "run_dag"]

HERE = Path(__file__).resolve().parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def prepare(home: Path, dags_folder: Path, extra_env: dict[str, str] | None = None) -> None:
    """Point this process's Airflow at ``home`` (SQLite) and ``dags_folder``; migrate the DB.

    :param home: a fresh AIRFLOW_HOME.
    :param dags_folder: the DAGs folder (its modules may import from ``tests/faults``).
    :param extra_env: more environment variables.
    """
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        raise RuntimeError("prepare() must run before Airflow is imported")
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        **(extra_env or {}),
    }
    os.environ.update(env)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    subprocess.run([AIRFLOW, "db", "migrate"], env=dict(os.environ), check=True, capture_output=True, timeout=300)


@contextlib.contextmanager
def quiet_fds(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so Airflow's log output too) to a file.

    :param log_path: where the output goes.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def load_dags(dags_folder: Path) -> dict[str, Any]:
    """Parse the DAGs folder once; return DAG id -> DAG.

    :param dags_folder: the folder.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(dags_folder))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return dict(bag.dags)


@dataclass
class DagRunView:
    """One finished DAG run, read back from the metadata DB.

    :param dag_id: the DAG.
    :param run_id: the run.
    :param state: the run's state.
    """

    dag_id: str
    run_id: str
    state: str

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        from airflow import settings

        path = str(settings.SQL_ALCHEMY_CONN).split("sqlite:///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as db:
            return list(db.execute(sql, args))

    def task(self, task_id: str) -> dict[str, Any]:
        """State and try number of a task (map index -1)."""
        rows = self._rows(
            "SELECT state, try_number FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=? AND map_index=-1",
            self.dag_id, self.run_id, task_id,
        )
        return {"state": rows[0][0], "try_number": rows[0][1]} if rows else {"state": None, "try_number": 0}

    def mapped_states(self, task_id: str) -> dict[int, str]:
        """Map index -> state of a mapped task."""
        rows = self._rows("SELECT map_index, state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
                          self.dag_id, self.run_id, task_id)
        return {int(i): s for i, s in rows}

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """An XCom value (JSON-decoded), None when absent."""
        rows = self._rows(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=? AND map_index=?",
            self.dag_id, self.run_id, task_id, key, map_index,
        )
        if not rows or rows[0][0] is None:
            return None
        value = rows[0][0]
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def task_state(self, task_id: str, key: str, map_index: int = -1) -> Any:
        """A value of the task state store (JSON-decoded)."""
        try:
            rows = self._rows(
                "SELECT value FROM task_state_store WHERE dag_id=? AND run_id=? AND task_id=? AND key=? "
                "AND map_index=?", self.dag_id, self.run_id, task_id, key, map_index,
            )
        except sqlite3.OperationalError:  # Airflow < 3.3: no such table
            return None
        return json.loads(rows[0][0]) if rows else None


def run_dag(dag: Any, conf: dict[str, Any] | None = None) -> DagRunView:
    """Run one DAG to the end with ``DAG.test()``.

    :param dag: the DAG object (from :func:`load_dags`).
    :param conf: the run's ``conf``.
    """
    run = dag.test(run_conf=conf)
    state = run.state.value if hasattr(run.state, "value") else str(run.state)
    return DagRunView(dag.dag_id, run.run_id, state)
