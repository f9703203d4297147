"""CPU per status poll: ours beside the plain ``HttpAsyncHook.run`` on one shared session, and the aiohttp floor.

Issue 22's yardstick: our poll should cost at most 1.1x the CPU of the http provider's own async path used the
plainest way (``HttpAsyncHook(retry_limit=1).run(session=<one shared session>, ...)`` with
``check_response`` off, then the JSON read). Three variants, measured side by side in one run against a
spawned emulator, each in its own child process per round (rounds interleaved; the machine is shared):

- ``aiohttp floor``: ``session.get`` + ``json.loads`` on one shared session, no hook at all;
- ``HttpAsyncHook.run (peer)``: the peer above, one hook per wait;
- ``SeedanceHook.aget_job (ours)``: a fresh ``SeedanceHook`` per wait polling as ``watch_job`` does (its poll
  retry policy through tenacity, the answer checked and parsed into a ``JobResult``), then ``JobWait.decide``.

Two phases per child, CPU time of the child process only:

- cold: N waits start at once in one event loop, as after a triggerer restart (N fresh hooks, N connection
  lookups, a new shared session and pool, N first polls against N different jobs);
- warm: the same N hooks poll again, ``concurrency`` polls in flight, ``warm`` polls in all.

``--profile VARIANT`` runs one variant once under cProfile and prints where its time goes; ``--pieces`` times the
pieces of our poll on their own (no network). Standalone: ``python benchmarks/poll_peer.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _env import isolate_airflow_home
from _stats import median

__all__ = ["VARIANTS", "measure_poll_peer"]

HERE = Path(__file__).resolve().parent
GENERATIONS = "/api/open/v1/video/generations"
HTTP_CONN_ID = "http_seedance_peer"
VARIANTS = {
    "bare": "aiohttp floor (shared session)",
    "peer": "HttpAsyncHook.run (peer, shared session)",
    "ours": "SeedanceHook.aget_job + decide (ours)",
}


def _cpu() -> float:
    return time.process_time()  # every thread of the process (ours decodes big answers in one), ns resolution


class _Variant:
    """One client path: ``make()`` builds what one wait holds, ``poll(held, rid)`` is one status poll."""

    def __init__(self, name: str, base_url: str, api_key: str) -> None:
        self.name = name
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self.session: Any = None

    async def start(self) -> None:
        import aiohttp

        if self.name != "ours":  # ours shares its own session (the hook's registry), built on first use
            self.session = aiohttp.ClientSession()

    def make(self) -> Any:
        if self.name == "peer":
            from airflow.providers.http.hooks.http import HttpAsyncHook

            return HttpAsyncHook(method="GET", http_conn_id=HTTP_CONN_ID, retry_limit=1)
        if self.name == "ours":
            from airflow_provider_seedance.hooks.seedance import SeedanceHook

            return SeedanceHook()
        return None

    async def poll(self, held: Any, rid: str) -> Any:
        if self.name == "bare":
            async with self.session.get(f"{self.base_url}{GENERATIONS}/{rid}", headers=self.headers) as resp:
                return json.loads(await resp.read())
        if self.name == "peer":
            response = await held.run(session=self.session, endpoint=f"{GENERATIONS}/{rid}",
                                      extra_options={"check_response": False})
            async with response:
                return await response.json()
        return await _our_poll(held, rid)

    async def stop(self, held: list[Any]) -> None:
        if self.name == "ours":
            for hook in held:
                await hook.aclose()
        else:
            await self.session.close()


_WAITS: dict[str, Any] = {}


async def _our_poll(hook: Any, rid: str) -> Any:
    # What watch_job does per poll: the status check bounded by the call budget, then the decision.
    import logging

    from airflow_provider_seedance.errors import SeedanceError

    wait = _WAITS[rid]
    result = error = None
    try:
        result = await hook.aget_job(rid, timeout=wait.call_budget())
    except (SeedanceError, TimeoutError) as exc:
        error = exc
    return wait.decide(result, error, log=logging.getLogger("poll_peer"))


async def _child(name: str, base_url: str, api_key: str, ids: list[str], warm: int, concurrency: int,
                 profile: str | None) -> dict[str, Any]:
    from airflow_provider_seedance.polling import PollSchedule
    from airflow_provider_seedance.waiting import JobWait

    now = time.time()
    for rid in ids:  # the trigger's own state, built before the restart is timed (it comes from its kwargs)
        _WAITS[rid] = JobWait(rid, now, now + 3600, PollSchedule())
    variant = _Variant(name, base_url, api_key)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
    errors = 0

    async def first(rid: str) -> Any:
        nonlocal errors
        held = variant.make()
        try:
            await variant.poll(held, rid)
        except Exception:
            errors += 1
        return held

    gc.collect()
    if profiler:
        profiler.enable()
    start, wall = _cpu(), time.perf_counter()
    await variant.start()
    held = await asyncio.gather(*(first(rid) for rid in ids))
    cold = _cpu() - start
    cold_wall = time.perf_counter() - wall
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile + ".cold")
    counter = iter(range(warm))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            try:
                await variant.poll(held[i % len(ids)], ids[i % len(ids)])
            except Exception:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: pool filled, caches primed
    counter = iter(range(warm))
    gc.collect()
    if profiler:
        profiler = __import__("cProfile").Profile(time.process_time)
        profiler.enable()
    start = _cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    warm_cpu = _cpu() - start
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile + ".warm")
    await variant.stop(held)
    return {"variant": name, "n": len(ids), "warm_polls": warm, "errors": errors,
            "cold_ms_per_poll": cold * 1000.0 / len(ids), "cold_wall_seconds": cold_wall,
            "warm_ms_per_poll": warm_cpu * 1000.0 / warm}


def _child_main(args: argparse.Namespace) -> int:
    spec = json.loads(sys.stdin.read())
    # Imports before anything is timed: a running triggerer has them loaded.
    import aiohttp  # noqa: F401
    from airflow.providers.http.hooks.http import HttpAsyncHook  # noqa: F401

    import airflow_provider_seedance.hooks.seedance
    import airflow_provider_seedance.waiting  # noqa: F401

    result = asyncio.run(_child(args.child, spec["base_url"], spec["api_key"], spec["ids"], spec["warm"],
                                spec["concurrency"], args.profile_to))
    print(json.dumps(result))
    return 0


def _run_child(name: str, spec: dict[str, Any], env: dict[str, str], profile: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "poll_peer.py"), "--child", name]
    if profile:
        cmd += ["--profile-to", profile]
    out = subprocess.run(cmd, input=json.dumps(spec), env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"poll_peer child {name} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _emulator_env(emu: Any) -> dict[str, str]:
    host, port = emu.base_url.split("://", 1)[1].rsplit(":", 1)
    env = dict(os.environ)
    env["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = emu.connection_json
    env["AIRFLOW_CONN_" + HTTP_CONN_ID.upper()] = json.dumps(
        {"conn_type": "http", "host": host, "port": int(port), "schema": "http",
         "extra": {"Authorization": f"Bearer {emu.api_key}", "Accept": "application/json"}})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    return env


def submit_jobs(emu: Any, count: int) -> list[str]:
    """Submit ``count`` generations; their ids (they stay unfinished for the run: the emulator runs slowly).

    :param emu: the emulator handle.
    :param count: how many.
    """
    import urllib.request

    ids = []
    for _ in range(count):
        req = urllib.request.Request(
            emu.base_url + GENERATIONS, method="POST",
            data=json.dumps({"prompt": "poll peer probe", "model": "seedance-2.0"}).encode(),
            headers={"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            ids.append(str(json.loads(resp.read())["requestId"]))
    return ids


def measure_poll_peer(n: int = 1000, warm: int = 5000, concurrency: int = 50, rounds: int = 3,
                      log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Spawn an emulator, submit ``n`` jobs, run every variant ``rounds`` times (interleaved); CPU ms per poll.

    :param n: waits starting at once in the cold phase (one job each).
    :param warm: polls in the warm phase.
    :param concurrency: polls in flight in the warm phase.
    :param rounds: rounds; the best (least disturbed) and the median are reported.
    :param log: progress lines.
    """
    from airflow_provider_seedance.emulator.testing import spawn_emulator

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with spawn_emulator(time_scale=10_000.0, balance=10**12) as emu:
        emu.admin.configure(log_limit=1)
        ids = submit_jobs(emu, n)
        spec = {"base_url": emu.base_url, "api_key": emu.api_key, "ids": ids, "warm": warm,
                "concurrency": concurrency}
        env = _emulator_env(emu)
        for r in range(rounds):
            for name in VARIANTS:
                runs[name].append(_run_child(name, spec, env))
                if log:
                    last = runs[name][-1]
                    log(f"  round {r + 1} {name}: cold {last['cold_ms_per_poll']:.3f} ms, "
                        f"warm {last['warm_ms_per_poll']:.3f} ms CPU/poll, errors {last['errors']}")
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        summary[name] = {phase: {"best": min(x[f"{phase}_ms_per_poll"] for x in results),
                                 "median": median([x[f"{phase}_ms_per_poll"] for x in results])}
                         for phase in ("cold", "warm")}
        summary[name]["errors"] = sum(x["errors"] for x in results)
    ratios = {phase: {stat: summary["ours"][phase][stat] / summary["peer"][phase][stat]
                      for stat in ("best", "median")} for phase in ("cold", "warm")}
    return {"n": n, "warm_polls": warm, "concurrency": concurrency, "rounds": rounds, "labels": VARIANTS,
            "cpu_ms_per_poll": summary, "ours_over_peer": ratios, "runs": runs}


def print_summary(result: dict[str, Any]) -> None:
    """Print the table of :func:`measure_poll_peer`'s result.

    :param result: what it returned.
    """
    print(f"\nCPU per status poll, ms (child process; best / median of {result['rounds']} rounds; "
          f"cold: {result['n']} waits at once; warm: {result['warm_polls']} polls, {result['concurrency']} "
          "in flight)")
    print(f"{'variant':44s} {'cold best':>10s} {'cold med':>10s} {'warm best':>10s} {'warm med':>10s}")
    for name, label in result["labels"].items():
        row = result["cpu_ms_per_poll"][name]
        print(f"{label:44s} {row['cold']['best']:10.3f} {row['cold']['median']:10.3f} "
              f"{row['warm']['best']:10.3f} {row['warm']['median']:10.3f}")
    r = result["ours_over_peer"]
    print(f"ours / peer: cold {r['cold']['best']:.2f}x (median {r['cold']['median']:.2f}x), "
          f"warm {r['warm']['best']:.2f}x (median {r['warm']['median']:.2f}x); goal <= 1.1x")


def profile_variant(name: str, n: int, warm: int, concurrency: int, top: int = 30) -> None:
    """Run one variant once under cProfile; print the costliest functions of each phase.

    :param name: the variant (``ours``, ``peer``, ``bare``).
    :param n: waits in the cold phase.
    :param warm: polls in the warm phase.
    :param concurrency: polls in flight (warm).
    :param top: rows per listing.
    """
    import pstats
    import tempfile

    from airflow_provider_seedance.emulator.testing import spawn_emulator

    with spawn_emulator(time_scale=10_000.0, balance=10**12) as emu, tempfile.TemporaryDirectory() as tmp:
        emu.admin.configure(log_limit=1)
        spec = {"base_url": emu.base_url, "api_key": emu.api_key, "ids": submit_jobs(emu, n), "warm": warm,
                "concurrency": concurrency}
        out = _run_child(name, spec, _emulator_env(emu), profile=os.path.join(tmp, name))
        print(json.dumps(out))
        for phase, polls in (("cold", n), ("warm", warm)):
            stats = pstats.Stats(os.path.join(tmp, f"{name}.{phase}"))
            print(f"\n=== {phase}: {polls} polls; cumulative time of the provider's functions ===")
            stats.sort_stats("cumulative").print_stats(r"airflow_provider_seedance|tenacity|providers/http", top)
            print(f"\n=== {phase}: own time, all functions ===")
            stats.sort_stats("tottime").print_stats(top)


async def _pieces(count: int) -> dict[str, float]:
    # Each piece of our poll on its own, no network: microseconds per call.
    import logging

    from airflow_provider_seedance.hooks import _retry
    from airflow_provider_seedance.hooks._connection import settings_from_connection
    from airflow_provider_seedance.hooks._http import interpret_response
    from airflow_provider_seedance.hooks.seedance import SeedanceHook, _job_path
    from airflow_provider_seedance.models import JobResult
    from airflow_provider_seedance.polling import PollSchedule
    from airflow_provider_seedance.waiting import JobWait

    rid = "req_0123456789abcdef"
    body = json.dumps({"success": True, "requestId": rid, "status": "processing", "model": "seedance-2.0",
                       "prompt": "a river", "duration": 5, "aspectRatio": "16:9", "output": None,
                       "error": None}).encode()
    conn = type("C", (), {"password": "sd2_key", "host": "http://127.0.0.1:9", "port": None})()
    settings = settings_from_connection(conn, "c", extra={})
    hook = SeedanceHook()
    log = logging.getLogger("pieces")
    wait = JobWait(rid, time.time(), time.time() + 3600, PollSchedule())
    payload = json.loads(body)
    pieces: dict[str, Callable[[], Any]] = {
        "SeedanceHook()": SeedanceHook,
        "build_retrying(async) + log_before_sleep": lambda: _retry.build_retrying(
            _retry.POLICIES["poll"], idempotent=True, asynchronous=True,
            before_sleep=_retry.log_before_sleep(log, "GET x", _retry.POLICIES["poll"])),
        "_job_path": lambda: _job_path(rid),
        "interpret_response (200, small JSON)": lambda: interpret_response(200, {}, body, settings, request_id=rid),
        "JobResult.from_api_json": lambda: JobResult.from_api_json(payload, request_id=rid),
        "JobWait.decide": lambda: wait.decide(JobResult.from_api_json(payload, request_id=rid), None, log=log),
        "settings_from_connection": lambda: settings_from_connection(conn, "c", extra={}),
    }
    out: dict[str, float] = {}
    for name, call in pieces.items():
        call()
        start = time.perf_counter()
        for _ in range(count):
            call()
        out[name] = (time.perf_counter() - start) / count * 1e6
    del hook
    return out


async def _decompose(base_url: str, api_key: str, ids: list[str], polls: int, concurrency: int,
                     rounds: int) -> dict[str, float]:
    # Warm polls through each layer of our poll, innermost first, beside the peer: the differences are what
    # each layer costs (our own package's private layers: this is its benchmark).
    import aiohttp
    from airflow.providers.http.hooks.http import HttpAsyncHook

    from airflow_provider_seedance.hooks._transport import aexchange
    from airflow_provider_seedance.hooks.seedance import SeedanceHook, _job_path

    now = time.time()
    from airflow_provider_seedance.polling import PollSchedule
    from airflow_provider_seedance.waiting import JobWait

    for rid in ids:
        _WAITS[rid] = JobWait(rid, now, now + 3600, PollSchedule())
    hooks = [SeedanceHook() for _ in ids]
    for hook, rid in zip(hooks, ids, strict=True):
        await hook.aget_job(rid)
    settings = await hooks[0]._aget_settings()
    http = await hooks[0]._async_hook("GET", settings)
    session = await hooks[0]._shared_session(settings)
    shared = aiohttp.ClientSession()
    peers = [HttpAsyncHook(method="GET", http_conn_id=HTTP_CONN_ID, retry_limit=1) for _ in ids]

    async def peer(i: int) -> Any:
        response = await peers[i].run(session=shared, endpoint=f"{GENERATIONS}/{ids[i]}",
                                      extra_options={"check_response": False})
        async with response:
            return await response.json()

    async def exchange(i: int) -> Any:
        return await aexchange(http, session, settings, "GET", _job_path(ids[i]), None, 3600.0)

    own = [await h._async_hook("GET", settings) for h in hooks]

    async def exchange_own(i: int) -> Any:
        return await aexchange(own[i], session, settings, "GET", _job_path(ids[i]), None, 3600.0)

    async def asend(i: int) -> Any:
        h = hooks[i]
        return await h._asend("GET", _job_path(ids[i]), None, ids[i], h._parser(ids[i]), 3600.0)

    async def aget_job(i: int) -> Any:
        return await hooks[i].aget_job(ids[i], timeout=3600.0)

    async def with_decide(i: int) -> Any:
        return await _our_poll(hooks[i], ids[i])

    from airflow_provider_seedance.hooks import seedance as hook_module

    def direct(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return fn(*args, **kwargs)

    async def no_tenacity(i: int) -> Any:
        # An experiment, not a variant: what the poll costs when its one attempt is not run through tenacity
        # (what a fast path for the first attempt would save; the retries themselves are not exercised here).
        hook = hooks[i]
        if hasattr(hook, "_controller"):  # the hook keeps one controller per kind of call
            hook._controller = lambda kind, asynchronous: direct
            try:
                return await hook.aget_job(ids[i], timeout=3600.0)
            finally:
                del hook._controller
        real, hook_module.build_retrying = hook_module.build_retrying, lambda *a, **k: direct
        try:
            return await hook.aget_job(ids[i], timeout=3600.0)
        finally:
            hook_module.build_retrying = real

    layers: dict[str, Callable[[int], Awaitable[Any]]] = {
        "peer: HttpAsyncHook.run + json()": peer,
        "ours 1: aexchange (HttpAsyncHook.run + capped read)": exchange,
        "ours 1b: aexchange, each wait's own SeedanceAsyncHttpHook": exchange_own,
        "ours 2: _asend (+ settings/hook/session lookups, answer())": asend,
        "ours 3: aget_job (+ _job_path, tenacity AsyncRetrying)": aget_job,
        "ours 4: aget_job + JobWait.decide (the trigger's poll)": with_decide,
        "experiment: ours 3 with tenacity bypassed": no_tenacity,
    }
    best = {name: float("inf") for name in layers}

    async def drive(call: Callable[[int], Awaitable[Any]]) -> float:
        counter = iter(range(polls))

        async def worker() -> None:
            for i in counter:
                await call(i % len(ids))

        gc.collect()
        collections = sum(g["collections"] for g in gc.get_stats())
        start = _cpu()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        spent = (_cpu() - start) * 1000.0 / polls
        if os.environ.get("BENCH_GC_COUNT"):
            print(f"{sum(g['collections'] for g in gc.get_stats()) - collections} collections, "
                  f"gen2 {gc.get_stats()[2]['collections']}", file=sys.stderr)
        return spent

    for call in layers.values():
        await drive(call)
    if os.environ.get("BENCH_GC_FREEZE"):  # diagnosis: is the gap the collector walking a big heap?
        gc.freeze()
    order = list(layers.items())
    for r in range(rounds):  # the order rotates each round: no layer always runs first or last
        for name, call in order[r % len(order):] + order[:r % len(order)]:
            best[name] = min(best[name], await drive(call))
    for hook in hooks:
        await hook.aclose()
    await shared.close()
    return best


def decompose(n: int, polls: int, concurrency: int, rounds: int) -> dict[str, float]:
    """Warm CPU ms per poll of each layer of our poll beside the peer (best of ``rounds``), in one child.

    :param n: jobs (and hooks).
    :param polls: polls per layer and round.
    :param concurrency: polls in flight.
    :param rounds: interleaved rounds.
    """
    from airflow_provider_seedance.emulator.testing import spawn_emulator

    with spawn_emulator(time_scale=10_000.0, balance=10**12) as emu:
        emu.admin.configure(log_limit=1)
        spec = {"base_url": emu.base_url, "api_key": emu.api_key, "ids": submit_jobs(emu, n), "warm": polls,
                "concurrency": concurrency, "rounds": rounds}
        cmd = [sys.executable, str(HERE / "poll_peer.py"), "--decompose-child"]
        out = subprocess.run(cmd, input=json.dumps(spec), env=_emulator_env(emu), capture_output=True, text=True,
                             timeout=900)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Command line.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=sorted(VARIANTS), default=None, help="cProfile one variant once")
    parser.add_argument("--pieces", action="store_true", help="time the pieces of our poll (no network)")
    parser.add_argument("--decompose", action="store_true", help="warm CPU per poll of each layer of ours")
    parser.add_argument("--decompose-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    if args.child:
        return _child_main(args)
    if args.decompose_child:
        spec = json.loads(sys.stdin.read())
        import airflow_provider_seedance.hooks.seedance  # noqa: F401

        print(json.dumps(asyncio.run(_decompose(spec["base_url"], spec["api_key"], spec["ids"], spec["warm"],
                                                spec["concurrency"], spec["rounds"]))))
        return 0
    isolate_airflow_home()
    if args.pieces:
        for name, us in asyncio.run(_pieces(2000)).items():
            print(f"{name:45s} {us:8.1f} us")
        return 0
    if args.decompose:
        for name, ms in decompose(min(args.n, 200), args.warm, args.concurrency, args.rounds).items():
            print(f"{name:60s} {ms:7.3f} ms CPU / poll")
        return 0
    if args.profile:
        profile_variant(args.profile, args.n, args.warm, args.concurrency)
        return 0
    started = time.time()
    result = measure_poll_peer(args.n, args.warm, args.concurrency, args.rounds,
                               log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(result, indent=1))
    print_summary(result)
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
