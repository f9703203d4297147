"""``airflow dags test`` runs with the OpenLineage provider's file transport, read back as events.

One migrated AIRFLOW_HOME (SQLite) for the lineage tests; each DAG run writes its OpenLineage events
to its own JSON-lines file, and the CLI's output, the metadata DB and the emulator's log stay readable
for the assertions. OpenLineage is enabled only in these subprocesses: the rest of the suite runs with
it disabled (no transport configured), as a user without the extra would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS_FOLDER = Path(__file__).parent / "dags"
NAMESPACE = "seedance-lineage-tests"


@dataclass
class LineageRun:
    """One finished ``airflow dags test`` run and the OpenLineage events it emitted.

    :param dag_id: the DAG.
    :param returncode: exit code of the CLI.
    :param output: stdout + stderr of the CLI.
    :param events: every event of the file transport, in emission order.
    :param raw_events: the transport file's text (for secret scans).
    :param db_path: the metadata DB.
    """

    dag_id: str
    returncode: int
    output: str
    events: list[dict[str, Any]]
    raw_events: str
    db_path: Path
    run_id: str = field(default="")

    def task_events(self, task_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """The task's events (job name ``dag_id.task_id``), optionally of one type (START, COMPLETE, FAIL)."""
        name = f"{self.dag_id}.{task_id}"
        return [
            e for e in self.events
            if e.get("job", {}).get("name") == name and (event_type is None or e.get("eventType") == event_type)
        ]

    def one(self, task_id: str, event_type: str) -> dict[str, Any]:
        """The single event of that type; fails listing what was emitted otherwise."""
        found = self.task_events(task_id, event_type)
        assert len(found) == 1, (
            f"{len(found)} {event_type} events for {task_id}; emitted: "
            f"{[(e.get('job', {}).get('name'), e.get('eventType')) for e in self.events]}\n{self.output[-4000:]}"
        )
        return found[0]

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """An XCom value from the metadata DB (JSON-decoded); None when absent."""
        with sqlite3.connect(self.db_path) as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=?",
                (self.dag_id, self.run_id, task_id, key),
            ).fetchone()
        return None if row is None else json.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]

    def state(self, task_id: str) -> str | None:
        """Final state of a task."""
        with sqlite3.connect(self.db_path) as db:
            row = db.execute(
                "SELECT state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
                (self.dag_id, self.run_id, task_id),
            ).fetchone()
        return None if row is None else row[0]


@dataclass
class LineageCli:
    """A migrated AIRFLOW_HOME driven through ``airflow dags test`` with a file transport per run.

    :param home: AIRFLOW_HOME.
    :param env: environment of every CLI call (OpenLineage transport added per run).
    :param out: where the DAGs save their videos.
    """

    home: Path
    env: dict[str, str]
    out: Path

    def dags_test(self, dag_id: str, timeout: float = 240) -> LineageRun:
        """Run ``airflow dags test DAG_ID`` with its own events file."""
        events_path = self.home / f"events-{dag_id}.jsonl"
        events_path.unlink(missing_ok=True)
        env = dict(self.env)
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
            {"type": "file", "log_file_path": str(events_path), "append": True}
        )
        proc = subprocess.run(
            [AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True, timeout=timeout
        )
        raw = events_path.read_text() if events_path.exists() else ""
        events = [json.loads(line) for line in raw.splitlines() if line.strip()]
        db_path = self.home / "airflow.db"
        with sqlite3.connect(db_path) as db:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
        return LineageRun(
            dag_id, proc.returncode, proc.stdout + "\n" + proc.stderr, events, raw, db_path, row[0] if row else ""
        )


@pytest.fixture(scope="session")
def lineage_cli(
    tmp_path_factory: pytest.TempPathFactory,
    airflow_home_factory: Callable[[str], Path],
    seedance_emulator_session: EmulatorHandle,
) -> LineageCli:
    """One migrated AIRFLOW_HOME (a copy) with the emulator as ``seedance_default`` and OpenLineage on."""
    pytest.importorskip("airflow.providers.openlineage", reason="the [openlineage] extra is not installed")
    home = airflow_home_factory("airflow-home-lineage")
    out = tmp_path_factory.mktemp("videos")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "OPENLINEAGE"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
            "AIRFLOW_CONN_SEEDANCE_DEFAULT": seedance_emulator_session.connection_json,
            "SEEDANCE_LINEAGE_OUT": str(out),
        }
    )
    return LineageCli(home=home, env=env, out=out)


# -- in-process tests (run on every supported Airflow, the 3.0 unit run included) --------------------------


class StubTaskInstance:
    """The task-instance surface the operators use: XCom push/pull of this task instance, identity."""

    def __init__(self, task_id: str = "generate", try_number: int = 1) -> None:
        self.dag_id = "lineage_unit_dag"
        self.run_id = "manual__2026-01-01T00:00:00+00:00"
        self.task_id = task_id
        self.map_index = -1
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        assert task_ids in (None, self.task_id), "only this task instance's own XCom is read"
        return self.pushed.get(key)


class DictStateStore:
    """The Task SDK's ``task_state_store`` accessor surface (get/set), in a dict."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.data[key] = value


@pytest.fixture
def stub_ti() -> type[StubTaskInstance]:
    """The stub task-instance class (a retry is a new instance sharing the context's state store)."""
    return StubTaskInstance


@pytest.fixture
def context() -> dict[str, Any]:
    """A task context whose state store outlives the task instance (a retry swaps ``ti``)."""
    return {"ti": StubTaskInstance(), "task_state_store": DictStateStore()}


_OL_CACHED = ("is_disabled", "transport", "config_path", "config_conn_id")


@pytest.fixture
def openlineage_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The OpenLineage provider configured to emit (console transport) in this process, for one test."""
    conf = pytest.importorskip("airflow.providers.openlineage.conf")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "console"}))
    _clear(conf)
    yield
    monkeypatch.undo()
    _clear(conf)


def _clear(conf: Any) -> None:
    # The provider reads its settings once per process (functools.cache): forget them around the test.
    for name in _OL_CACHED:
        clear = getattr(getattr(conf, name, None), "cache_clear", None)
        if clear is not None:
            clear()
