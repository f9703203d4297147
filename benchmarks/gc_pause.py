"""Full garbage-collection pause against waits in flight: the floor of the worst event-loop stall.

CPython's cycle collector stops the whole process while a full collection walks every tracked object,
so the longest stall a triggerer can have grows with what it holds: Airflow's imports plus a few dozen
objects per waiting trigger. For each N, a fresh process imports what the triggerer imports, starts N
``SeedanceJobTrigger`` waits on long jobs (each polls once, then sleeps), and times ``gc.collect()``
(best of three), with and without ``gc.freeze()`` applied after the imports. It also counts the
GC-tracked objects one wait holds, for our trigger and for the http baseline.

Standalone: ``python benchmarks/gc_pause.py [--n 1000 --n 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["measure_gc_pauses"]

HERE = Path(__file__).resolve().parent


def _best_full_collection_ms(rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


async def _probe(n: int, impl: str, freeze: bool, ids: list[str], base_url: str) -> dict[str, Any]:
    import greenback
    from http_baseline import HttpStatusPollTrigger

    import airflow_provider_seedance.hooks.seedance  # noqa: F401  (what a running triggerer has loaded)
    from airflow_provider_seedance.emulator.testing import EmulatorAdmin
    from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

    if freeze:
        gc.collect()
        gc.freeze()
    empty_ms = _best_full_collection_ms()
    gc.collect()
    objects_before = len(gc.get_objects())
    admin = EmulatorAdmin(base_url)
    gets_before = (await asyncio.to_thread(admin.stats))["gets"]

    async def wait(trigger: Any) -> None:
        await greenback.ensure_portal()
        async for _ in trigger.run():
            pass

    tasks = []
    for i in range(n):
        rid = ids[i % len(ids)]
        trigger: Any = (SeedanceJobTrigger(request_id=rid, deadline=time.time() + 3600, poll_interval=60.0)
                        if impl == "seedance" else HttpStatusPollTrigger(rid, poll_interval=60.0))
        tasks.append(asyncio.create_task(wait(trigger)))
        if i % 200 == 0:
            await asyncio.sleep(0)
    for _ in range(300):  # up to 60 s for every wait's first poll
        if (await asyncio.to_thread(admin.stats))["gets"] - gets_before >= n:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # every wait has polled once and sleeps now
    pause_ms = _best_full_collection_ms()
    objects = len(gc.get_objects()) - objects_before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"n": n, "impl": impl, "freeze": freeze, "empty_ms": empty_ms, "pause_ms": pause_ms,
            "objects_per_wait": objects / n if n else 0.0}


def _run_probe(n: int, impl: str, freeze: bool, ids_path: Path, base_url: str, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__)), "--probe", str(n), impl, "1" if freeze else "0", str(ids_path),
           base_url]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_gc_pauses(sizes: tuple[int, ...] = (1000, 2500, 5000, 10_000)) -> dict[str, Any]:
    """Full-collection pause per N (with and without ``gc.freeze``) and objects per wait.

    :param sizes: waits in flight.
    """
    from poll_cost import _submit
    from triggerer_scale import _worker_env

    from airflow_provider_seedance.emulator.testing import spawn_emulator

    rows: list[dict[str, Any]] = []
    with spawn_emulator(time_scale=1000.0) as emu, tempfile.TemporaryDirectory(prefix="seedance-gc-") as tmp:
        # time_scale 1000: jobs take ~50 min, so every wait keeps waiting while it is measured.
        emu.admin.configure(log_limit=1)
        ids_path = Path(tmp, "ids.json")
        ids_path.write_text(json.dumps([_submit(emu) for _ in range(200)]), encoding="utf-8")
        env = _worker_env(emu, tmp)
        for n in sizes:
            for freeze in (False, True):
                rows.append(_run_probe(n, "seedance", freeze, ids_path, emu.base_url, env))
        rows.append(_run_probe(min(sizes), "http", False, ids_path, emu.base_url, env))
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Command line (also the probe's entry point).

    :param argv: arguments.
    """
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--probe"]:
        n, impl, freeze, ids_path, base_url = args_list[1:6]
        ids = json.loads(Path(ids_path).read_text(encoding="utf-8"))
        print(json.dumps(asyncio.run(_probe(int(n), impl, freeze == "1", ids, base_url))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="waits in flight (repeatable)")
    args = parser.parse_args(args_list)
    from _env import isolate_airflow_home

    isolate_airflow_home()
    result = measure_gc_pauses(tuple(args.n or (1000, 2500, 5000, 10_000)))
    for row in result["rows"]:
        print(f"{row['impl']:9s} N={row['n']:<6d} freeze={row['freeze']!s:5s} full GC {row['pause_ms']:6.0f} ms "
              f"(no waits: {row['empty_ms']:.0f} ms), {row['objects_per_wait']:.1f} objects per wait")
    return 0


if __name__ == "__main__":
    sys.exit(main())
