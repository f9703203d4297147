"""Stop and spend: max_credits, dry run, kill / execution_timeout, and bad inputs refused before any POST."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time

import pytest

from airflow_provider_seedance.errors import SeedanceError
from tests.batch.conftest import CREATE, TaskInstance, jobs_per_row, make_operator, run_batch, submits


def test_max_credits_stops_submitting_and_leaves_the_rest_pending(emu, table):
    table.fill(10)
    price = run_batch(dry_run=True)["credits_estimated"] // 10

    summary = run_batch(max_credits=3 * price + price // 2, max_in_flight=2)

    assert summary["submitted"] == 3
    assert summary["succeeded"] == 3
    assert summary["pending"] == 7
    assert "max_credits" in summary["stopped"]
    assert summary["credits_charged"] <= 3 * price + price // 2
    assert submits(emu) == 3
    rows = table.rows()
    assert sum(r["video_status"] is None for r in rows.values()) == 7
    assert all(r["claimed_by"] is None for r in rows.values())  # handed back for the next run


def test_dry_run_lists_rows_credits_and_drain_time_and_spends_nothing(emu, table):
    keys = table.fill(10)
    before = table.rows()

    summary = run_batch(dry_run=True, max_in_flight=4, expected_job_seconds=30)

    assert summary["dry_run"] is True
    assert summary["would_submit"] == 10
    assert summary["keys"] == keys
    assert summary["credits_estimated"] > 0
    assert summary["window"] == 4
    assert summary["estimated_drain_seconds"] == 3 * 30  # 10 rows through a window of 4: three waves
    assert emu.admin.requests() == [] or all(e["endpoint"] == "models" for e in emu.admin.requests())
    assert table.rows() == before  # not even a claim


def _rows_with_a_job(table) -> int:
    try:
        return sum(bool(r["request_id"]) for r in table.rows().values())
    except sqlite3.OperationalError:  # the batch's writer holds the lock: look again
        return 0


def test_execution_timeout_cancels_the_jobs_in_flight_and_writes_their_rows(emu, table):
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    table.fill(5)
    emu.admin.set_next_jobs(never_finishes=True, count=3)
    op = make_operator(max_in_flight=3)

    def time_out_once_three_are_in_flight() -> None:
        # The alarm execution_timeout sets, rung once three rows have their job id (polled, never a fixed time).
        while _rows_with_a_job(table) < 3:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGALRM)

    # What the task runner does with execution_timeout: SIGALRM raises in execute, then on_kill.
    def run_with_execution_timeout() -> None:
        try:
            with timeout(120):
                threading.Thread(target=time_out_once_three_are_in_flight, daemon=True).start()
                op.execute({"ti": TaskInstance()})
        except AirflowTaskTimeout:
            op.on_kill()
            raise

    with pytest.raises(AirflowTaskTimeout):
        run_with_execution_timeout()

    rows = table.rows()
    cancelled = {k for k, r in rows.items() if r["video_status"] == "cancelled"}
    assert len(cancelled) == 3
    assert {emu.admin.job(rows[k]["request_id"])["status"] for k in cancelled} == {"cancelled"}
    assert all(r["claimed_by"] is None for r in rows.values())


def test_a_killed_batch_stops_submitting(emu, table):
    table.fill(6)
    emu.admin.set_next_jobs(never_finishes=True, count=6)
    op = make_operator(max_in_flight=2)

    def kill_once_both_are_in_flight() -> None:
        # As the SIGTERM handler would, while the loop runs: once both rows have their job id written (polled, so
        # a slow start on a loaded machine only delays the kill), never after a fixed time.
        while _rows_with_a_job(table) < 2:
            time.sleep(0.02)
        op.on_kill()

    killer = threading.Thread(target=kill_once_both_are_in_flight, daemon=True)
    killer.start()

    with pytest.raises(SeedanceError, match="killed"):
        op.execute({"ti": TaskInstance()})

    killer.join(30)
    assert submits(emu) == 2
    assert {j["status"] for j in emu.admin.jobs()} == {"cancelled"}
    assert sorted(r["video_status"] or "pending" for r in table.rows().values()) == ["cancelled"] * 2 + ["pending"] * 4


# -- bad inputs: refused before any POST, naming the column or field ------------------------------------------------


def _refused(emu, table, match, **overrides):
    with pytest.raises((ValueError, SeedanceError), match=match) as info:
        run_batch(**overrides)
    assert submits(emu) == 0
    assert all(r["claimed_by"] is None and r["video_status"] is None for r in table.rows().values())
    return info.value


def test_a_missing_column_is_refused(emu, table):
    table.fill(2, create=CREATE.replace("video_error TEXT,", ""))
    err = _refused(emu, table, r"no column for result_columns\['error'\]='video_error'")
    assert "product_id" in str(err)  # the table's columns are listed


def test_a_wrong_type_is_refused_naming_row_field_and_column(emu, table):
    table.fill(3)
    table.execute("UPDATE products SET seconds = 'five' WHERE product_id = 'sku-0001'")
    _refused(emu, table, r"row product_id='sku-0001': request field 'duration' \(from column 'seconds'\)")


def test_a_duplicate_key_is_refused(emu, table):
    table.fill(2, create=CREATE.replace("PRIMARY KEY", ""))
    table.execute("INSERT INTO products (product_id, prompt) VALUES ('sku-0001', 'again')")
    _refused(emu, table, r"key_column 'product_id' of products is not unique: 'sku-0001' \(2 rows\)")


def test_a_template_rendering_an_invalid_request_is_refused(emu, table):
    table.fill(2)
    _refused(emu, table, r"request field 'resolution' \(from request_template\['resolution'\]\).*720p",
             request_template={"resolution": "{{ row.seconds }}k"})


def test_a_destination_shared_by_two_rows_is_refused(emu, table, tmp_path):
    table.fill(2)
    _refused(emu, table, "render the same destination", destination=str(tmp_path / "video.mp4"))


def test_parameters_are_checked_at_parse_time():
    with pytest.raises(ValueError, match="unknown request field"):
        make_operator(request_columns={"prompt": "prompt", "colour": "c"})
    with pytest.raises(ValueError, match="needs a prompt"):
        make_operator(request_columns={}, request_template={})
    with pytest.raises(ValueError, match="shard_index"):
        make_operator(shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="unknown role"):
        make_operator(result_columns={"state": "s"})


def test_sql_identifiers_are_checked(emu, table):
    table.fill(1)
    with pytest.raises(ValueError, match=r"table must be schema\.table"):
        run_batch(table="products; DROP TABLE products")
    with contextlib.closing(sqlite3.connect(table.path)) as db:
        assert db.execute("SELECT COUNT(*) FROM products").fetchone() == (1,)
    assert jobs_per_row(emu) == {}
