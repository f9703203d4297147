"""Triggerer scale: N concurrent waits in one triggerer loop, SeedanceJobTrigger vs the http-provider baseline.

One run, per N and implementation:

1. Plan N jobs (same seed for both implementations): generation time uniform in 30 s - 5 min, arrival
   (the moment the task defers) uniform over the first 30 s, so all N are in flight together. Every time
   is multiplied by ``scale`` so a run takes minutes; the poll schedule is scaled by the same factor
   (``poll_interval``/``max_poll_interval`` kwargs), which leaves the number of polls unchanged.
2. Submit the jobs to the emulator (a separate process) before the measured phase, each with its exact
   queued/processing time (admin ``next-jobs``), so the submits cost the trigger process nothing.
3. Run :mod:`trigger_worker` (the triggerer stand-in) in its own process: triggers are created from their
   ``serialize()`` kwargs at their arrival time and run until their event.
4. Read the emulator's counters (requests, distinct TCP connections) and job table (exact completion times).

Standalone: ``python benchmarks/triggerer_scale.py --n 1000 [--impl seedance --impl http] [--scale 0.1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _env import isolate_airflow_home
from _stats import percentile

from airflow_provider_seedance.emulator.testing import EmulatorHandle, spawn_emulator
from airflow_provider_seedance.polling import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, PollSchedule

__all__ = ["IMPLEMENTATIONS", "default_scale", "run_scale_suite", "run_scenario"]

HERE = Path(__file__).resolve().parent
WORKER = HERE / "trigger_worker.py"

MIN_JOB_SECONDS, MAX_JOB_SECONDS = 30.0, 300.0
ARRIVAL_WINDOW = 30.0  # <= the shortest job: at t = 30 s every job is in flight
QUEUED_SHARE = 0.25  # part of a generation spent queued (the rest processing)
JOB_TIMEOUT = 3600.0  # the operator's default deadline (1 h), scaled like everything else
TRIGGERER_TICK = 1.0  # the triggerer's main loop period (creates new triggers once per tick)
WATCHDOG_INTERVAL = 0.05
#: The baseline's fixed interval: our cap, i.e. the same worst-case detection bound (see the docs page).
BASELINE_INTERVAL = DEFAULT_MAX_POLL_INTERVAL
IMPLEMENTATIONS = ("seedance", "http")
#: Our trigger in a trigger process that calls ``gc.freeze()`` after start-up (a triggerer-side change, not
#: the provider's): what the stall target would need from Airflow.
FROZEN = "seedance+gc-freeze"
#: Our schedule with no HTTP at all (schedule_only_trigger.py): the triggerer's floor cost per wake-up.
FLOOR = "schedule-only"
#: Our schedule and status GET on one shared aiohttp session, nothing else (bare_aiohttp_trigger.py): the
#: floor of any aiohttp-based trigger, so the provider's own share of a poll can be told apart.
BARE = "bare-aiohttp"
HTTP_CONN_ID = "http_seedance"
#: What each trigger imports on its first run (kept out of the measured phase; see trigger_worker).
_OURS = ("airflow_provider_seedance.hooks.seedance", "airflow.sdk.log")
PRELOAD: dict[str, tuple[str, ...]] = {
    "seedance": _OURS,
    FROZEN: _OURS,
    "http": ("airflow.providers.http.hooks.http",),
    FLOOR: ("airflow_provider_seedance.polling",),
    BARE: ("aiohttp", "airflow_provider_seedance.polling"),
}


def default_scale(n: int) -> float:
    """Time scale per N: small enough for minutes-long runs, large enough to keep the emulator unsaturated.

    :param n: concurrent waits.
    """
    return 0.5 if n > 2000 else 0.1


@dataclass
class PlannedJob:
    """One generation of the plan (run-time seconds, i.e. already scaled).

    :param index: position in the plan.
    :param arrive_at: epoch seconds the task defers (trigger ``started_at``).
    :param duration: seconds from arrival to completion.
    """

    index: int
    arrive_at: float
    duration: float
    request_id: str = ""

    @property
    def tag(self) -> str:
        """Unique text in the prompt that ties the job to its next-jobs behaviour."""
        return f"bench-{self.index:06d}"


def plan_jobs(n: int, scale: float, t0: float, seed: int) -> list[PlannedJob]:
    """Draw arrivals and generation times (same ``seed`` and ``n`` -> same jobs for every implementation).

    :param n: number of jobs.
    :param scale: time scale.
    :param t0: epoch seconds the measured phase starts.
    :param seed: random seed.
    """
    rng = random.Random(seed * 1_000_003 + n)
    return [
        PlannedJob(
            index=i,
            arrive_at=t0 + rng.uniform(0.0, ARRIVAL_WINDOW) * scale,
            duration=rng.uniform(MIN_JOB_SECONDS, MAX_JOB_SECONDS) * scale,
        )
        for i in range(n)
    ]


async def _submit_all(emu: EmulatorHandle, jobs: list[PlannedJob], concurrency: int = 32) -> None:
    """Submit every job with its exact lifecycle (admin behaviour first, matched by the prompt tag)."""
    admin_url = emu.base_url + "/__emulator__/next-jobs"
    submit_url = emu.base_url + "/api/open/v1/video/generations"
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    todo = iter(jobs)

    async def submitter(session: aiohttp.ClientSession) -> None:
        for job in todo:
            wait = max(0.0, job.arrive_at - time.time())
            behaviour = {
                "prompt_contains": job.tag,
                "queued_seconds": wait + QUEUED_SHARE * job.duration,
                "processing_seconds": (1 - QUEUED_SHARE) * job.duration,
            }
            async with session.post(admin_url, json=behaviour) as resp:
                resp.raise_for_status()
            body = {"prompt": f"benchmark generation {job.tag}.", "model": "seedance-2.0"}
            async with session.post(submit_url, json=body, headers=auth) as resp:
                resp.raise_for_status()
                job.request_id = (await resp.json())["requestId"]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(submitter(session) for _ in range(concurrency)))


def _trigger_spec(impl: str, job: PlannedJob, scale: float) -> dict[str, Any]:
    if impl.startswith("seedance"):
        from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

        trigger: Any = SeedanceJobTrigger(
            request_id=job.request_id,
            deadline=job.arrive_at + JOB_TIMEOUT * scale,
            started_at=job.arrive_at,
            poll_interval=DEFAULT_POLL_INTERVAL * scale,
            max_poll_interval=DEFAULT_MAX_POLL_INTERVAL * scale,
        )
    elif impl == FLOOR:
        from schedule_only_trigger import ScheduleOnlyTrigger

        trigger = ScheduleOnlyTrigger(job.request_id, finishes_at=job.arrive_at + job.duration,
                                      started_at=job.arrive_at, poll_interval=DEFAULT_POLL_INTERVAL * scale,
                                      max_poll_interval=DEFAULT_MAX_POLL_INTERVAL * scale)
    elif impl == BARE:
        from bare_aiohttp_trigger import BareAiohttpTrigger

        trigger = BareAiohttpTrigger(job.request_id, started_at=job.arrive_at,
                                     poll_interval=DEFAULT_POLL_INTERVAL * scale,
                                     max_poll_interval=DEFAULT_MAX_POLL_INTERVAL * scale)
    else:
        from http_baseline import HttpStatusPollTrigger

        trigger = HttpStatusPollTrigger(job.request_id, http_conn_id=HTTP_CONN_ID,
                                        poll_interval=BASELINE_INTERVAL * scale)
    classpath, kwargs = trigger.serialize()
    # Through JSON, as trigger kwargs are stored in the metadata DB.
    return {"arrive_at": job.arrive_at, "classpath": classpath, "kwargs": json.loads(json.dumps(kwargs)),
            "request_id": job.request_id}


def _process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_env(emu: EmulatorHandle, home: str) -> dict[str, str]:
    host, port = emu.base_url.split("://", 1)[1].rsplit(":", 1)
    http_conn = {"conn_type": "http", "host": host, "port": int(port), "schema": "http",
                 "extra": {"Authorization": f"Bearer {emu.api_key}"}}
    return dict(
        os.environ,
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_SEEDANCE_DEFAULT=emu.connection_json,
        AIRFLOW_CONN_HTTP_SEEDANCE=json.dumps(http_conn),
    )


def run_scenario(emu: EmulatorHandle, impl: str, n: int, *, scale: float, seed: int = 7,
                 greenback: bool = True, gc_freeze: bool = False, log: Any = print) -> dict[str, Any]:
    """Run one implementation with N concurrent waits; return its figures.

    :param emu: a running (spawned) emulator.
    :param impl: ``seedance`` (our trigger), ``http`` (the baseline), ``seedance+gc-freeze`` (ours, the trigger
        process calling ``gc.freeze()`` after start-up) or ``schedule-only`` (our schedule, no HTTP).
    :param n: concurrent waits.
    :param scale: time scale.
    :param seed: random seed of the plan.
    :param greenback: run triggers inside a greenback portal, as the triggerer does by default.
    :param gc_freeze: ``gc.freeze()`` after start-up (the triggerer does not; shows what GC pauses cost).
    :param log: progress printer.
    """
    admin = emu.admin
    admin.reset()
    admin.configure(log_limit=1)  # the emulator keeps counters anyway; a 10^5-entry log only costs it CPU
    setup_estimate = 6.0 + n * 0.0015  # submits, then the worker's imports, must fit before t0
    t0 = time.time() + setup_estimate
    jobs = plan_jobs(n, scale, t0, seed)
    setup_start = time.time()
    asyncio.run(_submit_all(emu, jobs))
    setup_seconds = time.time() - setup_start
    if time.time() > t0 - 2.0:
        log(f"  warning: setup took {setup_seconds:.1f} s, longer than planned; early jobs start late")
    schedule = PollSchedule(initial=DEFAULT_POLL_INTERVAL * scale, maximum=DEFAULT_MAX_POLL_INTERVAL * scale)
    plan = {
        "t0": t0,
        "tick": TRIGGERER_TICK * scale,
        "watchdog_interval": WATCHDOG_INTERVAL,
        "timeout": (ARRIVAL_WINDOW + MAX_JOB_SECONDS + 3 * DEFAULT_MAX_POLL_INTERVAL) * scale + 60.0,
        "triggers": [_trigger_spec(impl, job, scale) for job in jobs],
        "preload": list(PRELOAD[impl]),
        "gc_freeze": gc_freeze or impl == FROZEN,
    }
    before = admin.stats()
    emu_cpu0 = _process_cpu(emu.process.pid) if emu.process is not None else math.nan
    with tempfile.TemporaryDirectory(prefix="seedance-bench-") as tmp:
        plan_path, out_path = Path(tmp, "plan.json"), Path(tmp, "result.json")
        plan_path.write_text(json.dumps(plan), encoding="utf-8")
        env = _worker_env(emu, tmp)
        if not greenback:
            env["AIRFLOW_DISABLE_GREENBACK_PORTAL"] = "true"
        load_before = os.getloadavg()[0]
        # BENCH_WORKER_WRAPPER, e.g. "py-spy record -o /tmp/profile.txt -f raw --": profile the trigger process.
        wrapper = os.environ.get("BENCH_WORKER_WRAPPER", "").split()
        subprocess.run([*wrapper, sys.executable, str(WORKER), str(plan_path), str(out_path)], env=env, check=True)
        result = json.loads(out_path.read_text(encoding="utf-8"))
    emu_cpu1 = _process_cpu(emu.process.pid) if emu.process is not None else math.nan
    after = admin.stats()
    table = {job["requestId"]: job for job in admin.jobs()}
    return _figures(impl, n, scale, jobs, table, result, before, after, schedule,
                    setup_seconds=setup_seconds, emulator_cpu=emu_cpu1 - emu_cpu0,
                    load=(load_before, os.getloadavg()[0]))


def _figures(impl: str, n: int, scale: float, jobs: list[PlannedJob], table: dict[str, dict[str, Any]],
             result: dict[str, Any], before: dict[str, Any], after: dict[str, Any], schedule: PollSchedule,
             **extra: Any) -> dict[str, Any]:
    planned = {job.request_id: job for job in jobs}
    latencies: list[float] = []
    excess: list[float] = []
    minimum_polls = 0
    job_seconds = 0.0
    kinds: dict[str, int] = {}
    errors: list[str] = []
    for record in result["records"]:
        job = table[record["request_id"]]
        finished = job["createdAt"] + job["queuedSeconds"] + job["processingSeconds"]
        duration = finished - planned[record["request_id"]].arrive_at
        job_seconds += duration
        minimum_polls += len(schedule.poll_times(duration))
        if "error" in record:
            errors.append(record["error"])
        if "event_time" not in record:
            continue
        payload = record["payload"]
        kind = payload.get("event") or payload.get("status") or "?"
        kinds[kind] = kinds.get(kind, 0) + 1
        latency = record["event_time"] - finished
        latencies.append(latency)
        bound = BASELINE_INTERVAL * scale if impl == "http" else schedule.interval(duration)
        excess.append(latency - bound)
    cpu = result["cpu_user"] + result["cpu_system"]
    gets = after["gets"] - before["gets"]
    if impl == FLOOR:  # no request is sent: its "polls" are its wake-ups
        gets = sum(int(r.get("payload", {}).get("wakeups", 0)) for r in result["records"])
    job_minutes = job_seconds / scale / 60.0  # represented (unscaled) job-minutes
    return {
        "impl": impl,
        "n": n,
        "scale": scale,
        "events": len(latencies),
        "event_kinds": kinds,
        "errors": errors[:5],
        "error_count": len(errors),
        "not_finished": result["timed_out"] + result["not_started"],
        "peak_running": result["peak_running"],
        "wall_seconds": result["wall_seconds"],
        "cpu_seconds": cpu,
        "cpu_user": result["cpu_user"],
        "cpu_system": result["cpu_system"],
        "job_minutes": job_minutes,
        "cpu_per_1000_job_minutes": cpu / job_minutes * 1000.0 if job_minutes else math.nan,
        "requests": gets,
        "cpu_ms_per_request": cpu / gets * 1000.0 if gets else math.nan,
        "requests_per_job": gets / n,
        "minimum_requests_per_job": minimum_polls / n,
        "requests_vs_minimum": gets / minimum_polls if minimum_polls else math.nan,
        "other_requests": (after["requests"] - before["requests"]) - gets,
        "connections": result["connections_opened"],
        "distinct_client_ports": after["connections"] - before["connections"],
        "latency_p50": percentile(latencies, 50),
        "latency_p99": percentile(latencies, 99),
        "latency_max": max(latencies) if latencies else math.nan,
        "excess_p99": percentile(excess, 99),
        "excess_max": max(excess) if excess else math.nan,
        "poll_cap": DEFAULT_MAX_POLL_INTERVAL * scale,
        "stall_max": result["stall_max"],
        "stall_p99": result["stall_p99"],
        "busy_stall_max": result["busy_stall_max"],
        "busy_stall_p99": result["busy_stall_p99"],
        "gc_max_pause": result["gc_max_pause"],
        "gc_full_collections": result["gc_full_collections"],
        "gc_total_seconds": result["gc_total_seconds"],
        "rss_start_mb": result["rss_start_kb"] / 1024.0,
        "rss_peak_mb": result["rss_peak_kb"] / 1024.0,
        "kb_per_wait": (result["rss_peak_kb"] - result["rss_start_kb"]) / n,
        "greenback": result["greenback"],
        "applied_changes": result.get("applied_changes", []),
        **extra,
    }


def run_scale_suite(sizes: list[int], impls: tuple[str, ...] = IMPLEMENTATIONS, *, scale: float | None = None,
                    seed: int = 7, greenback: bool = True, gc_freeze: bool = False,
                    floor_at: tuple[int, ...] = (), frozen_at: tuple[int, ...] = (), bare_at: tuple[int, ...] = (),
                    log: Any = print) -> list[dict[str, Any]]:
    """Every (N, implementation) pair against ONE spawned emulator; results in run order.

    :param sizes: the N values.
    :param impls: implementations to run for each N.
    :param scale: time scale for every N (default :func:`default_scale`).
    :param seed: random seed of the plans.
    :param greenback: as the triggerer (True) or without the greenback portal.
    :param gc_freeze: ``gc.freeze()`` in the trigger process after start-up.
    :param floor_at: N values at which :data:`FLOOR` (no HTTP) also runs.
    :param frozen_at: N values at which :data:`FROZEN` (ours with ``gc.freeze()``) also runs.
    :param bare_at: N values at which :data:`BARE` (a bare shared-session aiohttp GET) also runs.
    :param log: progress printer.
    """
    results = []
    with spawn_emulator(balance=10**9) as emu:
        for n in sizes:
            variants = ((FROZEN, frozen_at), (FLOOR, floor_at), (BARE, bare_at))
            extra = [i for i, at in variants if n in at and i not in impls]
            for impl in (*impls, *extra):
                s = scale if scale is not None else default_scale(n)
                log(f"triggerer scale: {impl:16s} N={n:<6d} scale={s} ...")
                figures = run_scenario(emu, impl, n, scale=s, seed=seed, greenback=greenback,
                                       gc_freeze=gc_freeze, log=log)
                log(f"  done in {figures['wall_seconds']:.0f} s: {figures['events']}/{n} events, "
                    f"CPU {figures['cpu_seconds']:.1f} s, {figures['requests']} requests, "
                    f"{figures['connections']} connections, stall max {figures['stall_max'] * 1000:.0f} ms")
                results.append(figures)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: one or more N, one or both implementations; prints the figures as JSON.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="concurrent waits (repeatable; default 100)")
    parser.add_argument("--impl", action="append", choices=[*IMPLEMENTATIONS, FROZEN, FLOOR, BARE],
                        help="implementation (repeatable; default: seedance and http)")
    parser.add_argument("--scale", type=float, default=None, help="time scale (default: 0.1, 0.5 above N=2000)")
    parser.add_argument("--no-greenback", action="store_true", help="skip the triggerer's greenback portal")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() in the trigger process after start-up")
    args = parser.parse_args(argv)
    isolate_airflow_home()
    results = run_scale_suite(args.n or [100], tuple(args.impl or IMPLEMENTATIONS), scale=args.scale,
                              greenback=not args.no_greenback, gc_freeze=args.gc_freeze,
                              log=lambda text: print(text, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
