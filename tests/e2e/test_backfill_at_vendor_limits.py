"""The backfill benchmark's harness at 50 rows with the vendor's concurrency limit on: counts, never times.

A real scheduler + triggerer + dag-processor + api-server (LocalExecutor, SQLite metadata DB) run
``example_seedance_asset_backfill`` over a 50-row table against an emulator allowing 5 concurrent jobs
per key in *refuse* mode (a submit past the limit answers 429, nothing is created) and 100 requests per
second. The full-size figures (both vendor modes, the http-provider DAG beside it) are
``make bench-backfill``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))

from backfill_harness import BackfillStack, BenchSettings, RunFigures  # noqa: E402

pytestmark = pytest.mark.e2e

ROWS, LIMIT = 50, 5


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackfillStack]:
    """The engine and the emulator; jobs take 3-10 s (time scale 0.1 of 25-100 s)."""
    settings = BenchSettings(rows=ROWS, limit=LIMIT, time_scale=0.1, processing_bounds=(25.0, 100.0),
                             metadata_db="sqlite", parallelism=8)
    with BackfillStack(tmp_path_factory.mktemp("backfill-limits"), settings) as stack:
        yield stack


def _assert_each_row_paid_once(figures: RunFigures, stack: BackfillStack) -> None:
    assert figures.run_state == "success", figures.task_states
    assert figures.jobs_created == ROWS
    assert figures.rows_with_a_job == ROWS
    assert figures.duplicate_jobs == 0
    assert figures.rows_lost == 0
    assert figures.failed_tasks == 0, figures.task_states
    # The pool (LIMIT slots, deferred tasks counted) kept the account within its limit.
    assert figures.vendor_peak_running <= LIMIT
    videos = list((stack.video_dir / "asset_backfill").glob("*/*.mp4"))
    assert len(videos) == ROWS


def test_refuse_mode_every_row_once_and_no_429_fails_a_task(limited_stack: BackfillStack) -> None:
    figures = limited_stack.run("provider", "refuse", timeout=900)
    print(f"\n[e2e] refuse mode: {figures.to_json()}")

    _assert_each_row_paid_once(figures, limited_stack)
    # A 429 is waited out (hook at submit, trigger while polling): never a failed try. (A try can still fail
    # on Airflow's own resume race with jobs this short; its retry resumes the same job, counted above.)
    home = limited_stack.engine.home if limited_stack.engine is not None else Path()
    first_tries = (home / "logs").glob("dag_id=example_seedance_asset_backfill/run_id=*/task_id=*/*/attempt=1.log")
    for log in first_tries:
        if (log.parent / "attempt=2.log").exists():
            assert "RateLimit" not in log.read_text(encoding="utf-8", errors="replace"), log
