"""``make e2e-distributed``: the provider on a real distributed Airflow, on this machine (127.0.0.1 only).

Brings up PostgreSQL and Redis (OS packages, throwaway data directories), the Seedance emulator,
and Airflow with the CeleryExecutor: api-server, scheduler, dag-processor, two Celery workers, two
triggerers. Configuration: ``airflow_env.sh`` beside this file. Then runs the scenarios of
``scenarios.py`` and prints the figures. Every process is recorded by pid (``<run dir>/pids.json``)
and stopped by pid / process group at the end, on success and on failure; the run ends by checking
that none of them is left. Exit code 0 only when every assertion held and nothing was left running.

    python scripts/distributed/run_e2e.py [--rows 50] [--job-seconds 72] [--keep] [--only SCENARIO]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from airflow_cluster import AirflowCluster, ClusterSettings, new_secret, source_env, wait_for
from processes import ProcessRegistry
from scenarios import (
    BACKFILL_DAG,
    DEFERRED_DAG,
    WORKER_DAG,
    Context,
    backfill_with_triggerer_failover,
    mark_failed_cancels,
    worker_kill_resumes,
)
from system_services import ensure_os_packages, free_port, start_postgres, start_redis

from airflow_provider_seedance.emulator.testing import spawn_emulator

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer-1", "triggerer-2", "worker-1", "worker-2")
#: Stop order: nothing new gets scheduled, then the workers and triggerers, the API last among Airflow.
STOP_ORDER = ("scheduler", "dag-processor", "worker-1", "worker-2", "triggerer-1", "triggerer-2", "api-server",
              "emulator", "redis", "postgres")


class Interrupted(BaseException):
    """SIGTERM/SIGHUP to the driver: unwind through the cleanup like Ctrl-C does."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise Interrupted(f"received signal {signal.Signals(signum).name}")


def _shield_cleanup() -> None:
    """From here on the cleanup runs to its end: a second Ctrl-C or SIGTERM must not cut it short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def check_python_deps() -> None:
    """The Celery provider, Celery and a PostgreSQL driver must be in this venv (the make target installs them)."""
    import importlib.util

    missing = [mod for mod in ("airflow.providers.celery", "celery", "psycopg2", "psutil")
               if importlib.util.find_spec(mod) is None]
    if missing:
        raise SystemExit(f"missing Python packages ({', '.join(missing)}): run `make e2e-distributed`, or pip "
                         "install 'apache-airflow[celery,postgres]==<your Airflow version>' 'celery[redis]>=5.5,<5.7'")


def build_dags_folder(target: Path, rows: int) -> None:
    """The DAG files every component parses: the backfill example, its table, and the probe DAGs.

    The example creates its asset table (in the ``seedance_asset_db`` connection's database: the cluster's
    PostgreSQL here) from ``data/products.csv`` beside its own file when the table does not exist, so the
    unchanged example file is copied next to a generated seed of ``rows`` rows.

    :param target: the folder (created).
    :param rows: rows of the generated table.
    """
    (target / "data").mkdir(parents=True)
    shutil.copy2(REPO / "dags" / f"{BACKFILL_DAG}.py", target / f"{BACKFILL_DAG}.py")
    for probe in (HERE / "dags").glob("*.py"):
        shutil.copy2(probe, target / probe.name)
    subjects = ["ceramic mug", "canvas backpack", "desk lamp", "leather wallet", "running shoe", "wool scarf",
                "glass teapot", "wooden chair", "steel watch", "linen shirt"]
    with (target / "data" / "products.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product_id", "image_url", "prompt"])
        for i in range(rows):
            sku = f"sku-{2001 + i}"
            writer.writerow([sku, f"https://example.com/products/{sku}.jpg",
                             f"The {subjects[i % len(subjects)]} ({sku}) turns slowly on a table, soft studio light"])


def start_cluster(registry: ProcessRegistry, run_dir: Path, emulator_env: dict[str, str],
                  settings: ClusterSettings, rows: int) -> AirflowCluster:
    """PostgreSQL, Redis, db migrate, the pool, then the seven Airflow components; wait until usable.

    :param registry: the process registry.
    :param run_dir: the run directory.
    :param emulator_env: the Seedance connection for every component.
    :param settings: cluster knobs.
    :param rows: rows of the backfill table.
    """
    t0 = time.monotonic()
    pg_password, redis_password = new_secret(), new_secret()
    pg_port = start_postgres(registry, run_dir / "postgres", pg_password)
    redis_port = start_redis(registry, run_dir / "redis", redis_password)
    print(f"==> PostgreSQL on 127.0.0.1:{pg_port}, Redis on 127.0.0.1:{redis_port} "
          f"({time.monotonic() - t0:.1f} s)", flush=True)
    from cryptography.fernet import Fernet

    home, dags = run_dir / "airflow-home", run_dir / "dags"
    home.mkdir()
    build_dags_folder(dags, rows)
    api_port = free_port()
    env = source_env({
        "AIRFLOW_HOME": str(home), "DIST_DAGS_FOLDER": str(dags),
        "DIST_PG_PORT": str(pg_port), "DIST_PG_PASSWORD": pg_password,
        "DIST_REDIS_PORT": str(redis_port), "DIST_REDIS_PASSWORD": redis_password,
        "DIST_API_PORT": str(api_port), "DIST_JWT_SECRET": new_secret() + new_secret(),
        "DIST_FERNET_KEY": Fernet.generate_key().decode(),
        "DIST_TRIGGERER_CAPACITY": str(settings.triggerer_capacity),
        "DIST_TRIGGERER_HEALTH_CHECK_THRESHOLD": str(settings.triggerer_health_check_threshold),
        "DIST_WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "DIST_TASK_HEARTBEAT_TIMEOUT": str(settings.task_heartbeat_timeout),
    })
    env.update(emulator_env)
    env["AIRFLOW_VAR_SEEDANCE_VIDEO_DIR"] = str(run_dir / "videos")
    # The asset table lives in the cluster's PostgreSQL, read and written by every worker.
    env["AIRFLOW_CONN_SEEDANCE_ASSET_DB"] = json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": pg_port, "login": "airflow",
        "password": pg_password, "schema": "airflow"})
    cluster = AirflowCluster(registry, home, env, api_port, admin_password=new_secret())
    cluster.cli("db", "migrate")
    # Deferred generations count against the pool (--include-deferred), as the vendor counts running jobs:
    # enough slots for every row to be in flight at once.
    cluster.cli("pools", "set", "seedance", str(max(rows, 1)), "Seedance generations in flight", "--include-deferred")
    print(f"==> metadata DB migrated ({time.monotonic() - t0:.1f} s)", flush=True)
    for name in COMPONENTS:
        if not name.startswith("triggerer-"):
            cluster.start(name)
    for name in COMPONENTS:
        if name.startswith("triggerer-"):
            cluster.start_triggerer(name)

    def healthy() -> bool:
        cluster.check_alive(*COMPONENTS)
        return cluster.healthy()

    wait_for(healthy, timeout=240, interval=1, what="api-server, scheduler, dag-processor and triggerers healthy")
    wait_for(lambda: cluster.worker_ready("worker-1") and cluster.worker_ready("worker-2"), timeout=120,
             what="both Celery workers ready")
    cluster.login()
    wanted = {BACKFILL_DAG, WORKER_DAG, DEFERRED_DAG}
    wait_for(lambda: wanted <= cluster.dag_ids(), timeout=180, interval=1, what=f"DAGs {sorted(wanted)} parsed")
    print(f"==> cluster up: {', '.join(COMPONENTS)} ({time.monotonic() - t0:.1f} s)", flush=True)
    return cluster


def print_figures(figures: dict[str, Any], registry: ProcessRegistry, settings: ClusterSettings) -> None:
    """The figures the issue asks for, plus the settings that produced them.

    :param figures: what the scenarios measured (memory peaks are added here).
    :param registry: for peak memory.
    :param settings: the knobs.
    """
    for name in ("triggerer-1", "triggerer-2", "worker-1", "worker-2"):
        service = registry.services.get(name)
        if service is not None:
            figures[f"peak_rss_mib_{name}"] = round(service.peak_rss / 2**20)
            figures[f"peak_pss_mib_{name}"] = round(service.peak_pss / 2**20)
    print("\n==================== e2e-distributed figures ====================")
    for key, value in figures.items():
        print(f"  {key:36} {value}")
    print("  (memory: whole process tree of the component, sampled every 0.5 s; RSS counts pages shared by")
    print("   forked children once per process, PSS splits them)")
    print(f"  takeover of a dead triggerer's triggers ~= [triggerer] triggerer_health_check_threshold "
          f"({settings.triggerer_health_check_threshold} s) - age of its last heartbeat at death (written every "
          "[triggerer] job_heartbeat_sec = 2 s) + up to one triggerer loop (~1 s; "
          "[triggerer] max_trigger_to_select_per_loop = 10 claimed per loop)")
    print(f"  a dead worker's task is failed after [scheduler] task_instance_heartbeat_timeout "
          f"({settings.task_heartbeat_timeout} s, checked every task_instance_heartbeat_timeout_detection_interval "
          "= 5 s), then retried after its retry_delay")
    print("==================================================================", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run everything; 0 when every scenario passed and nothing was left running.

    :param argv: command line.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50, help="rows of the backfill table (default 50)")
    parser.add_argument("--job-seconds", type=float, default=72.0,
                        help="how long a backfill job takes at the emulator (queued 1/6, processing 5/6; default 72: "
                             "every row must still be waiting when the last one defers, ~45 s here)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs) even on success")
    parser.add_argument("--only", choices=("backfill", "worker-kill", "mark-failed"), action="append",
                        help="run only these scenarios (default: all)")
    args = parser.parse_args(argv)
    check_python_deps()
    started = time.monotonic()
    settings = ClusterSettings()
    run_dir = Path(tempfile.mkdtemp(prefix="seedance-e2e-distributed-"))
    run_dir.chmod(0o711)  # the postgres user must reach its data directory inside
    print(f"==> run directory {run_dir} (process list: {run_dir / 'pids.json'})", flush=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    registry = ProcessRegistry(run_dir)
    figures: dict[str, Any] = {}
    failed: str | None = None
    try:
        ensure_os_packages()
        with spawn_emulator(time_scale=1.0) as emulator:
            assert emulator.process is not None
            registry.adopt("emulator", emulator.process, run_dir / "logs" / "emulator.log")  # type: ignore[arg-type]
            try:
                cluster = start_cluster(registry, run_dir, emulator.env, settings, args.rows)
                queued = round(args.job_seconds / 6, 1)
                ctx = Context(cluster, emulator.admin, registry, args.rows, (queued, args.job_seconds - queued),
                              run_dir / "videos", figures)
                figures["cluster_up_s"] = round(time.monotonic() - started, 1)
                steps = [("backfill", "1+2: backfill over the rows, deferred; SIGKILL a triggerer mid-wait",
                          backfill_with_triggerer_failover),
                         ("worker-kill", "3: SIGKILL the Celery worker waiting for a submitted generation",
                          worker_kill_resumes),
                         ("mark-failed", "4: mark a deferred task failed through the REST API",
                          mark_failed_cancels)]
                for key, title, scenario in steps:
                    if args.only and key not in args.only:
                        continue
                    print(f"==> scenario {title}", flush=True)
                    scenario(ctx)
            finally:
                _shield_cleanup()
                # Airflow first, while the emulator still answers; spawn_emulator stops it by pid afterwards.
                for name in STOP_ORDER[:-3]:
                    if name in registry.services:
                        registry.stop(name)
    except (Exception, KeyboardInterrupt, Interrupted) as exc:
        failed = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        _shield_cleanup()
        problems = registry.stop_all(order=STOP_ORDER)
        survivors = registry.survivors()
    figures["wall_time_s"] = round(time.monotonic() - started, 1)
    print_figures(figures, registry, settings)
    print(f"==> stopped {registry.recorded_count()} recorded processes; left running: {survivors or 'none'}")
    (run_dir / "figures.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    if problems:
        print("==> cleanup problems: " + "; ".join(problems))
    if failed or survivors:
        print(f"FAILED: {failed or 'processes left running'}\nlogs: {run_dir / 'logs'}", file=sys.stderr)
        for name in ("scheduler", "triggerer-1", "triggerer-2", "worker-1", "worker-2", "api-server"):
            service = registry.services.get(name)
            if service is not None and failed:
                print(f"---- last lines of {name} ----\n{service.log_tail(15)}", file=sys.stderr)
        return 1
    if args.keep:
        print(f"==> kept {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
