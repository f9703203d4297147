"""Run the fault matrix: each scenario as a real DAG run (``DAG.test()``) against the emulator's fault injection.

Used by ``benchmarks/fault_matrix.py`` and, in a subprocess, by ``tests/faults/test_fault_matrix.py``::

    python tests/faults/fault_harness.py --json rows.json [--only 429-submit-backoff,failed-job]

Each scenario: reset the emulator, arm its faults and job behaviours, run its DAG to the end, then read
the task's state and XComs from the metadata DB, its failure text from its failure callback, and count at
the emulator what was sent and what exists (see the counting rules in ``fault_scenarios``).

Two scenarios need a hand inside Airflow's own test runner (never inside the code under test): the
function ``DAG.test()`` uses to run a trigger inline is wrapped, to arm a request-scoped fault once the
request id is known (the task is deferred), and to play a triggerer restart: the first trigger is
cancelled mid-wait and ``cleanup()`` runs (what a stopping triggerer does), then a new one is built from
the serialized kwargs and run in a new event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fault_scenarios import (  # noqa: E402 - after the path set-up, on purpose
    CONN_DEFAULT,
    CONN_SHORT_TIMEOUT,
    CONN_WRONG_KEY,
    SCENARIOS,
    TIME_SCALE,
    Scenario,
    dag_id_of,
)

__all__ = ["DAGS_DIR", "main", "run_matrix", "set_connections"]

DAGS_DIR = HERE / "dags"
ACTIVE = ("queued", "processing")


def set_connections(emu: Any) -> dict[str, str]:
    """Define the matrix's connections (environment variables of this process) and return them.

    :param emu: the emulator handle.
    """

    def conn(password: str, **extra: Any) -> str:
        return json.dumps({"conn_type": "seedance", "host": emu.base_url, "password": password, "extra": extra})

    env = {
        "AIRFLOW_CONN_" + CONN_DEFAULT.upper(): emu.connection_json,
        "AIRFLOW_CONN_" + CONN_SHORT_TIMEOUT.upper(): conn(emu.api_key, timeout=0.5),
        "AIRFLOW_CONN_" + CONN_WRONG_KEY.upper(): conn("sd2_test_this_key_is_wrong"),
    }
    os.environ.update(env)
    return env


def _with_rid(spec: dict[str, Any], rid: str | None) -> dict[str, Any]:
    return {k: (rid if v == "{rid}" else v) for k, v in spec.items()}


def _submit_for_sensor(emu: Any) -> str:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.models import GenerationRequest

    with SeedanceHook(CONN_DEFAULT) as hook:
        return hook.submit(GenerationRequest(prompt="[harness] a job for the sensor")).request_id


async def _first_triggerer(trigger: Any, emu: Any, seen: dict[str, Any]) -> None:
    """Run ``trigger`` until it has polled twice, then stop it like a triggerer shutting down."""
    runner = asyncio.ensure_future(trigger.run().__anext__())
    rid = trigger.request_id
    deadline = time.monotonic() + 20
    while sum(1 for r in emu.admin.requests(endpoint="status") if r["requestId"] == rid) < 3:
        if runner.done() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    seen["restarted_while"] = emu.admin.job(rid)["status"]
    seen["fired_before_restart"] = runner.done()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await runner
    await trigger.cleanup()


@contextlib.contextmanager
def _inline_trigger_hook(scenario: Scenario, emu: Any, seen: dict[str, Any]) -> Iterator[None]:
    if not scenario.faults_while_deferred and not scenario.restart_triggerer:
        yield
        return
    import airflow.sdk.definitions.dag as dag_module
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    original = dag_module._run_inline_trigger

    def run_inline(trigger: Any, ti: Any) -> Any:
        for spec in scenario.faults_while_deferred:
            emu.admin.add_fault(**_with_rid(spec, trigger.request_id))
        if scenario.restart_triggerer:
            asyncio.run(_first_triggerer(trigger, emu, seen))
            classpath, kwargs = trigger.serialize()
            recreated = import_string(classpath)(**deserialize(serialize(kwargs)))
            seen["deadline_kept"] = (recreated.deadline, recreated.started_at) == (trigger.deadline, trigger.started_at)
            trigger = recreated
        return original(trigger, ti)

    dag_module._run_inline_trigger = run_inline
    try:
        yield
    finally:
        dag_module._run_inline_trigger = original


def _events(path: Path, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [e for e in lines if e["dag_id"] == dag_id and e["run_id"] == run_id]


def _lineage_dag(body: Any) -> str | None:
    try:
        return body["metadata"]["airflow"]["dag_id"]
    except (TypeError, KeyError):
        return None


def observe(scenario: Scenario, emu: Any, run: Any, started: float, events_path: Path,
            seen: dict[str, Any]) -> dict[str, Any]:
    """Everything the report and the checks need about one finished scenario.

    :param scenario: the scenario.
    :param emu: the emulator handle.
    :param run: the DAG run (``airflow_inprocess.DagRunView``).
    :param started: epoch seconds the run started (the emulator's log is filtered by it).
    :param events_path: the failure-callback events file.
    :param seen: what the trigger wrapper observed.
    """
    dag_id = dag_id_of(scenario)
    task_id = "wait" if scenario.path == "sensor" else "generate"

    def mine(job: dict[str, Any]) -> bool:
        return _lineage_dag(job["request"]) == dag_id

    # Jobs that would end by themselves get their normal lifetime; a job still active after that is stuck.
    deadline = time.monotonic() + 3.0
    while any(j["status"] in ACTIVE and not (j.get("behaviour") or {}).get("never_finishes")
              for j in emu.admin.jobs()) and time.monotonic() < deadline:
        time.sleep(0.05)
    jobs = [j for j in emu.admin.jobs() if mine(j)]
    log = [r for r in emu.admin.requests() if r["time"] >= started and r["endpoint"] != "files"]
    submits = [r for r in log if r["endpoint"] == "submit" and _lineage_dag(r["body"]) == dag_id]
    ti = run.task(task_id)
    known = {run.xcom(task_id, "request_id"), (run.task_state(task_id, "seedance_job") or {}).get("request_id")}
    events = _events(events_path, dag_id, run.run_id)
    times = [r["time"] for r in submits]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "name": scenario.name,
        "title": scenario.title,
        "path": scenario.path,
        "state": ti["state"],
        "tries": ti["try_number"],
        "error": events[-1]["error"] if events and ti["state"] != "success" else None,
        "cause": events[-1].get("cause") if events and ti["state"] != "success" else None,
        "errors_by_try": [e["error"] for e in events],
        "return_value": run.xcom(task_id),
        "output_url": run.xcom(task_id, "output_url"),
        "credits_charged": run.xcom(task_id, "credits_charged"),
        "posts": len(submits),
        "jobs": len(jobs),
        "duplicates": max(0, len(jobs) - 1),
        "orphans": sum(1 for j in jobs if j["requestId"] not in known),
        "left_running": sum(1 for j in jobs if j["status"] in ACTIVE),
        "cancels": sum(1 for r in log if r["endpoint"] == "cancel"),
        "requests": len(log),
        "faults_injected": emu.admin.stats()["faults_injected"],
        "min_submit_gap": min(gaps) if gaps else None,
        "base_url": emu.base_url,
        "secrets": [emu.api_key],
        **seen,
    }


def run_scenario(scenario: Scenario, emu: Any, dags: dict[str, Any], events_path: Path) -> dict[str, Any]:
    """Provoke one scenario and observe it.

    :param scenario: the scenario.
    :param emu: the emulator handle.
    :param dags: DAG id -> DAG.
    :param events_path: the failure-callback events file.
    """
    from airflow_inprocess import run_dag

    admin = emu.admin
    admin.reset()
    admin.configure(time_scale=TIME_SCALE, **scenario.configure)
    conf = None
    rid = None
    if scenario.path == "sensor":
        rid = _submit_for_sensor(emu)
        conf = {"request_id": rid}
    for spec in scenario.faults:
        admin.add_fault(**_with_rid(spec, rid))
    for behaviour in scenario.next_jobs:
        admin.set_next_jobs(**behaviour)
    seen: dict[str, Any] = {}
    started = time.time()
    clock = time.monotonic()
    with _inline_trigger_hook(scenario, emu, seen):
        run = run_dag(dags[dag_id_of(scenario)], conf)
    seen["seconds"] = round(time.monotonic() - clock, 2)
    return observe(scenario, emu, run, started, events_path, seen)


def run_matrix(only: set[str] | None = None, *, work: Path) -> list[dict[str, Any]]:
    """Run the in-process scenarios (``path`` other than ``engine``); Airflow must be prepared already.

    :param only: scenario names to run (None: all).
    :param work: a folder for the events file.
    """
    from airflow_inprocess import load_dags

    from airflow_provider_seedance.emulator.testing import run_emulator

    events_path = work / "failure-events.jsonl"
    os.environ["SEEDANCE_FAULT_EVENTS"] = str(events_path)
    dags = load_dags(DAGS_DIR)
    rows = []
    with run_emulator(time_scale=TIME_SCALE) as emu:
        set_connections(emu)
        for scenario in SCENARIOS:
            if scenario.path == "engine" or (only and scenario.name not in only):
                continue
            rows.append(run_scenario(scenario, emu, dags, events_path))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: run the in-process matrix in a fresh AIRFLOW_HOME and write the rows as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the rows")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args(argv)
    from airflow_inprocess import prepare, quiet_fds

    work = Path(tempfile.mkdtemp(prefix="seedance-fault-matrix-"))
    if os.environ.get("SEEDANCE_KEEP_TEST_FILES") != "1":  # kept: the Airflow output, for a failing row
        atexit.register(shutil.rmtree, work / "airflow-home", ignore_errors=True)
    prepare(work / "airflow-home", DAGS_DIR)
    only = {n.strip() for n in args.only.split(",") if n.strip()} or None
    with quiet_fds(work / "airflow-output.log"):
        rows = run_matrix(only, work=work)
    args.json.write_text(json.dumps({"rows": rows, "log": str(work / "airflow-output.log")}, indent=1))
    print(f"{len(rows)} scenarios; Airflow output in {work / 'airflow-output.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
