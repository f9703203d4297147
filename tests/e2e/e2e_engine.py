"""A real Airflow engine for end-to-end tests: scheduler, dag-processor, triggerer and api-server as processes.

Each component is its own ``airflow`` process (in its own process group), so a test can stop and
restart just the triggerer. This is what ``airflow standalone`` runs, minus the single parent process.
SQLite + LocalExecutor in a temporary ``AIRFLOW_HOME``; the REST API is on a free port with the simple
auth manager in all-admins mode (no login needed on 127.0.0.1).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = [str(Path(sys.executable).with_name("airflow"))]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Slots of the backfill DAG's "seedance" pool: 2 generations in flight at most, deferred ones included.
POOL_SLOTS = 2
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], *, timeout: float, interval: float = 0.5, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s.

    :param predicate: the check.
    :param timeout: seconds.
    :param interval: seconds between checks.
    :param what: what was awaited (for the error).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class AirflowEngine:
    """The four Airflow components, their logs, and a REST client.

    :param home: the AIRFLOW_HOME (created).
    :param extra_env: environment added to every component (connections, variables...).
    """

    def __init__(self, home: Path, extra_env: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.log_dir = home / "process-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        self.env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Shared by every component: the scheduler signs task tokens the api-server checks.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Not the default 8793/8794: another Airflow on this machine must not make ours fail to bind.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update(extra_env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log_files: dict[str, list[Path]] = {}
        self.http = requests.Session()

    # -- processes -----------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run one ``airflow`` CLI command to completion; return its output.

        :param args: the command's arguments.
        :param timeout: seconds.
        """
        proc = subprocess.run([*AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False, start_new_session=True)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout

    def start(self, component: str) -> subprocess.Popen[bytes]:
        """Start one component in its own process group, logging to ``process-logs/<name>-<n>.log``.

        :param component: one of :data:`COMPONENTS`.
        """
        logs = self.log_files.setdefault(component, [])
        path = self.log_dir / f"{component}-{len(logs) + 1}.log"
        logs.append(path)
        args = [component, "--port", str(self.port)] if component == "api-server" else [component]
        with path.open("wb") as out:
            proc = subprocess.Popen([*AIRFLOW, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.processes[component] = proc
        return proc

    def stop(self, component: str, *, graceful_timeout: float = 30) -> int | None:
        """Stop one component: SIGTERM to its main process (a graceful shutdown), then its whole group.

        :param component: the component.
        :param graceful_timeout: seconds allowed for the graceful shutdown before SIGKILL.
        :return: the main process's exit code.
        """
        proc = self.processes.pop(component, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=graceful_timeout)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.wait(timeout=10)
        return proc.returncode

    def stop_all(self) -> None:
        """Stop every component still running (cleanup; never raises)."""
        for component in list(self.processes):
            try:
                self.stop(component, graceful_timeout=15)
            except Exception as exc:  # cleanup goes on for the others
                print(f"[e2e] could not stop {component}: {exc}", file=sys.stderr)

    def log_text(self, component: str, index: int = -1) -> str:
        """A component's log (``index`` picks a restart: 0 = first run, -1 = latest).

        :param component: the component.
        :param index: which run of it.
        """
        return self.log_files[component][index].read_text(encoding="utf-8", errors="replace")

    # -- REST API ------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API (``/api/v2`` + path); raise with the body on errors.

        :param method: HTTP method.
        :param path: path under ``/api/v2``.
        :param kwargs: ``requests`` arguments (``json=``, ``params=``).
        """
        resp = self.http.request(method, f"{self.api_url}/api/v2{path}", timeout=30, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def healthy(self) -> bool:
        """True when the API answers and reports every component healthy."""
        try:
            health = self.http.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        return all(
            (health.get(name) or {}).get("status") == "healthy"
            for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> dict[str, Any]:
        """One task instance as the REST API shows it.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param map_index: for a mapped task.
        """
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        if map_index is not None:
            path += f"/{map_index}"
        return self.api("GET", path)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param key: the XCom key.
        """
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                        params={"deserialize": "true"})["value"]

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, *, map_index: int | None = None,
                     try_number: int = 1) -> dict[int, str]:
        """The logs the triggerer wrote for a task's trigger(s), by triggerer job id.

        The triggerer writes them beside the task's log as ``attempt=N.log.trigger.<triggerer job id>.log``.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param map_index: for a mapped task.
        :param try_number: the try.
        """
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index is not None:
            folder /= f"map_index={map_index}"
        prefix = f"attempt={try_number}.log.trigger."
        return {
            int(path.name[len(prefix):-len(".log")]): path.read_text(encoding="utf-8", errors="replace")
            for path in folder.glob(prefix + "*.log")
        }

    def triggerer_job_ids(self) -> list[int]:
        """Ids of every TriggererJob the metadata DB knows, oldest first."""
        jobs = self.api("GET", "/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
        return sorted(int(job["id"]) for job in jobs)

    def trigger(self, dag_id: str, run_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a DAG run; return its run id.

        :param dag_id: the DAG.
        :param run_id: the run id to use.
        :param logical_date: ISO timestamp.
        :param conf: run configuration.
        """
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def watch_states(self, dag_id: str, run_id: str, task_id: str, *, until: set[str], timeout: float,
                     interval: float = 0.3) -> list[str]:
        """Poll a task instance and return the distinct states it went through, up to one of ``until``.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param until: states that end the watch.
        :param timeout: seconds.
        :param interval: seconds between polls.
        """
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self.task_instance(dag_id, run_id, task_id).get("state")
            except RuntimeError:  # not created yet
                state = None
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if state in until:
                return seen
            time.sleep(interval)
        raise TimeoutError(f"{dag_id}.{task_id} in {run_id} still not in {sorted(until)} (states seen {seen})")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
