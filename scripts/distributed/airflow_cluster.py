"""The Airflow side of the run: environment, components, REST API (JWT) and metadata DB queries."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from processes import ProcessRegistry, Service

__all__ = ["AirflowCluster", "ClusterSettings", "wait_for"]

HERE = Path(__file__).resolve().parent
ENV_SCRIPT = HERE / "airflow_env.sh"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``predicate`` until it returns something truthy.

    :param predicate: the check.
    :param timeout: seconds before ``TimeoutError`` naming ``what``.
    :param what: what is awaited.
    :param interval: seconds between checks.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class ClusterSettings:
    """The knobs of the run that end up in ``airflow_env.sh``'s inputs.

    :param triggerer_capacity: ``[triggerer] capacity``.
    :param triggerer_health_check_threshold: ``[triggerer] triggerer_health_check_threshold`` (s).
    :param worker_concurrency: ``[celery] worker_concurrency``.
    :param task_heartbeat_timeout: ``[scheduler] task_instance_heartbeat_timeout`` (s).
    """

    triggerer_capacity: int = 100
    triggerer_health_check_threshold: int = 15
    worker_concurrency: int = 3
    task_heartbeat_timeout: int = 20


def source_env(inputs: dict[str, str]) -> dict[str, str]:
    """Run ``airflow_env.sh`` with ``inputs`` and return the environment it exports.

    :param inputs: the script's ``DIST_*`` inputs and ``AIRFLOW_HOME``.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    base.update(inputs)
    out = subprocess.run(["bash", "-c", 'set -euo pipefail; set -a; source "$0"; set +a; env -0', str(ENV_SCRIPT)],
                         env=base, capture_output=True, check=True)
    env = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in env.items() if not k.startswith("DIST_")}


class AirflowCluster:
    """api-server, scheduler, dag-processor, Celery workers and triggerers sharing one environment.

    :param registry: the process registry.
    :param home: AIRFLOW_HOME (created).
    :param env: the full environment of every component (from :func:`source_env`).
    :param api_port: the api-server's port.
    :param admin_password: password of the REST API user ``admin``.
    """

    def __init__(self, registry: ProcessRegistry, home: Path, env: dict[str, str], api_port: int,
                 admin_password: str) -> None:
        self.registry = registry
        self.home = home
        self.env = env
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.api_port = api_port
        self.http = requests.Session()
        (home / "passwords.json").write_text(json.dumps({"admin": admin_password}), encoding="utf-8")
        (home / "passwords.json").chmod(0o600)
        self._admin_password = admin_password
        #: triggerer component name -> its job id in the metadata DB
        self.triggerer_jobs: dict[str, int] = {}
        self._dsn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")

    # -- components ----------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 600) -> str:
        """Run one ``airflow`` CLI command to completion (own process group, recorded while it runs).

        :param args: its arguments.
        :param timeout: seconds.
        """
        name = "cli-" + "-".join(args[:2])
        service = self.registry.start(name, [AIRFLOW, *args], env=self.env)
        try:
            code = service.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.registry.stop(name)
            raise TimeoutError(f"airflow {' '.join(args)} took more than {timeout:.0f} s") from None
        if code != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed with code {code}:\n{service.log_tail(60)}")
        self.registry.stop(name)  # reaps anything it left behind
        return service.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, name: str) -> Service:
        """Start one component; the name says which (``worker-1``, ``triggerer-2``...).

        :param name: ``api-server``, ``scheduler``, ``dag-processor``, ``worker-N`` or ``triggerer-N``.
        """
        if name == "api-server":
            cmd = [AIRFLOW, "api-server", "--port", str(self.api_port)]
        elif name in ("scheduler", "dag-processor"):
            cmd = [AIRFLOW, name]
        elif name.startswith("worker-"):
            # Both workers on one host: distinct Celery node names; the log-serving sidecar is skipped
            # (every component here reads task logs from the same local folder; on several machines keep
            # it, each worker on [logging] worker_log_server_port).
            cmd = [AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs",
                   "--without-mingle", "--without-gossip"]
        elif name.startswith("triggerer-"):
            cmd = [AIRFLOW, "triggerer", "--skip-serve-logs"]
        else:
            raise ValueError(f"unknown component {name!r}")
        return self.registry.start(name, cmd, env=self.env)

    def worker_ready(self, name: str) -> bool:
        """The Celery worker logged that it is ready for tasks.

        :param name: ``worker-N``.
        """
        service = self.registry.services[name]
        if service.popen.poll() is not None:
            raise RuntimeError(f"{name} exited with code {service.popen.returncode}:\n{service.log_tail()}")
        text = service.log_path.read_text(encoding="utf-8", errors="replace")
        return re.search(r"\bready\.", text) is not None

    def check_alive(self, *names: str) -> None:
        """Raise with the log tail when one of these components has exited.

        :param names: component names.
        """
        for name in names:
            service = self.registry.services[name]
            if service.popen.poll() is not None:
                raise RuntimeError(f"{name} exited with code {service.popen.returncode}:\n{service.log_tail()}")

    # -- REST API ------------------------------------------------------------------------------

    def login(self) -> None:
        """Get a JWT for ``admin`` from the simple auth manager and use it for every call."""
        resp = self.http.post(f"{self.api_url}/auth/token", timeout=30,
                              json={"username": "admin", "password": self._admin_password})
        if resp.status_code >= 400:
            raise RuntimeError(f"POST /auth/token -> HTTP {resp.status_code}: {resp.text[:500]}")
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2`` + path; raise with the body on errors.

        :param method: HTTP method.
        :param path: path under ``/api/v2``.
        :param kwargs: ``requests`` arguments.
        """
        resp = self.http.request(method, f"{self.api_url}/api/v2{path}", timeout=30, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:1000]}")
        return resp.json() if resp.content else None

    def healthy(self) -> bool:
        """The api-server answers and reports scheduler, triggerer, dag-processor and DB healthy."""
        try:
            health = self.http.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        return all((health.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    def dag_ids(self) -> set[str]:
        """DAGs the api-server knows (parsed by the dag-processor)."""
        return {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG.

        :param dag_id: the DAG.
        """
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger a run now; return its run id.

        :param dag_id: the DAG.
        :param conf: run configuration (params).
        """
        body = {"logical_date": None, "conf": conf}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (mapped ones included).

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        found: list[dict[str, Any]] = []
        while True:  # the API serves at most [api] maximum_page_limit (100) per page
            page = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 100, "offset": len(found), "order_by": "id"})
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def run_state(self, dag_id: str, run_id: str) -> str:
        """State of a DAG run.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    # -- metadata DB -----------------------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read from the metadata DB (the tables the triggerers themselves use).

        :param sql: a SELECT.
        :param params: its parameters.
        """
        import psycopg2

        with psycopg2.connect(self._dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        conn.close()
        return rows

    def triggerer_job_ids(self) -> list[int]:
        """Ids of the triggerer jobs that have not ended, oldest first."""
        rows = self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL ORDER BY id")
        return [job_id for (job_id,) in rows]

    def start_triggerer(self, name: str, timeout: float = 120) -> int:
        """Start a triggerer and return its job id (the ``triggerer_id`` of the triggers it holds).

        The job table records no pid and every triggerer here has the same hostname, so triggerers
        are started one at a time and each is matched to the job row that appears after its start.

        :param name: ``triggerer-N``.
        :param timeout: seconds for its job row to appear.
        """
        before = set(self.triggerer_job_ids())
        self.start(name)

        def new_job() -> list[int]:
            self.check_alive(name)
            return sorted(set(self.triggerer_job_ids()) - before)

        job_id = wait_for(new_job, timeout=timeout, what=f"{name}'s job row")[0]
        self.triggerer_jobs[name] = job_id
        return job_id

    def trigger_assignments(self, dag_id: str, run_id: str) -> list[tuple[int, int | None, str, int]]:
        """Triggers of a run's deferred tasks: (trigger id, triggerer job id, task id, map index).

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return [(tid, job, task, idx) for tid, job, task, idx in self.query(
            "SELECT t.id, t.triggerer_id, ti.task_id, ti.map_index FROM trigger t "
            "JOIN task_instance ti ON ti.trigger_id = t.id WHERE ti.dag_id = %s AND ti.run_id = %s",
            (dag_id, run_id))]


def new_secret() -> str:
    """A random URL-safe secret."""
    return secrets.token_urlsafe(24)
