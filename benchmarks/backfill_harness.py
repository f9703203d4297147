"""A real Airflow engine running asset backfills against the emulator at the vendor's limits, measured.

Used by ``benchmarks/backfill_bench.py`` (``make bench-backfill``: 1,000 rows, both DAGs, both vendor modes)
and by the real-engine test ``tests/e2e/test_backfill_at_vendor_limits.py`` (50 rows, counts only).

One engine serves every configuration of a run: scheduler, dag-processor, triggerer and api-server as
processes (``tests/e2e/e2e_engine.py``), LocalExecutor, PostgreSQL or SQLite as the metadata DB. Per
configuration the emulator is reset to the vendor mode and the asset table (SQLite) is rewritten with the
same rows, then one DAG run processes the whole table. Jobs get per-row durations drawn once from a
seeded distribution (matched by the ``(sku-...)`` in each prompt), so every configuration renders the
same videos in the same times and the ideal is the same.

What is measured (all from outside the code under test):

- wall time: the DAG run's start to end (Airflow's own timestamps), against the ideal
  ``sum(job durations) / concurrency limit``;
- the emulator's counters: POSTs that created a job (per row: duplicates), 429s sent, status GETs per job;
- the table at the end: rows not done (lost);
- task instances: tries beyond the first and failures;
- a sampler (every 0.2 s): worker-slot-seconds (LocalExecutor workers with a task process), CPU seconds
  of every component's process tree, and the number of deferred tasks (peak).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for extra in (REPO / "tests" / "e2e", REPO / "scripts" / "distributed"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from e2e_engine import AirflowEngine, free_port, wait_for  # noqa: E402 - the e2e harness, reused as is

from airflow_provider_seedance.polling import PollSchedule  # noqa: E402

__all__ = ["BackfillStack", "BenchSettings", "RunFigures", "job_durations"]

EXAMPLE_DAG = "example_seedance_asset_backfill"
HTTP_DAG = "bench_http_asset_backfill"
DAG_OF = {"provider": EXAMPLE_DAG, "http": HTTP_DAG}
#: Per-row Airflow overhead with the example's 5 s polling (seconds, not time-scaled): starting the task,
#: submitting, noticing the end (half a polling interval), starting and running the finishing step.
#: Measured by this benchmark (profile "slot_overhead" minus the detection delay, 240 rows, 2 cores).
ROW_OVERHEAD_SECONDS = 6.0
SUBJECTS = ("ceramic mug", "canvas backpack", "desk lamp", "leather wallet", "running shoe", "wool scarf",
            "glass teapot", "wooden chair", "steel watch", "linen shirt")


@dataclass
class BenchSettings:
    """Knobs of a backfill benchmark run (durations and intervals in unscaled vendor seconds).

    :param rows: rows of the asset table.
    :param limit: the vendor's concurrent jobs per API key.
    :param pool_slots: slots of the ``seedance`` pool (deferred tasks included); None = ``limit``.
    :param time_scale: every vendor-side duration and client interval is multiplied by this.
    :param queued: (low, high) seconds a job spends in the vendor's own queue (uniform).
    :param processing_median: median seconds of processing (log-normal).
    :param processing_sigma: log-normal sigma of processing.
    :param processing_bounds: (low, high) clamp of processing seconds.
    :param requests_per_second: the vendor's request-rate limit per key (unscaled: divided by the scale).
    :param retry_after: the ``Retry-After`` the vendor sends with a 429, seconds.
    :param poll_interval: the provider's first polling interval (default: the example DAG's ``POLL_INTERVAL``).
    :param max_poll_interval: the provider's polling cap (default: the example DAG's ``MAX_POLL_INTERVAL``).
    :param queue_pool_slots: the pool in *queue* mode (None: the sizing guide's recipe,
        :meth:`recipe_queue_pool`).
    :param http_poke_interval: the http baseline's fixed poke interval.
    :param http_retry_delay: the http baseline's retry delay after a 429.
    :param parallelism: LocalExecutor worker processes.
    :param metadata_db: ``postgres`` or ``sqlite``.
    :param seed: seed of the duration draw.
    """

    rows: int = 1000
    limit: int = 20
    pool_slots: int | None = None
    time_scale: float = 0.25
    queued: tuple[float, float] = (2.0, 10.0)
    processing_median: float = 60.0
    processing_sigma: float = 0.35
    processing_bounds: tuple[float, float] = (25.0, 180.0)
    requests_per_second: float = 10.0
    retry_after: float = 10.0
    poll_interval: float = field(default_factory=lambda: float(example_constant("POLL_INTERVAL")))
    max_poll_interval: float = field(default_factory=lambda: float(example_constant("MAX_POLL_INTERVAL")))
    queue_pool_slots: int | None = None
    http_poke_interval: float = 5.0
    http_retry_delay: float = 10.0
    parallelism: int = 32
    metadata_db: str = "postgres"
    seed: int = 7

    @property
    def slots(self) -> int:
        """The pool's size in *refuse* mode (and in *queue* mode when ``pool_slots`` is set)."""
        return self.pool_slots if self.pool_slots is not None else self.limit

    def slots_for(self, mode: str) -> int:
        """The pool's size the sizing guide gives for a vendor mode.

        :param mode: ``queue`` or ``refuse``.
        """
        if mode != "queue" or self.pool_slots is not None:
            return self.slots
        return self.queue_pool_slots if self.queue_pool_slots is not None else self.recipe_queue_pool()

    def mean_job_seconds(self) -> float:
        """Mean scaled job duration (queued + processing) of the drawn table."""
        durations = job_durations(self)
        return sum(self.scaled(q + p) for q, p in durations.values()) / max(1, len(durations))

    def recipe_queue_pool(self) -> int:
        """The guide's queue-mode pool: ``limit x (1 + O / D)``, ``O`` the per-row Airflow overhead.

        ``O`` is not time-scaled (Airflow's steps take as long whatever the vendor's durations), so a
        time-scaled run needs relatively more headroom than the same backfill at real durations.
        """
        return math.ceil(self.limit * (1 + ROW_OVERHEAD_SECONDS / self.mean_job_seconds()))

    def scaled(self, seconds: float) -> float:
        """Unscaled vendor seconds to wall seconds of this run.

        :param seconds: unscaled seconds.
        """
        return seconds * self.time_scale


def sku(index: int) -> str:
    """The product id of row ``index`` (fixed width, so the table's order is the index order).

    :param index: 0-based row number.
    """
    return f"sku-{100000 + index}"


def job_durations(settings: BenchSettings) -> dict[str, tuple[float, float]]:
    """Per-row (queued, processing) seconds, unscaled, drawn once from the seeded distribution.

    :param settings: the run's settings.
    """
    rng = random.Random(settings.seed)
    low, high = settings.processing_bounds
    out = {}
    for i in range(settings.rows):
        queued = rng.uniform(*settings.queued)
        processing = min(high, max(low, rng.lognormvariate(math.log(settings.processing_median),
                                                            settings.processing_sigma)))
        out[sku(i)] = (queued, processing)
    return out


def write_table(path: Path, rows: int, create_table: str) -> None:
    """A fresh asset table of ``rows`` rows in a SQLite file (replaced atomically).

    :param path: the database file.
    :param rows: how many rows.
    :param create_table: the example's ``CREATE TABLE`` statement.
    """
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(tmp)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(create_table)
        db.executemany(
            "INSERT INTO products (product_id, image_url, prompt) VALUES (?, ?, ?)",
            [(sku(i), f"https://example.com/products/{sku(i)}.jpg",
              f"The {SUBJECTS[i % len(SUBJECTS)]} ({sku(i)}) turns slowly on a table, soft studio light")
             for i in range(rows)],
        )
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    os.replace(tmp, path)


def table_state(path: Path) -> dict[str, tuple[Any, ...]]:
    """``product_id -> (video_status, request_id, video_uri, credits_charged)`` of every row.

    :param path: the database file.
    """
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT product_id, video_status, request_id, video_uri, credits_charged FROM products")}


def _example_value(name: str) -> Any:
    """The expression assigned to a module-level name of the example DAG (its source: what users get)."""
    import ast

    tree = ast.parse((REPO / "dags" / f"{EXAMPLE_DAG}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return node.value
    raise RuntimeError(f"{name} not found in the example DAG")


def example_constant(name: str) -> Any:
    """A literal module-level constant of the example DAG.

    :param name: the constant's name.
    """
    import ast

    return ast.literal_eval(_example_value(name))


def example_create_table() -> str:
    """The example DAG's ``CREATE TABLE`` (read from the DAG file, so the benchmark uses the same schema)."""
    import ast

    value = _example_value("CREATE_TABLE")
    if not isinstance(value, ast.JoinedStr):  # an f-string with {TABLE}
        raise RuntimeError("CREATE_TABLE of the example DAG is not an f-string any more")
    return "".join(v.value if isinstance(v, ast.Constant) else "products" for v in value.values)


def build_dags_folder(target: Path, settings: BenchSettings) -> None:
    """The example DAG (its client intervals scaled, nothing else changed), its seed data, the http DAG.

    :param target: the folder (created).
    :param settings: the run's settings.
    """
    target.mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(exist_ok=True)
    shutil.copy2(REPO / "dags" / "data" / "products.csv", target / "data" / "products.csv")
    source = (REPO / "dags" / f"{EXAMPLE_DAG}.py").read_text(encoding="utf-8")
    for name, value in (("POLL_INTERVAL", settings.poll_interval), ("MAX_POLL_INTERVAL", settings.max_poll_interval)):
        pattern = re.compile(rf"^{name} = .*$", re.MULTILINE)
        if len(pattern.findall(source)) != 1:
            raise RuntimeError(f"the example DAG changed: cannot scale its {name} for the time scale")
        source = pattern.sub(f"{name} = {settings.scaled(value)!r}", source)
    (target / f"{EXAMPLE_DAG}.py").write_text(source, encoding="utf-8")
    shutil.copy2(HERE / "backfill_dags" / f"{HTTP_DAG}.py", target / f"{HTTP_DAG}.py")


# -- sampling ----------------------------------------------------------------------------------------


class Sampler:
    """Samples the engine's processes and deferred tasks while one DAG run is measured.

    :param engine: the engine.
    :param interval: seconds between samples.
    """

    def __init__(self, engine: AirflowEngine, interval: float = 0.2) -> None:
        self.engine = engine
        self.interval = interval
        self.cpu: dict[str, dict[tuple[int, float], float]] = {}
        self.slot_seconds = 0.0
        self.busy_peak = 0
        self.deferred_peak = 0
        self.deferred_samples: list[int] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.dag_id = ""
        self.run_id = ""

    @staticmethod
    def _cpu_of(proc: psutil.Process, with_children: bool) -> float:
        t = proc.cpu_times()
        total = t.user + t.system
        if with_children:
            total += t.children_user + t.children_system
        return total

    def snapshot(self) -> dict[str, float]:
        """CPU seconds so far per role: scheduler, workers, triggerer, api-server, dag-processor."""
        for component, popen in list(self.engine.processes.items()):
            try:
                root = psutil.Process(popen.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in tree:
                try:
                    if component == "scheduler" and proc.pid != root.pid:
                        # LocalExecutor workers; they fork and reap each task's process (children times).
                        if proc.ppid() != root.pid:
                            continue
                        role, with_children = "workers", True
                    elif component == "scheduler":
                        role, with_children = "scheduler", False
                    else:
                        # The component and its direct children (trigger runner, api workers, parsers);
                        # what they fork and reap shows in their children times.
                        if proc.pid != root.pid and proc.ppid() != root.pid:
                            continue
                        role, with_children = component, True
                    key = (proc.pid, proc.create_time())
                    value = self._cpu_of(proc, with_children)
                except psutil.Error:
                    continue
                self.cpu.setdefault(role, {})[key] = value
        return {role: sum(values.values()) for role, values in self.cpu.items()}

    def _workers(self) -> list[psutil.Process]:
        popen = self.engine.processes.get("scheduler")
        if popen is None:
            return []
        try:
            return psutil.Process(popen.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def _loop_processes(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            busy = 0
            for worker in self._workers():
                try:
                    # A LocalExecutor worker's title names the task it runs, "<idle>" between tasks.
                    title = " ".join(worker.cmdline())
                except psutil.Error:
                    continue
                if "LocalExecutor" in title and "<idle>" not in title:
                    busy += 1
            self.slot_seconds += busy * (now - last)
            self.busy_peak = max(self.busy_peak, busy)
            last = now
            self.snapshot()

    def _loop_deferred(self) -> None:
        while not self._stop.wait(1.0):
            if not self.run_id:
                continue
            try:
                answer = self.engine.api("GET", f"/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances",
                                         params={"state": "deferred", "limit": 1})
            except Exception:  # noqa: S112 - a slow answer under load: the next sample counts
                continue
            count = int(answer.get("total_entries", 0))
            self.deferred_samples.append(count)
            self.deferred_peak = max(self.deferred_peak, count)

    def start(self) -> None:
        """Start sampling."""
        for target in (self._loop_processes, self._loop_deferred):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


# -- the figures of one run --------------------------------------------------------------------------


@dataclass
class RunFigures:
    """What one configuration measured."""

    dag: str
    mode: str
    rows: int
    limit: int
    pool_slots: int
    time_scale: float
    run_state: str = ""
    wall_seconds: float = 0.0
    ideal_seconds: float = 0.0
    jobs_created: int = 0
    rows_with_a_job: int = 0
    duplicate_jobs: int = 0
    rows_lost: int = 0
    received_429: int = 0
    received_429_concurrency: int = 0
    received_429_rate: int = 0
    status_gets: int = 0
    status_gets_minimum: int = 0
    worker_slot_seconds: float = 0.0
    workers_busy_peak: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    deferred_peak: int = 0
    tries_beyond_first: int = 0
    failed_tasks: int = 0
    task_states: dict[str, dict[str, int]] = field(default_factory=dict)
    vendor_peak_running: int = 0
    vendor_peak_waiting: int = 0
    vendor_slot_wait_seconds: float = 0.0
    first_submit_to_last_end: float = 0.0
    profile: dict[str, dict[str, float]] = field(default_factory=dict)
    label: str = ""

    @property
    def wall_vs_ideal(self) -> float:
        """Wall time over the ideal."""
        return self.wall_seconds / self.ideal_seconds if self.ideal_seconds else math.nan

    @property
    def gets_vs_minimum(self) -> float:
        """Status GETs over the minimum the client's own schedule needs."""
        return self.status_gets / self.status_gets_minimum if self.status_gets_minimum else math.nan

    def per_video(self, value: float) -> float:
        """``value`` per row.

        :param value: a total.
        """
        return value / self.rows if self.rows else math.nan

    def to_json(self) -> dict[str, Any]:
        """Raw figures plus the derived ratios."""
        data = asdict(self)
        data.update(wall_vs_ideal=round(self.wall_vs_ideal, 3), gets_vs_minimum=round(self.gets_vs_minimum, 3))
        return data


# -- the stack ---------------------------------------------------------------------------------------


class BackfillStack:
    """Emulator + metadata DB + Airflow engine for a series of measured backfill runs.

    :param root: working directory (created).
    :param settings: the run's settings.
    :param log: where progress lines go.
    """

    def __init__(self, root: Path, settings: BenchSettings, log: Any = print) -> None:
        self.root = root
        self.settings = settings
        self.log = log
        self.table = root / "assets.db"
        self.video_dir = root / "videos"
        self.durations = job_durations(settings)
        self._exit = contextlib.ExitStack()
        self.engine: AirflowEngine | None = None
        self.emulator: Any = None
        self._runs = 0

    # -- start and stop ----------------------------------------------------------------------------

    def __enter__(self) -> BackfillStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _metadata_db(self) -> dict[str, str]:
        if self.settings.metadata_db == "sqlite":
            return {}
        from processes import ProcessRegistry
        from system_services import start_postgres

        registry = ProcessRegistry(self.root / "services")
        self._exit.callback(registry.stop_all)
        password = "bench-" + os.urandom(8).hex()
        self.root.chmod(0o711)  # the postgres user must reach its data directory inside
        port = start_postgres(registry, self.root / "postgres", password)
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                f"postgresql+psycopg2://airflow:{password}@127.0.0.1:{port}/airflow"}

    def _start(self) -> None:
        from airflow_provider_seedance.emulator.testing import spawn_emulator

        s = self.settings
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.emulator = self._exit.enter_context(spawn_emulator(
            time_scale=s.time_scale, max_concurrent_jobs=s.limit, concurrency_mode="queue",
            requests_per_second=s.requests_per_second / s.time_scale,
            retry_after_seconds=s.scaled(s.retry_after), balance=10**9,
        ))
        self.emulator.admin.configure(log_limit=0)  # every request is kept: GETs are counted per job
        db_env = self._metadata_db()
        dags = self.root / "dags"
        build_dags_folder(dags, s)
        host, port = self.emulator.base_url.split("://", 1)[1].rsplit(":", 1)
        env = {
            "AIRFLOW_CONN_SEEDANCE_DEFAULT": self.emulator.connection_json,
            "AIRFLOW_CONN_SEEDANCE_HTTP": json.dumps({
                "conn_type": "http", "host": host, "port": int(port), "schema": "http",
                "extra": {"Authorization": f"Bearer {self.emulator.api_key}"}}),
            "AIRFLOW_CONN_SEEDANCE_ASSET_DB": json.dumps({"conn_type": "sqlite", "host": str(self.table)}),
            "AIRFLOW_VAR_SEEDANCE_VIDEO_DIR": str(self.video_dir),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PARALLELISM": str(s.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(64, 2 * s.rows)),
            "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, s.rows)),
            "BENCH_HTTP_POKE_INTERVAL": repr(s.scaled(s.http_poke_interval)),
            "BENCH_HTTP_RETRY_DELAY": repr(max(1.0, s.scaled(s.http_retry_delay))),
            **db_env,
        }
        engine = AirflowEngine(self.root / "airflow-home", env)
        self.engine = engine
        self._exit.callback(engine.stop_all)
        engine.cli("db", "migrate")
        engine.cli("pools", "set", "seedance", str(s.slots), "Seedance generations in flight", "--include-deferred")
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            engine.start(component)
        wait_for(engine.healthy, timeout=300, interval=1, what="all Airflow components healthy")
        wait_for(lambda: {EXAMPLE_DAG, HTTP_DAG} <= {d["dag_id"] for d in engine.api(
            "GET", "/dags", params={"limit": 100})["dags"]}, timeout=180, interval=1, what="the DAGs parsed")
        self.log(f"[backfill] engine up in {time.monotonic() - started:.0f} s ({s.metadata_db} metadata DB, "
                 f"logs in {engine.log_dir})")
        # Unpausing the scheduled example starts its latest interval: run it as the warm-up, on the seed rows.
        self.table.unlink(missing_ok=True)
        # Jobs of a few seconds: a trigger that fires while the executor has not yet reported the deferring
        # try's exit hits an Airflow race (the task is marked failed, then retried); see the performance page.
        self.emulator.admin.configure(time_scale=max(3.0, s.scaled(60.0) / 3))
        engine.api("PATCH", f"/dags/{EXAMPLE_DAG}", json={"is_paused": False})
        engine.api("PATCH", f"/dags/{HTTP_DAG}", json={"is_paused": False})
        runs = wait_for(lambda: self._finished_runs(EXAMPLE_DAG), timeout=300, interval=1, what="the warm-up run")
        self.log(f"[backfill] warm-up run {runs[0]['state']} ({time.monotonic() - started:.0f} s since start)")

    def _finished_runs(self, dag_id: str) -> list[dict[str, Any]]:
        assert self.engine is not None
        runs = self.engine.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        return [r for r in runs if r["state"] in ("success", "failed")]

    # -- one measured run --------------------------------------------------------------------------

    def _prepare(self, mode: str) -> None:
        s = self.settings
        admin = self.emulator.admin
        admin.reset()
        admin.set_limits(max_concurrent_jobs=s.limit, concurrency_mode=mode,
                         requests_per_second=s.requests_per_second / s.time_scale,
                         retry_after_seconds=s.scaled(s.retry_after))
        admin.configure(log_limit=0)
        for product, (queued, processing) in self.durations.items():
            admin.set_next_jobs(prompt_contains=f"({product})", queued_seconds=s.scaled(queued),
                                processing_seconds=s.scaled(processing))
        write_table(self.table, s.rows, example_create_table())
        shutil.rmtree(self.video_dir, ignore_errors=True)

    def run(self, dag: str, mode: str, timeout: float = 3600, pool_slots: int | None = None) -> RunFigures:
        """Run one DAG over the whole table in one vendor mode and measure it.

        :param dag: ``provider`` (the example) or ``http`` (the http-provider baseline).
        :param mode: ``queue`` or ``refuse``.
        :param timeout: seconds allowed for the run.
        :param pool_slots: a different pool size for this run (None: the settings').
        """
        assert self.engine is not None
        engine = self.engine
        dag_id = DAG_OF[dag]
        slots = pool_slots or self.settings.slots_for(mode)
        engine.cli("pools", "set", "seedance", str(slots), "Seedance generations in flight", "--include-deferred")
        self._prepare(mode)
        self._runs += 1
        sampler = Sampler(engine)
        sampler.snapshot()
        before = dict(sampler.snapshot())
        sampler.start()
        run_id = f"bench_{dag}_{mode}_{self._runs}"
        logical_date = f"2025-02-{self._runs:02d}T00:00:00Z"
        sampler.dag_id, sampler.run_id = dag_id, engine.trigger(dag_id, run_id, logical_date)
        self.log(f"[backfill] {dag} / {mode}: run {run_id} triggered")
        try:
            run = wait_for(lambda: self._run_if_done(dag_id, run_id), timeout=timeout, interval=2,
                           what=f"{dag_id} run {run_id}")
        finally:
            sampler.stop()
        after = sampler.snapshot()
        figures = self._figures(dag, mode, dag_id, run, sampler, before, after)
        figures.pool_slots = slots
        figures.label = f"{dag} / {mode}" + (f" / pool {slots}" if slots != self.settings.slots_for(mode) else "")
        return figures

    def _run_if_done(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        assert self.engine is not None
        run = self.engine.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    def _task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        assert self.engine is not None
        out: list[dict[str, Any]] = []
        while True:
            page = self.engine.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                   params={"limit": 100, "offset": len(out)})["task_instances"]
            out += page
            if len(page) < 100:
                return out

    def _figures(self, dag: str, mode: str, dag_id: str, run: dict[str, Any], sampler: Sampler,
                 before: dict[str, float], after: dict[str, float]) -> RunFigures:
        s = self.settings
        admin = self.emulator.admin
        stats = admin.stats()
        jobs = admin.jobs()
        requests_log = admin.requests(endpoint="status")
        from datetime import datetime

        start = datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
        per_row = Counter(_product_of(job) for job in jobs)
        figures = RunFigures(dag=dag, mode=mode, rows=s.rows, limit=s.limit, pool_slots=s.slots,
                             time_scale=s.time_scale, run_state=run["state"])
        figures.wall_seconds = round((end - start).total_seconds(), 2)
        figures.ideal_seconds = round(sum(s.scaled(q + p) for q, p in self.durations.values()) / s.limit, 2)
        figures.jobs_created = len(jobs)
        figures.rows_with_a_job = len(per_row)
        figures.duplicate_jobs = len(jobs) - len(per_row)
        table = table_state(self.table)
        figures.rows_lost = sum(1 for status, *_ in table.values() if status != "succeeded")
        limits = stats["limits"]
        figures.received_429 = limits["sent_429"]
        figures.received_429_concurrency = limits["refused_concurrency"]
        figures.received_429_rate = limits["refused_rate"]
        figures.vendor_peak_running = limits["peak_running"]
        figures.vendor_peak_waiting = limits["peak_waiting_for_slot"]
        figures.vendor_slot_wait_seconds = limits["slot_wait_seconds"]
        figures.status_gets = sum(1 for e in requests_log if e.get("status") == 200)
        figures.status_gets_minimum = sum(self._min_gets(dag, job) for job in jobs)
        figures.worker_slot_seconds = round(sampler.slot_seconds, 1)
        figures.workers_busy_peak = sampler.busy_peak
        figures.cpu_seconds = {role: round(after.get(role, 0.0) - before.get(role, 0.0), 1) for role in after}
        figures.deferred_peak = sampler.deferred_peak
        tis = self._task_instances(dag_id, run["dag_run_id"])
        states: dict[str, Counter[str]] = {}
        for ti in tis:
            states.setdefault(ti["task_id"], Counter())[ti["state"] or "none"] += 1
        figures.task_states = {task: dict(c) for task, c in states.items()}
        figures.tries_beyond_first = sum(max(0, int(ti["try_number"]) - 1) for ti in tis)
        figures.failed_tasks = sum(1 for ti in tis if ti["state"] in ("failed", "upstream_failed"))
        try:
            figures.profile = profile_run(engine_home(self.engine), dag, run["dag_run_id"], jobs)
        except Exception as exc:  # the profile is a bonus; the counts above are the result
            self.log(f"[backfill] profile failed: {exc!r}")
        if jobs:
            created = [j["createdAt"] for j in jobs]
            ends = [j["createdAt"] + j["queuedSeconds"] + j["processingSeconds"] for j in jobs]
            figures.first_submit_to_last_end = round(max(ends) - min(created), 2)
        return figures

    def _min_gets(self, dag: str, job: dict[str, Any]) -> int:
        """Status GETs the client's own schedule needs to see this job end (its lifetime at the vendor)."""
        s = self.settings
        lifetime = job["queuedSeconds"] + job["processingSeconds"]
        if dag == "provider":
            schedule = PollSchedule(initial=s.scaled(s.poll_interval), maximum=s.scaled(s.max_poll_interval),
                                    jitter=0.0)
            return len(schedule.poll_times(lifetime))
        poke = s.scaled(s.http_poke_interval)
        # The sensor pokes at 0, poke, 2 poke... until it sees the end; the record task reads it once more.
        return 1 + math.ceil(lifetime / poke) + 1


def engine_home(engine: AirflowEngine) -> Path:
    """The engine's AIRFLOW_HOME.

    :param engine: the engine.
    """
    return engine.home


def _product_of(job: dict[str, Any]) -> str:
    metadata = job["request"].get("metadata") or {}
    return str(metadata.get("product_id"))


@contextlib.contextmanager
def backfill_stack(root: Path, settings: BenchSettings, log: Any = print) -> Iterator[BackfillStack]:
    """A started :class:`BackfillStack`, stopped on exit.

    :param root: working directory.
    :param settings: the run's settings.
    :param log: progress output.
    """
    with BackfillStack(root, settings, log) as stack:
        yield stack


__all__ += ["backfill_stack", "free_port"]


# -- where the time goes -----------------------------------------------------------------------------


def _log_events(path: Path) -> list[tuple[float, str]]:
    from datetime import datetime

    events = []
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    when = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp()
                except (ValueError, KeyError, TypeError):
                    continue
                events.append((when, str(entry.get("event", ""))))
    except OSError:
        return []
    return events


def _first(events: list[tuple[float, str]], text: str, after: float = 0.0) -> float | None:
    return next((t for t, e in events if text in e and t >= after), None)


def _summary(values: list[float]) -> dict[str, float]:
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return {}
    return {"median": round(values[len(values) // 2], 2), "mean": round(sum(values) / len(values), 2),
            "p90": round(values[int(len(values) * 0.9)], 2), "n": len(values)}


def profile_run(home: Path, dag: str, run_id: str, jobs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Where each row's time went, from the task and trigger logs and the vendor's job times (seconds).

    Provider: submit step, deferral to trigger start, job end to trigger firing (detection), firing to the
    finishing step's start (scheduler + executor), the finishing step, and the row's overhead (its pool
    slot's time beyond the job). http DAG: submit step, and the sensor's time beyond the job.

    :param home: the engine's AIRFLOW_HOME.
    :param dag: ``provider`` or ``http``.
    :param run_id: the run.
    :param jobs: the emulator's job table.
    """
    end_of = {str((j["request"].get("metadata") or {}).get("product_id")):
              (j["createdAt"], j["createdAt"] + j["queuedSeconds"] + j["processingSeconds"]) for j in jobs}
    base = home / "logs" / f"dag_id={DAG_OF[dag]}" / f"run_id={run_id}"
    phases: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            phases.setdefault(name, []).append(value)

    task = "generate_video" if dag == "provider" else "submit"
    for folder in sorted((base / f"task_id={task}").glob("map_index=*")):
        index = int(folder.name.split("=", 1)[1])
        product = sku(index)
        if product not in end_of:
            continue
        created, ended = end_of[product]
        main = _log_events(folder / "attempt=1.log")
        if not main:
            continue
        start = main[0][0]
        add("submit_step", (_first(main, "DEFERRED") or _first(main, "::endgroup::", start + 1e-6) or start) - start
            if dag == "provider" else main[-1][0] - start)
        if dag == "provider":
            deferred = _first(main, "Pausing task as DEFERRED")
            resumed = _first(main, "::group::Pre Execute", (deferred or start) + 1e-6)
            trigger = next((_log_events(p) for p in folder.glob("attempt=1.log.trigger.*.log")), [])
            t_start, fired = _first(trigger, "starting"), _first(trigger, "Trigger fired event")
            if deferred and t_start:
                add("defer_to_trigger_start", t_start - deferred)
            if fired:
                add("job_end_to_trigger_fired", fired - ended)
            if fired and resumed:
                add("fired_to_finish_step_start", resumed - fired)
            if resumed:
                add("finish_step", main[-1][0] - resumed)
                add("slot_overhead", (main[-1][0] - start) - (ended - created))
        else:
            sensor = _log_events(base / "task_id=wait" / folder.name / "attempt=1.log")
            if sensor:
                add("sensor_step", sensor[-1][0] - sensor[0][0])
                add("job_end_to_sensor_end", sensor[-1][0] - ended)
    return {name: _summary(values) for name, values in phases.items()}
