"""The fault matrix, asserted row by row: outcome, error text, and the emulator's counts.

The scenarios and their expectations are the table in ``fault_scenarios.py`` (the same table
``benchmarks/fault_matrix.py`` prints and publishes). They run once, in a subprocess with its own
AIRFLOW_HOME (``fault_harness.py``: real DAG runs through ``DAG.test()`` against an in-thread emulator),
so Airflow's in-process test runner leaves nothing behind in this pytest process. The worker-kill row
needs a real scheduler: ``test_worker_killed_after_submit.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fault_scenarios import SCENARIOS, Scenario, check_row, short_error

pytestmark = pytest.mark.integration  # about a minute of DAG runs: `make test-integration`

HERE = Path(__file__).resolve().parent
IN_PROCESS = [s for s in SCENARIOS if s.path != "engine"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("fault-matrix") / "rows.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME"))}
    proc = subprocess.run([sys.executable, str(HERE / "fault_harness.py"), "--json", str(out)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    data = json.loads(out.read_text())
    print(f"\n[fault matrix] {len(data['rows'])} scenarios, Airflow output: {data['log']}")
    return {row["name"]: row for row in data["rows"]}


@pytest.mark.parametrize("scenario", IN_PROCESS, ids=[s.name for s in IN_PROCESS])
def test_scenario(scenario: Scenario, rows: dict[str, dict[str, Any]]) -> None:
    row = rows[scenario.name]
    problems = check_row(scenario, row)
    summary = {k: row.get(k) for k in ("state", "tries", "posts", "jobs", "orphans", "left_running", "cancels",
                                        "requests", "errors_by_try")}
    assert not problems, f"{problems}\n{summary}"


def test_every_row_was_provoked_and_counted(rows: dict[str, dict[str, Any]]) -> None:
    assert set(rows) == {s.name for s in IN_PROCESS}
    for scenario in IN_PROCESS:
        row = rows[scenario.name]
        armed = bool(scenario.faults or scenario.faults_while_deferred)
        # A fault scenario that injected nothing would prove nothing; the others must see none.
        assert (row["faults_injected"] > 0) is armed, scenario.name


def test_no_duplicate_without_opt_in_and_nothing_left_running(rows: dict[str, dict[str, Any]]) -> None:
    assert sum(r["left_running"] for r in rows.values()) == 0
    assert {n for n, r in rows.items() if r["duplicates"]} == {s.name for s in IN_PROCESS if s.opted_in}


def test_ambiguous_submits_are_not_retried_by_airflow(rows: dict[str, dict[str, Any]]) -> None:
    ambiguous = [s for s in IN_PROCESS if s.expect_error == "SeedanceAmbiguousSubmitNoRetryError"]
    assert len(ambiguous) >= 5
    for scenario in ambiguous:
        row = rows[scenario.name]
        assert scenario.operator_kwargs.get("retries") == 1  # Airflow would have retried any other failure
        assert row["tries"] == 1
        assert "not re-sent, not retried" in short_error(row["error"], cause=row["cause"])


def test_failures_name_the_request_and_never_the_key(rows: dict[str, dict[str, Any]]) -> None:
    for name, row in rows.items():
        for text in row["errors_by_try"]:
            assert row["secrets"][0] not in (text or ""), name
    by_name = {n: r["error"] or "" for n, r in rows.items()}
    assert "content policy violation" in by_name["failed-job"]
    assert "req_" in by_name["never-finishes-deferred"]


def test_the_report_page_is_valid_restructuredtext(rows: dict[str, dict[str, Any]]) -> None:
    import io

    import docutils.core
    from fault_report import render_rst

    text = render_rst(list(rows.values()), generated="test", seconds={"matrix": 1.0})
    warnings = io.StringIO()
    doctree = docutils.core.publish_doctree(
        text, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": warnings}
    )
    assert warnings.getvalue() == ""
    assert doctree.astext().startswith("Fault matrix")
    assert "req_…" in doctree.astext()  # escaped: not read as a link target
