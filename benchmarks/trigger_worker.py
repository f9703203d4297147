"""The triggerer stand-in: many triggers in ONE asyncio loop, created and run the way Airflow's triggerer does.

Mirrors ``airflow/jobs/triggerer_job_runner.py`` (Airflow 3.3) where it costs CPU or shapes timing:

- ``asyncio.run`` with the default event loop (the triggerer does not install uvloop);
- a main loop that wakes once per tick (the triggerer: 1 s) and creates the triggers that arrived since,
  each from its class path and JSON kwargs (what ``serialize()`` produced), yielding to the loop between two;
- one task per trigger: ``greenback.ensure_portal()`` (unless ``AIRFLOW_DISABLE_GREENBACK_PORTAL=true``),
  ``async for event in trigger.run()``, then ``trigger.cleanup()``;
- a watchdog coroutine that measures how late its sleeps wake up (the triggerer's ``block_watchdog``
  warns past 0.2 s by default).

Not reproduced: the supervisor IPC, Fernet decryption of kwargs and trigger logging, which cost the same for
any trigger class. Connections come from ``AIRFLOW_CONN_*`` environment variables.

Usage (the orchestrator runs it): ``python trigger_worker.py PLAN.json RESULT.json``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import resource
import sys
import time
from collections import deque
from typing import Any


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _import_class(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


class GcPauses:
    """Wall time of every garbage collection (``gc.callbacks``), to tell GC pauses from slow trigger code."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((int(info["generation"]), time.perf_counter() - self._start))


class ConnectionCounter:
    """Counts TCP connections the loop opens (``loop.create_connection``), as seen by the client.

    The emulator counts distinct client (host, port) pairs, which undercounts once the kernel reuses
    ephemeral ports; this is the exact number.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.opened = 0
        original = loop.create_connection

        async def create_connection(*args: Any, **kwargs: Any) -> Any:
            self.opened += 1
            return await original(*args, **kwargs)

        loop.create_connection = create_connection  # type: ignore[method-assign]


class Watchdog:
    """Sleeps ``interval`` in a loop and records how much longer each sleep took (event-loop stalls).

    :param interval: seconds per sleep.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stalls: list[float] = []
        self.busy_stalls: list[float] = []
        self.running = True

    async def run(self) -> None:
        """Measure until :attr:`running` is cleared."""
        while self.running:
            start, cpu_start = time.monotonic(), time.thread_time()
            await asyncio.sleep(self.interval)
            late = max(0.0, time.monotonic() - start - self.interval)
            self.stalls.append(late)
            # Of that lateness, at most the loop thread's own CPU time was work in this process; the rest was
            # the machine running something else (it is shared), which no trigger code can cause.
            self.busy_stalls.append(min(late, time.thread_time() - cpu_start))


async def _run_trigger(trigger: Any, record: dict[str, Any], greenback: Any) -> None:
    if greenback is not None:
        await greenback.ensure_portal()
    try:
        async for event in trigger.run():
            if "event_time" not in record:
                record["event_time"] = time.time()
                record["payload"] = event.payload
    except Exception as exc:  # the triggerer logs it and fails the task; here it is a reported figure
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            await trigger.cleanup()
        except Exception as exc:
            record["cleanup_error"] = f"{type(exc).__name__}: {exc}"
        record["done_time"] = time.time()


async def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """Create and run every trigger of ``plan``; return the measured figures.

    :param plan: ``{"t0", "tick", "watchdog_interval", "timeout", "triggers": [{"arrive_at", "classpath",
        "kwargs", "request_id"}]}`` (times are epoch seconds).
    """
    greenback = None
    if os.environ.get("AIRFLOW_DISABLE_GREENBACK_PORTAL", "").lower() != "true":
        import greenback as _greenback

        greenback = _greenback
    classes: dict[str, Any] = {}
    pending = deque(sorted(plan["triggers"], key=lambda t: t["arrive_at"]))
    records: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    tick = float(plan["tick"])
    watchdog = Watchdog(float(plan["watchdog_interval"]))

    delay = float(plan["t0"]) - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    gc.collect()
    rss_start = _rss_kb()
    wall0, cpu0 = time.time(), os.times()
    watchdog_task = asyncio.create_task(watchdog.run())
    connections = ConnectionCounter(asyncio.get_running_loop())
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    deadline = wall0 + float(plan["timeout"])
    peak_running = 0
    while (pending or tasks) and time.time() < deadline:
        now = time.time()
        while pending and pending[0]["arrive_at"] <= now:
            await asyncio.sleep(0)
            spec = pending.popleft()
            cls = classes.get(spec["classpath"])
            if cls is None:
                cls = classes[spec["classpath"]] = _import_class(spec["classpath"])
            record: dict[str, Any] = {"request_id": spec["request_id"], "created_time": time.time()}
            records.append(record)
            task = asyncio.create_task(_run_trigger(cls(**spec["kwargs"]), record, greenback))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        peak_running = max(peak_running, len(tasks))
        await asyncio.sleep(tick)
    timed_out = len(tasks)
    for task in list(tasks):
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    cpu1, wall1 = os.times(), time.time()
    gc.callbacks.remove(gc_pauses)
    watchdog.running = False
    await watchdog_task
    stalls = sorted(watchdog.stalls)
    busy = sorted(watchdog.busy_stalls)
    return {
        "records": records,
        "not_started": len(pending),
        "timed_out": timed_out,
        "wall_seconds": wall1 - wall0,
        "cpu_user": cpu1.user - cpu0.user,
        "cpu_system": cpu1.system - cpu0.system,
        "rss_start_kb": rss_start,
        # ru_maxrss: the process's peak resident set (kB on Linux), imports included.
        "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_running": peak_running,
        "stall_max": stalls[-1] if stalls else 0.0,
        "stall_p99": stalls[int(0.99 * (len(stalls) - 1))] if stalls else 0.0,
        "stall_samples": len(stalls),
        "busy_stall_max": busy[-1] if busy else 0.0,
        "busy_stall_p99": busy[int(0.99 * (len(busy) - 1))] if busy else 0.0,
        "greenback": greenback is not None,
        "connections_opened": connections.opened,
        "gc_collections": len(gc_pauses.pauses),
        "gc_max_pause": max((p for _, p in gc_pauses.pauses), default=0.0),
        "gc_full_collections": sum(1 for g, _ in gc_pauses.pauses if g == 2),
        "gc_total_seconds": sum(p for _, p in gc_pauses.pauses),
    }


def main(argv: list[str]) -> int:
    """Entry point: ``trigger_worker.py PLAN.json RESULT.json``.

    :param argv: ``sys.argv``.
    """
    with open(argv[1], encoding="utf-8") as f:
        plan = json.load(f)
    # What a triggerer has imported before it runs any trigger.
    import airflow.triggers.base  # noqa: F401

    for classpath in {t["classpath"] for t in plan["triggers"]}:
        _import_class(classpath)
    # Modules a trigger imports lazily on its first run(): a long-running triggerer has them already, so the
    # one-time import is kept out of the per-poll figures (the import benchmark reports it).
    for module in plan.get("preload", []):
        importlib.import_module(module)
    # BENCH_WORKER_PRELOAD=mod[,mod]: modules imported before the run, e.g. a candidate patch for a before/after.
    applied: list[str] = []
    for module in filter(None, os.environ.get("BENCH_WORKER_PRELOAD", "").split(",")):
        applied += getattr(importlib.import_module(module), "APPLIED", [])
    if plan.get("gc_freeze"):
        # What a triggerer could do after start-up: later full collections skip everything imported so far.
        gc.collect()
        gc.freeze()
    profile_path = os.environ.get("BENCH_CPROFILE")  # deterministic profile of the whole run, for diagnosis
    if profile_path:
        import cProfile

        # CPU time, not wall time: on a shared machine a descheduled send() would otherwise look expensive.
        with cProfile.Profile(time.process_time) as profiler:
            result = asyncio.run(run_plan(plan))
        profiler.dump_stats(profile_path)
    else:
        result = asyncio.run(run_plan(plan))
    result["applied_changes"] = applied
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
