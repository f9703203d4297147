"""Run DAGs with the real ``airflow dags test`` CLI in a subprocess, against the session emulator.

One AIRFLOW_HOME (SQLite, a copy of the suite's migrated one) per test session; each DAG run's results are
read back from its metadata DB (task states, XCom, task state store) and from the CLI's output (the task logs).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS_FOLDER = Path(__file__).parent / "dags"


@dataclass
class DagRunResult:
    """One finished ``airflow dags test`` run.

    :param dag_id: the DAG.
    :param run_id: its run id (from the metadata DB).
    :param returncode: exit code of the CLI.
    :param output: stdout + stderr of the CLI (the task logs are in it).
    :param db_path: the metadata DB.
    """

    dag_id: str
    run_id: str
    returncode: int
    output: str
    db_path: Path
    seconds: float

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as db:
            return list(db.execute(sql, args))

    def state(self, task_id: str) -> str | None:
        """Final state of a task."""
        rows = self._query(
            "SELECT state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
            self.dag_id, self.run_id, task_id,
        )
        return rows[0][0] if rows else None

    def try_number(self, task_id: str) -> int:
        """Try number of a task's last try."""
        return int(self._query(
            "SELECT try_number FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
            self.dag_id, self.run_id, task_id,
        )[0][0])

    def was_deferred(self, task_id: str) -> bool:
        """Whether the task instance went through DEFERRED (from the execution API's log lines)."""
        ti_id = self._query(
            "SELECT id FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?", self.dag_id, self.run_id, task_id
        )[0][0]
        ti_id = str(uuid.UUID(str(ti_id)))  # stored as hex, logged with dashes
        return any("new_state=deferred" in line and ti_id in line for line in self.output.splitlines())

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """An XCom value as stored in the metadata DB (JSON-decoded); None when absent."""
        rows = self._query(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=?",
            self.dag_id, self.run_id, task_id, key,
        )
        if not rows:
            return None
        value = rows[0][0]
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def task_state(self, task_id: str, key: str) -> Any:
        """A value of the task state store."""
        rows = self._query(
            "SELECT value FROM task_state_store WHERE dag_id=? AND run_id=? AND task_id=? AND key=?",
            self.dag_id, self.run_id, task_id, key,
        )
        return json.loads(rows[0][0]) if rows else None

    def variable_keys(self) -> list[str]:
        """Keys of every Airflow Variable."""
        return [r[0] for r in self._query("SELECT key FROM variable")]

    def db_dump(self) -> str:
        """Every row of the metadata DB as text (for secret scans)."""
        with sqlite3.connect(self.db_path) as db:
            return "\n".join(db.iterdump())


@dataclass
class AirflowCli:
    """An isolated Airflow installation driven through its CLI.

    :param home: AIRFLOW_HOME.
    :param env: environment of every CLI call.
    """

    home: Path
    env: dict[str, str]

    def dags_test(self, dag_id: str, timeout: float = 240) -> DagRunResult:
        """Run ``airflow dags test DAG_ID`` to the end."""
        started = time.monotonic()
        proc = subprocess.run(
            [AIRFLOW, "dags", "test", dag_id], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        seconds = time.monotonic() - started
        db_path = self.home / "airflow.db"
        with sqlite3.connect(db_path) as db:
            run_id = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()[0]
        print(f"\n[timing] airflow dags test {dag_id}: {seconds:.1f} s")
        return DagRunResult(dag_id, run_id, proc.returncode, proc.stdout + "\n" + proc.stderr, db_path, seconds)


@pytest.fixture(scope="session")
def airflow_cli(
    airflow_home_factory: Callable[[str], Path], seedance_emulator_session: EmulatorHandle
) -> AirflowCli:
    """One migrated AIRFLOW_HOME (a copy) for the whole session, with the emulator as ``seedance_default``."""
    home = airflow_home_factory("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SEEDANCE_DEFAULT": seedance_emulator_session.connection_json,
        }
    )
    return AirflowCli(home=home, env=env)
