"""A table drains through the batch operator against the emulator over real HTTP and a real SQLite file."""

from __future__ import annotations

import pytest

from tests.batch.conftest import TaskInstance, jobs_per_row, make_operator, run_batch, submits


def test_fifty_rows_drain_once_each_and_a_rerun_sends_nothing(emu, table, tmp_path):
    keys = table.fill(50)

    summary = run_batch(max_in_flight=8, destination=str(tmp_path / "videos" / "{{ row.product_id }}.mp4"))

    assert summary["succeeded"] == 50
    assert summary["failed"] == 0
    assert summary["ambiguous"] == 0
    assert summary["submitted"] == 50
    assert summary["pending"] == 0
    assert jobs_per_row(emu) == dict.fromkeys(keys, 1)  # no duplicates, no row left out
    rows = table.rows()
    jobs = {j["request"]["metadata"]["seedance_batch"]["key"]: j for j in emu.admin.jobs()}
    for key, row in rows.items():
        assert row["video_status"] == "succeeded"
        assert row["request_id"] == jobs[key]["requestId"]
        assert row["credits_charged"] == jobs[key]["creditsCharged"]
        assert row["video_uri"].endswith(f"videos/{key}.mp4")
        assert row["claimed_by"] is None  # handed back at the end
    assert summary["credits_charged"] == sum(j["creditsCharged"] for j in jobs.values())
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [f"{k}.mp4" for k in keys]
    assert emu.admin.limit_stats()["peak_running"] <= 8

    again = run_batch({"ti": TaskInstance(run_id="manual__2")})

    assert again["rows"] == 0
    assert again["submitted"] == 0
    assert submits(emu) == 50


@pytest.mark.seedance_limits(max_concurrent_jobs=5, concurrency_mode="queue")
def test_queue_mode_fills_the_window(emu, table):
    keys = table.fill(30)

    summary = run_batch(max_in_flight=10)

    assert summary["succeeded"] == 30
    assert summary["refused_429"] == 0
    assert jobs_per_row(emu) == dict.fromkeys(keys, 1)
    stats = emu.admin.limit_stats()
    assert stats["peak_running"] == 5
    assert stats["peak_waiting_for_slot"] >= 1


@pytest.mark.seedance_limits(max_concurrent_jobs=4, concurrency_mode="refuse")
def test_refuse_mode_discovers_the_limit_without_failing(emu, table):
    keys = table.fill(30)

    summary = run_batch(max_in_flight=16)

    assert summary["succeeded"] == 30
    assert summary["failed"] == 0
    assert summary["refused_429"] >= 1  # it learnt the limit from the vendor's 429s...
    assert summary["window"] <= 5  # ...and kept its window near it (4, probing one more now and then)
    assert jobs_per_row(emu) == dict.fromkeys(keys, 1)
    assert set(table.statuses()) == {"succeeded"}


def test_requests_per_second_bounds_polls_and_submits(emu, table):
    table.fill(6)
    op = make_operator(max_in_flight=6, requests_per_second=20.0)

    summary = op.execute({"ti": TaskInstance()})

    assert summary["succeeded"] == 6
    log = emu.admin.requests()
    keyed = [e for e in log if e["endpoint"] in ("submit", "status", "cancel")]
    assert emu.admin.limit_stats()["sent_429"] == 0
    assert summary["requests"] == len(keyed)
