"""Run every benchmark, print the tables, save the raw figures and write ``docs/performance.rst``.

    python benchmarks/run_all.py            # full: N = 100, 1,000, 2,500, 10,000 (about 15-20 min on 2 cores)
    python benchmarks/run_all.py --quick    # N = 100 and 1,000, fewer import samples (about 5 min)
    python benchmarks/run_all.py --render   # rewrite the docs page from benchmarks/results.json only

A full run rewrites ``docs/performance.rst`` and ``benchmarks/results.json``; a quick run only prints
(add ``--docs docs/performance.rst`` to write anyway).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

from _env import isolate_airflow_home
from _machine import describe_machine
from _report import gc_table, import_table, poll_cost_table, render_page, scale_tables, target_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
NOTES = HERE / "performance_notes.rst"
DOCS_PAGE = ROOT / "docs" / "performance.rst"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _pool_size() -> int:
    import aiohttp

    # The hook builds its shared session's connector with aiohttp's default connection limit.
    return int(inspect.signature(aiohttp.TCPConnector.__init__).parameters["limit"].default)


def run(quick: bool, sizes: list[int] | None, before: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the suite; return the results document.

    :param quick: fewer and smaller runs.
    :param sizes: N values (default 100, 1,000 and, unless quick, 10,000).
    :param before: older checkouts the TLS-context and stall benchmarks also run against (before/after).
    """
    import gc_pause
    import hostile_stall
    import import_overhead
    import poll_cost
    import poll_path
    import poll_peer
    import tls_contexts
    import triggerer_scale

    started = time.time()
    machine = describe_machine()
    _log(f"machine: {machine['cpu']}, {machine['logical_cpus']} CPUs, load {machine['load_average']}")
    _log("DAG-parse import overhead ...")
    imports = import_overhead.measure_import_overhead(runs=10 if quick else 15)
    _log("CPU per status request, tight loop ...")
    costs = poll_cost.measure_poll_costs(requests=1500 if quick else 3000, rounds=2 if quick else 3)
    _log("the poll path's size ...")
    path = poll_path.measure_poll_path()
    _log("CPU per poll beside the peer (HttpAsyncHook.run on a shared session), cold and warm ...")
    peer = poll_peer.measure_poll_peer(n=200 if quick else 1000, warm=2000 if quick else 5000,
                                       rounds=1 if quick else 3, log=_log)
    _log("TLS contexts built when waits start at once ...")
    tls = tls_contexts.measure_tls_contexts(n=200 if quick else 1000, trees=[None, *before])
    _log("event-loop stall per hostile 4 MiB answer ...")
    stalls = hostile_stall.measure_stalls([None, *before])
    sizes = sizes or ([100, 1000] if quick else [100, 1000, 2500, 10_000])
    _log("full garbage-collection pause against waits in flight ...")
    gc_pauses = gc_pause.measure_gc_pauses((1000, 2500) if quick else (1000, 2500, 5000, 10_000))
    # The no-HTTP floor runs once, at the largest N that is still quick; the gc.freeze() variant at the
    # largest N, where full collections are long enough to matter.
    floor_at = tuple(n for n in sizes if n <= 1000)[-1:]
    # gc.freeze() where the stall bound is set (1,000 and 2,500); the bare aiohttp trigger where the CPU
    # bound is set (1,000).
    frozen_at = tuple(n for n in sizes if n in (1000, 2500))
    bare_at = tuple(n for n in sizes if n == 1000)
    scale = triggerer_scale.run_scale_suite(sizes, triggerer_scale.IMPLEMENTATIONS, floor_at=floor_at,
                                            frozen_at=frozen_at, bare_at=bare_at, log=_log)
    return {
        "command": "make bench" + (" BENCH_ARGS=--quick" if quick else ""),
        "mode": "quick" if quick else "full",
        "machine": machine,
        "duration_seconds": time.time() - started,
        "settings": {
            "job_seconds": [triggerer_scale.MIN_JOB_SECONDS, triggerer_scale.MAX_JOB_SECONDS],
            "arrival_window": triggerer_scale.ARRIVAL_WINDOW,
            "poll_interval": triggerer_scale.DEFAULT_POLL_INTERVAL,
            "max_poll_interval": triggerer_scale.DEFAULT_MAX_POLL_INTERVAL,
            "baseline_interval": triggerer_scale.BASELINE_INTERVAL,
            "pool_size": _pool_size(),
            "scale_by_n": {str(n): triggerer_scale.default_scale(n) for n in sizes},
        },
        "imports": imports,
        "poll_cost": costs,
        "poll_path": path,
        "poll_peer": peer,
        "tls_contexts": tls,
        "hostile_stall": stalls,
        "gc_pauses": gc_pauses,
        "scale": scale,
    }


def print_tables(results: dict[str, Any]) -> None:
    """Print every table to stdout.

    :param results: the results document.
    """
    tables = [target_table(results), *scale_tables(results.get("scale", []))]
    for key, build in (("poll_cost", poll_cost_table), ("gc_pauses", gc_table), ("imports", import_table)):
        if results.get(key):
            tables.append(build(results[key]))
    for table in tables:
        print()
        print(table.text())
    import hostile_stall
    import poll_peer
    import tls_contexts

    if results.get("poll_peer"):
        poll_peer.print_summary(results["poll_peer"])
    if results.get("tls_contexts"):
        tls_contexts.print_rows(results["tls_contexts"])
    if results.get("hostile_stall"):
        hostile_stall.print_stalls(results["hostile_stall"])


def main(argv: list[str] | None = None) -> int:
    """Command line.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only, fewer import samples")
    parser.add_argument("--n", type=int, action="append", help="override the N values (repeatable)")
    parser.add_argument("--docs", type=Path, default=None, help="write the docs page here")
    parser.add_argument("--no-docs", action="store_true", help="do not write the docs page")
    parser.add_argument("--render", action="store_true", help="only re-render the docs page from results.json")
    parser.add_argument("--before", action="append", default=[], metavar="DIR",
                        help="an older checkout (git worktree) the TLS and stall benchmarks also run against")
    args = parser.parse_args(argv)
    isolate_airflow_home()
    if args.render:
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
    else:
        results = run(args.quick, args.n, tuple(args.before))
        if not args.quick or args.docs:
            RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print_tables(results)
    page = args.docs or (None if args.quick and not args.render else DOCS_PAGE)
    if page is not None and not args.no_docs:
        text = render_page(results, NOTES.read_text(encoding="utf-8"))
        # Sections written elsewhere (between their markers) are kept: the backfill section is make
        # bench-backfill's; the issue 22/23 figures are added by hand from poll_peer, tls_contexts, hostile_stall.
        old = page.read_text(encoding="utf-8") if page.exists() else ""
        for name in ("issue-22-23", "backfill"):
            start, end = f".. {name}-results-start", f".. {name}-results-end"
            if start in old and end in old:
                text = text.rstrip("\n") + "\n\n" + start + old.split(start, 1)[1].split(end, 1)[0] + end + "\n"
        page.write_text(text, encoding="utf-8")
        _log(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
