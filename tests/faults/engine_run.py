"""One run of a real Airflow engine for the scenarios that need one; shared by three test folders.

A scheduler (LocalExecutor: every task in its own supervised process), a triggerer, a dag-processor and
an api-server (``tests/e2e/e2e_engine.py``, used read-only) run the DAGs of ``engine_dags/`` against an
emulator process whose only accepted key is a recognisable canary:

- ``seedance_engine_kill`` (tests/faults): try 1 is SIGKILLed right after saving its request id.
- ``seedance_engine_secrets`` (tests/security): while its deferred task waits, the trigger rows are read
  from the metadata DB and decoded with Airflow's own ``Trigger`` model and Fernet key; afterwards every
  task log, component log, XCom, rendered template field and DB row is collected for the scan.
- ``seedance_engine_budget`` (tests/budget): four mapped generations, truly concurrent, under one run budget.

:func:`observe_engine` runs it once per process (cached), so the three test modules share one engine.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
E2E = REPO / "tests" / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

from e2e_engine import AirflowEngine, wait_for  # noqa: E402 - the e2e harness, reused as is

__all__ = ["API_KEY_CANARY", "URL_CANARIES", "EngineObservation", "kill_row", "observe_engine"]

#: The API key of this run: accepted by the emulator, in the connection, and searched for everywhere.
API_KEY_CANARY = "sd2_live_LEAKCANARY_7f3a9c2e5b1d"
#: Credential parts of URLs used by the run; none may appear in a log line or a rendered field.
URL_CANARIES = ("MEDIAPASS-CANARY-51", "AMZSIG-CANARY-52", "HOOKTOKEN-CANARY-53", "OUTPASS-CANARY-54")
DAGS = ("seedance_engine_kill", "seedance_engine_secrets", "seedance_engine_budget")


@dataclass
class EngineObservation:
    """Everything the engine tests assert on, collected before the engine stopped.

    :param runs: dag_id -> run id.
    :param run_states: dag_id -> final run state.
    :param tasks: "dag_id.task_id[map_index]" -> task instance (REST API JSON).
    :param xcoms: (dag_id, task_id, map_index, key) -> value, from the metadata DB.
    :param trigger_rows: trigger rows seen while tasks were deferred: raw (encrypted) and decrypted kwargs.
    :param task_logs: path -> text of every task and trigger log file.
    :param component_logs: path -> text of the scheduler/triggerer/dag-processor/api-server logs.
    :param rendered_fields: (dag_id, task_id, map_index) -> rendered fields JSON text.
    :param db_dump: every row of the metadata DB at the end, as SQL text.
    :param db_tables: table name -> every row of it at the end, as text.
    :param requests: the emulator's request log.
    :param jobs: the emulator's jobs.
    :param stats: the emulator's counters.
    :param base_url: the emulator's base URL.
    :param seconds: wall time of the whole run (reported, never asserted).
    """

    runs: dict[str, str] = field(default_factory=dict)
    run_states: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    xcoms: dict[tuple[str, str, int, str], Any] = field(default_factory=dict)
    trigger_rows: list[dict[str, Any]] = field(default_factory=list)
    task_logs: dict[str, str] = field(default_factory=dict)
    component_logs: dict[str, str] = field(default_factory=dict)
    rendered_fields: dict[tuple[str, str, int], str] = field(default_factory=dict)
    db_dump: str = ""
    db_tables: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    base_url: str = ""
    seconds: float = 0.0

    def task(self, dag_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """A task instance as the REST API showed it at the end."""
        return self.tasks[f"{dag_id}.{task_id}[{map_index}]"]

    def xcom(self, dag_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """An XCom value (None when absent)."""
        return self.xcoms.get((dag_id, task_id, map_index, key))

    def jobs_of(self, dag_id: str) -> list[dict[str, Any]]:
        """The emulator's jobs submitted by a DAG (by the Airflow lineage in their metadata)."""
        return [j for j in self.jobs if ((j["request"].get("metadata") or {}).get("airflow") or {}).get("dag_id")
                == dag_id]

    def submits_of(self, dag_id: str) -> list[dict[str, Any]]:
        """Submit requests (accepted or not) of a DAG."""
        return [r for r in self.requests if r["endpoint"] == "submit" and isinstance(r["body"], dict)
                and ((r["body"].get("metadata") or {}).get("airflow") or {}).get("dag_id") == dag_id]


def _db(engine: AirflowEngine) -> sqlite3.Connection:
    return sqlite3.connect(engine.home / "airflow.db", timeout=30)


def _decrypt(encrypted: str, fernet_key: str) -> dict[str, Any]:
    """Trigger kwargs decrypted exactly as Airflow reads them (its Trigger model and Fernet)."""
    from airflow.models.crypto import get_fernet
    from airflow.models.trigger import Trigger

    saved = os.environ.get("AIRFLOW__CORE__FERNET_KEY")
    os.environ["AIRFLOW__CORE__FERNET_KEY"] = fernet_key
    get_fernet.cache_clear()
    try:
        return dict(Trigger._decrypt_kwargs(encrypted))
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW__CORE__FERNET_KEY", None)
        else:
            os.environ["AIRFLOW__CORE__FERNET_KEY"] = saved
        get_fernet.cache_clear()


def _trigger_rows(engine: AirflowEngine, fernet_key: str) -> list[dict[str, Any]]:
    with contextlib.closing(_db(engine)) as db:
        rows = list(db.execute(
            "SELECT t.id, t.classpath, t.kwargs, ti.dag_id, ti.task_id, ti.map_index FROM trigger t "
            "LEFT JOIN task_instance ti ON ti.trigger_id = t.id"
        ))
    return [
        {"id": tid, "classpath": classpath, "encrypted": kwargs, "kwargs": _decrypt(kwargs, fernet_key),
         "dag_id": dag_id, "task_id": task_id, "map_index": map_index}
        for tid, classpath, kwargs, dag_id, task_id, map_index in rows
    ]


def _arm(admin: Any, port: int) -> None:
    # No job ends sooner than 6 s after its task deferred. A trigger that fires within about a second of
    # the deferral can meet an Airflow 3.3 scheduler race (the executor's late "success" event for the
    # deferring process, seen while the task is already queued to resume, fails the task): not ours to test.
    admin.configure(public_url=f"http://outuser:{URL_CANARIES[3]}@127.0.0.1:{port}")
    admin.set_next_jobs(prompt_contains="[kill]", queued_seconds=0, processing_seconds=20, count=-1)
    admin.set_next_jobs(prompt_contains="[secrets-slow]", queued_seconds=0, processing_seconds=14, count=-1)
    admin.set_next_jobs(prompt_contains="[secrets]", queued_seconds=0, processing_seconds=6, count=-1)
    admin.set_next_jobs(prompt_contains="[budget]", queued_seconds=0, processing_seconds=6, count=-1)
    # The vendor echoes the key back: in a failed job's error, and in an error of the model catalogue.
    admin.set_next_jobs(prompt_contains="[fail-echo]", fail_with=f"rejected: key {API_KEY_CANARY} may not do this",
                        queued_seconds=0, processing_seconds=6, count=-1)
    admin.add_fault(kind="http", endpoint="models", status=503, times=2,
                    body=f"upstream said: bad token {API_KEY_CANARY}")


def _collect(engine: AirflowEngine, obs: EngineObservation) -> None:
    for dag_id, run_id in obs.runs.items():
        tis = engine.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        for ti in tis["task_instances"]:
            obs.tasks[f"{dag_id}.{ti['task_id']}[{ti['map_index']}]"] = ti
    with contextlib.closing(_db(engine)) as db:
        for dag_id, task_id, map_index, key, value in db.execute(
            "SELECT dag_id, task_id, map_index, key, value FROM xcom"
        ):
            obs.xcoms[(dag_id, task_id, map_index, key)] = json.loads(value) if isinstance(value, str) else value
        for dag_id, task_id, map_index, fields in db.execute(
            "SELECT dag_id, task_id, map_index, rendered_fields FROM rendered_task_instance_fields"
        ):
            text = fields if isinstance(fields, str) else json.dumps(fields)
            obs.rendered_fields[(dag_id, task_id, map_index)] = text
        obs.db_dump = "\n".join(db.iterdump())
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            obs.db_tables[table] = "\n".join(repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))  # noqa: S608
    for path in sorted((engine.home / "logs").rglob("*")):
        if path.is_file():
            obs.task_logs[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for path in sorted(engine.log_dir.glob("*.log")):
        obs.component_logs[str(path)] = path.read_text(encoding="utf-8", errors="replace")


def _run(root: Path) -> EngineObservation:
    from cryptography.fernet import Fernet

    from airflow_provider_seedance.emulator.testing import connection_json, spawn_emulator

    obs = EngineObservation()
    started = time.monotonic()
    fernet_key = Fernet.generate_key().decode()
    with spawn_emulator(time_scale=1.0, api_keys=[API_KEY_CANARY]) as emulator:
        port = int(emulator.base_url.rsplit(":", 1)[1])
        _arm(emulator.admin, port)
        obs.base_url = emulator.base_url
        engine = AirflowEngine(root / "airflow-home", {
            "AIRFLOW_CONN_SEEDANCE_DEFAULT": connection_json(emulator.base_url, API_KEY_CANARY),
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "engine_dags"),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        })
        try:
            engine.cli("db", "migrate")
            for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
                engine.start(component)
            wait_for(engine.healthy, timeout=240, interval=1, what="all Airflow components healthy")
            wait_for(lambda: {d["dag_id"] for d in engine.api("GET", "/dags", params={"limit": 100})["dags"]}
                     >= set(DAGS), timeout=180, interval=1, what="the engine DAGs parsed")
            for number, dag_id in enumerate(DAGS):
                engine.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
                obs.runs[dag_id] = engine.trigger(dag_id, f"engine_{dag_id}", f"2026-02-0{number + 1}T00:00:00Z")
            secrets_run = obs.runs["seedance_engine_secrets"]
            engine.watch_states("seedance_engine_secrets", secrets_run, "deferrable_i2v",
                                until={"deferred", "success", "failed"}, timeout=240)
            # The trigger rows exist only while their tasks are deferred: read them now.
            wait_for(lambda: _trigger_rows(engine, fernet_key), timeout=60, what="trigger rows in the DB")
            time.sleep(2)  # let the other deferrable tasks reach the triggerer too
            obs.trigger_rows = _trigger_rows(engine, fernet_key)

            def finished() -> bool:
                for dag_id, run_id in obs.runs.items():
                    state = engine.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
                    obs.run_states[dag_id] = state
                return all(s in ("success", "failed") for s in obs.run_states.values())

            wait_for(finished, timeout=420, interval=1, what="the engine DAG runs to finish")
            time.sleep(3)  # the triggerer's and scheduler's last log lines
            _collect(engine, obs)
        finally:
            engine.stop_all()
        obs.requests = emulator.admin.requests()
        obs.jobs = emulator.admin.jobs()
        obs.stats = emulator.admin.stats()
    obs.seconds = round(time.monotonic() - started, 1)
    return obs


@functools.cache
def observe_engine() -> EngineObservation:
    """Start the engine and the emulator, run the three DAGs, collect everything, stop (once per process).

    The engine's files are removed when the process exits, unless ``SEEDANCE_KEEP_TEST_FILES=1``.
    """
    root = Path(tempfile.mkdtemp(prefix="seedance-engine-"))
    if os.environ.get("SEEDANCE_KEEP_TEST_FILES") != "1":
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    obs = _run(root)
    print(f"\n[engine] three DAG runs observed in {obs.seconds:.0f} s (files under {root})")
    return obs


def kill_row(obs: EngineObservation) -> dict[str, Any]:
    """The fault-matrix row of ``worker-killed-after-submit`` (same keys as ``fault_harness.observe``).

    :param obs: the engine run.
    """
    dag_id = "seedance_engine_kill"
    ti = obs.task(dag_id, "generate")
    jobs = obs.jobs_of(dag_id)
    ids = {j["requestId"] for j in jobs}
    known = {obs.xcom(dag_id, "generate", "request_id")}
    mine = [r for r in obs.requests if r["requestId"] in ids or r in obs.submits_of(dag_id)]
    return {
        "name": "worker-killed-after-submit",
        "title": "worker SIGKILLed right after the request id was saved (retries=1)",
        "path": "engine",
        "state": ti["state"],
        "tries": ti["try_number"],
        "error": None,
        "cause": None,
        "errors_by_try": [],
        "return_value": obs.xcom(dag_id, "generate"),
        "output_url": obs.xcom(dag_id, "generate", "output_url"),
        "posts": len(obs.submits_of(dag_id)),
        "jobs": len(jobs),
        "duplicates": max(0, len(jobs) - 1),
        "orphans": sum(1 for j in jobs if j["requestId"] not in known),
        "left_running": sum(1 for j in jobs if j["status"] in ("queued", "processing")),
        "cancels": sum(1 for r in mine if r["endpoint"] == "cancel"),
        # Catalogue reads cannot be told apart between the engine's DAGs: two per try at most.
        "requests": len(mine) + 2 * ti["try_number"],
        "min_submit_gap": None,
        "base_url": obs.base_url,
        "secrets": [API_KEY_CANARY],
    }
