"""The batch example DAG runs for real (`airflow dags test`): two shards, every row once, a re-run sends nothing."""

from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest

from tests.dags.conftest import DagRunner

pytestmark = pytest.mark.airflow_cli


def _rows(db_path):
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        query = "SELECT product_id, video_status, request_id, video_uri, claimed_by FROM product_videos"
        return {r[0]: r[1:] for r in db.execute(query)}


def test_batch_backfill_example(airflow_home, seedance_emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(airflow_home))
    db_path = tmp_path / "assets.db"
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_ASSET_DB", json.dumps({"conn_type": "sqlite", "host": str(db_path)}))
    runner = DagRunner(seedance_emulator.connection_json, tmp_path / "videos")

    dry = runner.run("example_seedance_batch_backfill", conf={"dry_run": True})

    assert dry.returncode == 0, dry.output[-4000:]
    assert "Seedance batch dry run (nothing written, nothing spent)" in dry.output
    assert seedance_emulator.admin.requests("submit") == []

    first = runner.run("example_seedance_batch_backfill")

    assert first.returncode == 0, first.output[-4000:]
    rows = _rows(db_path)
    jobs = {j["request"]["metadata"]["seedance_batch"]["key"]: j["requestId"] for j in seedance_emulator.admin.jobs()}
    assert sorted(jobs) == sorted(rows)
    assert len(jobs) == len(seedance_emulator.admin.requests("submit"))
    for key, (status, request_id, uri, claimed_by) in rows.items():
        assert (status, request_id, claimed_by) == ("succeeded", jobs[key], None)
        assert uri.endswith(f"batch_backfill/{key}.mp4")
        assert (tmp_path / "videos" / "batch_backfill" / f"{key}.mp4").is_file()
    assert seedance_emulator.api_key not in first.output

    again = runner.run("example_seedance_batch_backfill")

    assert again.returncode == 0, again.output[-4000:]
    assert len(seedance_emulator.admin.requests("submit")) == len(rows)
