"""Run the fault matrix, print its table, and publish it as docs/fault-matrix.rst.

    python benchmarks/fault_matrix.py                # everything (about 2 minutes)
    python benchmarks/fault_matrix.py --no-engine    # skip the real-scheduler row (worker killed after submit)
    python benchmarks/fault_matrix.py --only 429-submit-backoff,failed-job --no-docs

The scenarios and their expectations are ``tests/faults/fault_scenarios.py``; the in-process part runs in a
fresh AIRFLOW_HOME in a subprocess (``tests/faults/fault_harness.py``), the engine part through
``tests/faults/engine_run.py``. Exit status 1 when any row breaks its expectations.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAULTS = REPO / "tests" / "faults"
sys.path.insert(0, str(FAULTS))

from fault_report import render_rst, render_text  # noqa: E402 - after the path set-up
from fault_scenarios import SCENARIOS, check_row  # noqa: E402


def _in_process(only: str) -> list[dict[str, object]]:
    out = Path(tempfile.mkdtemp(prefix="seedance-fault-matrix-")) / "rows.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME"))}
    cmd = [sys.executable, str(FAULTS / "fault_harness.py"), "--json", str(out)]
    if only:
        cmd += ["--only", only]
    subprocess.run(cmd, env=env, check=True, timeout=900)
    return list(json.loads(out.read_text())["rows"])


def main(argv: list[str] | None = None) -> int:
    """Run, print, publish."""
    parser = argparse.ArgumentParser(description="Run the Seedance provider's fault matrix.")
    parser.add_argument("--no-engine", action="store_true", help="skip the real-scheduler scenario")
    parser.add_argument("--only", default="", help="comma-separated scenario names (in-process ones)")
    parser.add_argument("--no-docs", action="store_true", help="do not write the docs page")
    parser.add_argument("--rst", type=Path, default=REPO / "docs" / "fault-matrix.rst", help="docs page to write")
    args = parser.parse_args(argv)

    seconds: dict[str, float] = {}
    started = time.monotonic()
    rows = _in_process(args.only)
    seconds[f"{len(rows)} in-process scenarios (DAG.test)"] = time.monotonic() - started
    if not args.no_engine and not args.only:
        from engine_run import kill_row, observe_engine

        started = time.monotonic()
        rows.append(kill_row(observe_engine()))
        seconds["the real engine (start, three DAG runs, stop)"] = time.monotonic() - started

    print(render_text(rows))
    scenarios = {s.name: s for s in SCENARIOS}
    failed = [row["name"] for row in rows if check_row(scenarios[str(row["name"])], row)]
    summary = f"\n{len(rows) - len(failed)} of {len(rows)} scenarios as expected"
    print(summary + (f"; FAILED: {failed}" if failed else ""))
    if not args.no_docs:
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        complete = "all scenarios" if not args.only and not args.no_engine else "a subset"
        args.rst.write_text(render_rst(rows, generated=f"{today}, {complete}", seconds=seconds), encoding="utf-8")
        print(f"wrote {args.rst}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
