"""CPU per status check in isolation: where one poll's CPU goes, without trigger scheduling or timing.

Against a spawned emulator, one asyncio loop issues the same number of status GETs, ``concurrency`` at a
time, through:

- ``aiohttp (shared session)``: a bare ``session.get`` + ``json()`` on one pooled session: the floor any
  aiohttp-based client pays;
- ``HttpAsyncHook.run (shared session)``: the http provider's own request path on one shared session
  (its ``AsyncHttpSession``, tenacity loop and config merge per call);
- ``SeedanceHook.aget_job``: our hook without retries (the connection resolved once, sent through
  ``HttpAsyncHook.run`` on the loop's shared aiohttp session, parsed into a ``JobResult``);
- ``trigger poll step``: ``aget_job`` as ``watch_job`` calls it (the poll policy, ``POLICIES["poll"]``,
  through tenacity, and the time limit it passes on each poll);
- ``HttpAsyncHook, new session``: the baseline's poll (new ``ClientSession`` + TCP connection per call).

Process CPU time per request of the client process only. Standalone: ``python benchmarks/poll_cost.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["measure_poll_costs"]

GENERATIONS = "/api/open/v1/video/generations"


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def _drive(call: Callable[[str], Awaitable[Any]], ids: list[str], requests: int, concurrency: int) -> float:
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            await call(ids[i % len(ids)])

    gc.collect()
    start = _cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (_cpu() - start) / requests


async def _measure(base_url: str, api_key: str, ids: list[str], requests: int, concurrency: int,
                   rounds: int) -> dict[str, float]:
    import aiohttp
    from airflow.providers.http.hooks.http import HttpAsyncHook

    from airflow_provider_seedance.hooks._retry import POLICIES
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    headers = {"Authorization": f"Bearer {api_key}"}
    session = aiohttp.ClientSession()
    hook = SeedanceHook(max_retries=0)
    trigger_hook = SeedanceHook(retry_policy=POLICIES["poll"])
    http_hook = HttpAsyncHook(method="GET", http_conn_id="http_seedance", retry_limit=1)
    shared_for_http = aiohttp.ClientSession()

    async def bare(rid: str) -> Any:
        async with session.get(f"{base_url}{GENERATIONS}/{rid}", headers=headers) as resp:
            return await resp.json()

    async def hook_get(rid: str) -> Any:
        return await hook.aget_job(rid)

    async def trigger_step(rid: str) -> Any:
        return await trigger_hook.aget_job(rid, timeout=30.0)

    async def http_shared(rid: str) -> Any:
        response = await http_hook.run(session=shared_for_http, endpoint=f"api/open/v1/video/generations/{rid}")
        async with response:
            return await response.json()

    async def baseline(rid: str) -> Any:
        async with aiohttp.ClientSession() as fresh:
            response = await http_hook.run(session=fresh, endpoint=f"api/open/v1/video/generations/{rid}")
            return await response.json()

    variants: dict[str, Callable[[str], Awaitable[Any]]] = {
        "aiohttp (shared session)": bare,
        "HttpAsyncHook.run (shared session)": http_shared,
        "SeedanceHook.aget_job": hook_get,
        "trigger poll step": trigger_step,
        "HttpAsyncHook, new session": baseline,
    }
    for call in variants.values():  # warm up: connection lookup, pool, imports
        await _drive(call, ids, concurrency * 2, concurrency)
    best: dict[str, float] = {name: float("inf") for name in variants}
    for _ in range(rounds):  # interleaved rounds, best of: the machine is shared
        for name, call in variants.items():
            best[name] = min(best[name], await _drive(call, ids, requests, concurrency))
    await hook.aclose()
    await trigger_hook.aclose()
    await session.close()
    await shared_for_http.close()
    return {name: seconds * 1000.0 for name, seconds in best.items()}


def measure_poll_costs(requests: int = 3000, concurrency: int = 50, rounds: int = 3) -> dict[str, Any]:
    """Spawn an emulator, submit a few jobs, measure each variant's CPU milliseconds per status GET.

    :param requests: GETs per variant and round.
    :param concurrency: GETs in flight at once.
    :param rounds: interleaved rounds; the best (least disturbed) round counts.
    """
    from airflow_provider_seedance.emulator.testing import spawn_emulator

    with spawn_emulator(time_scale=1000.0) as emu:
        emu.admin.configure(log_limit=1)
        ids = [_submit(emu) for _ in range(50)]
        host, port = emu.base_url.split("://", 1)[1].rsplit(":", 1)
        os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = emu.connection_json
        os.environ["AIRFLOW_CONN_HTTP_SEEDANCE"] = json.dumps(
            {"conn_type": "http", "host": host, "port": int(port), "schema": "http",
             "extra": {"Authorization": f"Bearer {emu.api_key}"}})
        ms = asyncio.run(_measure(emu.base_url, emu.api_key, ids, requests, concurrency, rounds))
    return {"requests": requests, "concurrency": concurrency, "rounds": rounds, "cpu_ms_per_request": ms}


def _submit(emu: Any) -> str:
    import urllib.request

    req = urllib.request.Request(
        emu.base_url + GENERATIONS, method="POST",
        data=json.dumps({"prompt": "poll cost probe", "model": "seedance-2.0"}).encode(),
        headers={"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["requestId"])


def main(argv: list[str] | None = None) -> int:
    """Command line: print CPU ms per status GET for each variant.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    started = time.time()
    result = measure_poll_costs(args.requests, args.concurrency, args.rounds)
    for name, ms in result["cpu_ms_per_request"].items():
        print(f"{name:36s} {ms:7.3f} ms CPU / request")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
