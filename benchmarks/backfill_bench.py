"""Backfills at the vendor's limits: the provider's example DAG vs the http-provider DAG, queue vs refuse mode.

    python benchmarks/backfill_bench.py                 # 1,000 rows, limit 20, all four runs (make bench-backfill)
    python benchmarks/backfill_bench.py --rows 100 --dag provider --mode queue   # one quick configuration
    python benchmarks/backfill_bench.py --render        # rewrite the docs section from the saved figures

Prints a table, saves the raw figures (``benchmarks/backfill_results.json``) and, for a full run, writes
the backfill section of ``docs/performance.rst`` (between its ``backfill-results`` markers). Times are
never asserted: the figures are compared as ratios (to the ideal, between the two DAGs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _env import isolate_airflow_home  # noqa: E402
from _machine import describe_machine  # noqa: E402
from backfill_harness import BenchSettings, RunFigures, backfill_stack  # noqa: E402

RESULTS = HERE / "backfill_results.json"
DOCS_PAGE = ROOT / "docs" / "performance.rst"
START, END = ".. backfill-results-start", ".. backfill-results-end"


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table_rows(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table (one column per run).

    :param runs: raw figures of each run.
    """
    header = ["", *[r.get("label") or f"{r['dag']} / {r['mode']}" for r in runs]]

    def line(label: str, fn: Any) -> list[str]:
        return [label, *[fn(r) for r in runs]]

    def cpu(role: str) -> Any:
        return lambda r: _fmt(r["cpu_seconds"].get(role, 0.0) / r["rows"], 3)

    rows = [
        line("run state", lambda r: r["run_state"]),
        line("pool slots (deferred tasks counted)", lambda r: str(r["pool_slots"])),
        line("wall time (s)", lambda r: _fmt(r["wall_seconds"])),
        line("ideal: sum of durations / limit (s)", lambda r: _fmt(r["ideal_seconds"])),
        line("wall / ideal", lambda r: _fmt(r["wall_vs_ideal"], 2)),
        line("POSTs that created a job", lambda r: str(r["jobs_created"])),
        line("duplicate jobs", lambda r: str(r["duplicate_jobs"])),
        line("rows lost (not done at the end)", lambda r: str(r["rows_lost"])),
        line("429s received (concurrency + rate)",
             lambda r: f"{r['received_429']} ({r['received_429_concurrency']} + {r['received_429_rate']})"),
        line("task tries beyond the first", lambda r: str(r["tries_beyond_first"])),
        line("failed tasks", lambda r: str(r["failed_tasks"])),
        line("status GETs per job (minimum: 1)", lambda r: _fmt(r["status_gets"] / max(1, r["jobs_created"]), 2)),
        # The http DAG's sensors start when the pool lets them, not when the job does: its poke count
        # over a job's life at the vendor is no minimum of anything, so it is not shown.
        line("GETs its own schedule makes per job, no latency",
             lambda r: _fmt(r["status_gets_minimum"] / max(1, r["jobs_created"]), 2) if r["dag"] == "provider"
             else "-"),
        line("worker-slot-seconds per video", lambda r: _fmt(r["worker_slot_seconds"] / r["rows"], 2)),
        line("CPU s per video: scheduler", cpu("scheduler")),
        line("CPU s per video: triggerer", cpu("triggerer")),
        line("CPU s per video: workers", cpu("workers")),
        line("CPU s per video: api-server", cpu("api-server")),
        line("CPU s per video: dag-processor", cpu("dag-processor")),
        line("CPU s per video: scheduler + triggerer + workers",
             lambda r: _fmt(sum(r["cpu_seconds"].get(k, 0.0) for k in ("scheduler", "triggerer", "workers"))
                            / r["rows"], 3)),
        line("peak deferred tasks", lambda r: str(r["deferred_peak"])),
        line("row overhead: pool-slot time beyond the job, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("slot_overhead", {}).get("median"), 2)),
        line("  submit step, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("submit_step", {}).get("median"), 2)),
        line("  deferral to trigger start, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("defer_to_trigger_start", {}).get("median"), 2)),
        line("  job end to trigger firing, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("job_end_to_trigger_fired", {}).get("median"), 2)),
        line("  firing to finishing step start, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("fired_to_finish_step_start", {}).get("median"), 2)),
        line("  finishing step, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("finish_step", {}).get("median"), 2)),
        line("  job end to the sensor's end, median (s)",
             lambda r: _fmt(r.get("profile", {}).get("job_end_to_sensor_end", {}).get("median"), 2)),
        line("peak busy worker processes", lambda r: str(r["workers_busy_peak"])),
        line("vendor: peak running / peak waiting for a slot",
             lambda r: f"{r['vendor_peak_running']} / {r['vendor_peak_waiting']}"),
    ]
    return header, rows


def print_table(runs: list[dict[str, Any]]) -> None:
    """Print the table to stdout.

    :param runs: raw figures of each run.
    """
    header, rows = table_rows(runs)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def rst_table(runs: list[dict[str, Any]]) -> str:
    """The table as reStructuredText (list-table).

    :param runs: raw figures of each run.
    """
    header, rows = table_rows(runs)
    out = [".. list-table::", "   :header-rows: 1", "   :stub-columns: 1", ""]
    for row in [header, *rows]:
        out.append("   * - " + (row[0] or " "))
        out += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(out) + "\n"


def ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """http-DAG figure over the provider's, per vendor mode (worker-slot time and CPU per video).

    :param runs: raw figures of each run.
    """
    out: dict[str, dict[str, float]] = {}
    # The pool-size variants (labelled "... / pool N") are sizing figures, not the side-by-side comparison.
    by = {(r["dag"], r["mode"]): r for r in runs if " / pool " not in (r.get("label") or "")}
    for mode in ("queue", "refuse"):
        ours, theirs = by.get(("provider", mode)), by.get(("http", mode))
        if not ours or not theirs:
            continue

        def core(r: dict[str, Any]) -> float:
            return sum(r["cpu_seconds"].get(k, 0.0) for k in ("scheduler", "triggerer", "workers"))

        out[mode] = {
            "worker_slot_seconds": theirs["worker_slot_seconds"] / max(ours["worker_slot_seconds"], 1e-9),
            "cpu_scheduler_triggerer_workers": core(theirs) / max(core(ours), 1e-9),
            "cpu_workers": theirs["cpu_seconds"].get("workers", 0.0) / max(ours["cpu_seconds"].get("workers", 0.0),
                                                                           1e-9),
        }
    return out


def render_section(results: dict[str, Any], notes: str) -> str:
    """The backfill section of ``docs/performance.rst`` (between the markers).

    :param results: the saved results.
    :param notes: hand-written findings (``benchmarks/backfill_notes.rst``), with ``$name`` placeholders.
    """
    from string import Template

    s = results["settings"]
    machine = results["machine"]
    text = [
        START, "",
        "Backfills at the vendor's limits",
        "--------------------------------", "",
        f"One DAG run over an asset table of {s['rows']:,} rows (SQLite, through the common.sql hook) against the "
        f"emulator with a limit of {s['limit']} concurrent jobs per key and {s['requests_per_second']:g} requests "
        f"per second, in both vendor modes, on a real scheduler + triggerer + dag-processor + api-server "
        f"(LocalExecutor, {s['parallelism']} worker processes, {s['metadata_db']} metadata DB). Side by side: the "
        f"provider's ``example_seedance_asset_backfill`` with the documented pool (deferred tasks counted; "
        f"{s.get('queue_pool_slots', s['pool_slots'])} slots in queue mode, {s['pool_slots']} in refuse mode), "
        "and the DAG a user would write from the http provider alone "
        "(``benchmarks/backfill_dags/bench_http_asset_backfill.py``: mapped ``HttpOperator`` to submit, mapped "
        "``HttpSensor(deferrable=True)`` to wait, same pool, one task saving the videos and writing the table). "
        f"Job durations: {s['queued'][0]:g}-{s['queued'][1]:g} s queued at the vendor plus a log-normal "
        f"processing time (median {s['processing_median']:g} s, clamped to {s['processing_bounds'][0]:g}-"
        f"{s['processing_bounds'][1]:g} s), the same per row in every run; every vendor duration and client "
        f"interval is multiplied by the time scale {s['time_scale']:g} (seconds below are wall seconds of this "
        f"run). Command: ``{results['command']}`` ({results['duration_seconds'] / 60:.0f} min).", "",
        rst_table(results["runs"]),
        f"Machine ({machine.get('date', '?')}): {machine.get('cpu', '?')}, {machine.get('logical_cpus', '?')} "
        f"logical CPUs{' (virtual machine)' if machine.get('virtual_machine') else ''}, "
        f"{machine.get('memory_gib', '?')} GiB, {machine.get('os', '?')}, {machine.get('python', '?')}, "
        f"Airflow {machine.get('packages', {}).get('apache-airflow', '?')}; load average at the end "
        f"{machine.get('load_average', '?')} (mostly the benchmark's own Airflow engine).", "",
        Template(notes.strip()).safe_substitute(_facts(results)), "",
        END,
    ]
    return "\n".join(text) + "\n"


def _facts(results: dict[str, Any]) -> dict[str, str]:
    facts: dict[str, str] = {"rows": f"{results['settings']['rows']:,}", "limit": str(results["settings"]["limit"])}
    for r in results["runs"]:
        key = (r.get("label") or f"{r['dag']} / {r['mode']}").replace(" / ", "_").replace(" ", "_")
        facts[f"{key}_wall_ratio"] = _fmt(r["wall_vs_ideal"], 2)
        facts[f"{key}_wall"] = _fmt(r["wall_seconds"], 0)
        facts[f"{key}_ideal"] = _fmt(r["ideal_seconds"], 0)
        facts[f"{key}_gets"] = _fmt(r["status_gets"] / max(1, r["jobs_created"]), 1)
        facts[f"{key}_slot_s"] = _fmt(r["worker_slot_seconds"] / r["rows"], 1)
        facts[f"{key}_cpu"] = _fmt(sum(r["cpu_seconds"].get(k, 0.0) for k in ("scheduler", "triggerer", "workers"))
                                   / r["rows"], 2)
        facts[f"{key}_429"] = str(r["received_429"])
        facts[f"{key}_gets_vs_min"] = _fmt(r.get("gets_vs_minimum"), 2)
        # Vendor-slot time lost per row, and what it would weigh against the unscaled job durations: Airflow's
        # steps take as long whatever the time scale, the jobs do not.
        lost = (r["wall_seconds"] - r["ideal_seconds"]) * r["limit"] / r["rows"]
        mean_job = r["ideal_seconds"] * r["limit"] / r["rows"]
        facts[f"{key}_lost_per_row"] = _fmt(lost, 1)
        facts[f"{key}_mean_job"] = _fmt(mean_job, 1)
        facts[f"{key}_unscaled_mean_job"] = _fmt(mean_job / r["time_scale"], 0)
        facts[f"{key}_unscaled_ratio"] = _fmt((mean_job / r["time_scale"] + lost) / (mean_job / r["time_scale"]), 2)
        facts[f"{key}_pool"] = str(r["pool_slots"])
        facts[f"{key}_rows_lost"] = f"{r['rows_lost']:,}"
        facts[f"{key}_failed_tasks"] = str(r["failed_tasks"])
        facts[f"{key}_state"] = str(r["run_state"])
        for role in ("api-server", "scheduler", "triggerer", "workers"):
            facts[f"{key}_{role.replace('-', '_')}_cpu"] = _fmt(r["cpu_seconds"].get(role, 0.0) / r["rows"], 2)
        facts[f"{key}_tries"] = str(r["tries_beyond_first"])
        facts[f"{key}_vendor_waiting"] = str(r["vendor_peak_waiting"])
        for phase, values in (r.get("profile") or {}).items():
            facts[f"{key}_{phase}"] = _fmt(values.get("median"), 1)
    for mode, values in ratios(results["runs"]).items():
        for name, value in values.items():
            facts[f"ratio_{mode}_{name}"] = _fmt(value, 1)
    return facts


def write_docs(results: dict[str, Any], page: Path) -> None:
    """Replace (or append) the backfill section of the performance page.

    :param results: the saved results.
    :param page: ``docs/performance.rst``.
    """
    notes_path = HERE / "backfill_notes.rst"
    notes = notes_path.read_text(encoding="utf-8") if notes_path.exists() else ""
    section = render_section(results, notes)
    text = page.read_text(encoding="utf-8")
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    page.write_text(text, encoding="utf-8")


def _progress(figures: RunFigures, out: Path | None, results: dict[str, Any]) -> None:
    print(f"[backfill] {figures.label}: {figures.run_state} in {figures.wall_seconds:.0f} s "
          f"({figures.wall_vs_ideal:.2f}x ideal), {figures.jobs_created} jobs, {figures.duplicate_jobs} duplicates, "
          f"{figures.rows_lost} rows lost, {figures.received_429} 429s", flush=True)
    if out is not None:  # saved after every run: a cut-short run keeps what it measured
        out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


def _results(args: argparse.Namespace, argv: list[str] | None, full: bool, started: float,
             settings: BenchSettings, runs: list[RunFigures]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": "make bench-backfill" if full else "python benchmarks/backfill_bench.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "duration_seconds": round(time.monotonic() - started, 1),
        "machine": describe_machine(),
        "settings": {**settings.__dict__, "pool_slots": settings.slots,
                     "queue_pool_slots": settings.slots_for("queue")},
        "runs": [r.to_json() for r in runs],
    }
    results["ratios_http_over_provider"] = ratios(results["runs"])
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=20, help="the vendor's concurrent jobs per key")
    parser.add_argument("--pool", type=int, default=None,
                        help="pool slots in both modes (default: the limit; in queue mode the guide's recipe)")
    parser.add_argument("--queue-pool", type=int, default=None,
                        help="pool slots in queue mode (default: the guide's limit x (1 + O / D))")
    parser.add_argument("--time-scale", type=float, default=None, help="vendor durations x this")
    parser.add_argument("--dag", action="append", choices=("provider", "http"), default=None)
    parser.add_argument("--mode", action="append", choices=("queue", "refuse"), default=None)
    parser.add_argument("--metadata-db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help=f"raw figures (default {RESULTS.name} for a full run)")
    parser.add_argument("--docs", type=Path, default=None, help="write the docs section into this page")
    parser.add_argument("--variant-pool", type=int, action="append", default=[],
                        help="also run the provider in queue mode with this pool size (sizing; repeatable)")
    parser.add_argument("--run-timeout", type=float, default=2400, help="seconds allowed per DAG run")
    parser.add_argument("--render", action="store_true", help="only rewrite the docs section from the saved figures")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the engine's home, logs and table here (default: a temporary directory)")
    args = parser.parse_args(argv)

    if args.render:
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
        print_table(results["runs"])
        write_docs(results, args.docs or DOCS_PAGE)
        return 0

    isolate_airflow_home()
    settings = BenchSettings(rows=args.rows, limit=args.limit, pool_slots=args.pool, metadata_db=args.metadata_db,
                             queue_pool_slots=args.queue_pool)
    if args.time_scale is not None:
        settings.time_scale = args.time_scale
    if args.parallelism is not None:
        settings.parallelism = args.parallelism
    dags = args.dag or ["provider", "http"]
    modes = args.mode or ["queue", "refuse"]
    full = args.dag is None and args.mode is None and args.rows >= 1000 and args.pool is None
    out = args.out or (RESULTS if full else None)
    started = time.monotonic()
    runs: list[RunFigures] = []
    with tempfile.TemporaryDirectory(prefix="seedance-backfill-") as tmp, \
            backfill_stack(args.workdir or Path(tmp), settings) as stack:
        for mode in modes:
            for dag in dags:
                runs.append(stack.run(dag, mode, timeout=args.run_timeout))
                _progress(runs[-1], out, _results(args, argv, full, started, settings, runs))
        for slots in args.variant_pool:
            runs.append(stack.run("provider", "queue", timeout=args.run_timeout, pool_slots=slots))
            _progress(runs[-1], out, _results(args, argv, full, started, settings, runs))
    results = _results(args, argv, full, started, settings, runs)
    print()
    print_table(results["runs"])
    for mode, values in results["ratios_http_over_provider"].items():
        print(f"http DAG / provider ({mode} mode): " + ", ".join(f"{k} {v:.1f}x" for k, v in values.items()))
    if out is not None:
        out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"raw figures: {out}")
    if args.docs or full:
        write_docs(results, args.docs or DOCS_PAGE)
        print(f"docs section written: {args.docs or DOCS_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
