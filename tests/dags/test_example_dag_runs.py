"""The example DAGs run for real (`airflow dags test`) against the emulator."""

from __future__ import annotations

import contextlib
import json
import re

import pytest

from airflow_provider_seedance.emulator.server import sample_video_path

pytestmark = pytest.mark.airflow_cli

SAMPLE = sample_video_path().read_bytes()


def _submits(emu):
    return [entry["body"] for entry in emu.admin.requests() if entry["endpoint"] == "submit"]


def _videos(video_dir):
    return sorted(str(p.relative_to(video_dir)) for p in video_dir.rglob("*") if p.is_file())


def test_image_to_video(dag_runner, seedance_emulator):
    run = dag_runner.run("example_seedance_image_to_video")

    assert run.returncode == 0, run.output[-4000:]
    [body] = _submits(seedance_emulator)
    assert body["mediaUrls"] == ["https://example.com/photo.jpg"]
    [job] = seedance_emulator.admin.jobs()
    rid = job["requestId"]
    assert _videos(dag_runner.video_dir) == [f"example_seedance_image_to_video/{rid}.mp4"]
    assert (dag_runner.video_dir / "example_seedance_image_to_video" / f"{rid}.mp4").read_bytes() == SAMPLE
    assert f"New video: {seedance_emulator.base_url}/files/{rid}.mp4" in run.output  # the downstream task
    assert seedance_emulator.api_key not in run.output


def test_content_pipeline_text_to_video_deferred(dag_runner, seedance_emulator):
    run = dag_runner.run("example_seedance_content_pipeline", "2025-03-04")

    assert run.returncode == 0, run.output[-4000:]
    [body] = _submits(seedance_emulator)
    assert "mediaUrls" not in body  # text-to-video: no key at all
    assert body["prompt"].startswith("A quiet harbour town waking up on a Tuesday in March")
    assert body["metadata"]["day"] == "2025-03-04"
    assert "Pausing task as DEFERRED" in run.output
    assert "Trigger completed" in run.output
    # One file per run: the day, then the run id with ':' and '+' made '-'.
    [video] = _videos(dag_runner.video_dir)
    assert re.fullmatch(r"content_pipeline/2025-03-04/manual__[0-9T.-]+\.mp4", video), video
    assert (dag_runner.video_dir / video).read_bytes() == SAMPLE
    assert seedance_emulator.api_key not in run.output


def test_content_pipeline_reference_media_from_run_config(dag_runner, seedance_emulator):
    seedance_emulator.admin.configure(time_scale=0)  # done at the first status check: no wait needed here
    run = dag_runner.run(
        "example_seedance_content_pipeline", "2025-03-08",
        conf={"theme": "A bakery at dawn", "reference_media": ["https://example.com/look.jpg"]},
    )

    assert run.returncode == 0, run.output[-4000:]
    [body] = _submits(seedance_emulator)
    assert body["mediaUrls"] == ["https://example.com/look.jpg"]
    assert body["prompt"].startswith("A bakery at dawn on a Saturday in March")
    [video] = _videos(dag_runner.video_dir)
    assert re.fullmatch(r"content_pipeline/2025-03-08/manual__[0-9T.-]+\.mp4", video), video


def _asset_rows(db_path):
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_path)) as db:
        query = ("SELECT product_id, video_status, request_id, video_uri, credits_charged, claimed_by "
                 "FROM products ORDER BY product_id")
        return {r[0]: r[1:] for r in db.execute(query)}


def test_asset_backfill_generates_each_row_once(dag_runner, seedance_emulator, tmp_path, monkeypatch):
    seedance_emulator.admin.configure(time_scale=0)
    db_path = tmp_path / "assets.db"
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_ASSET_DB", json.dumps({"conn_type": "sqlite", "host": str(db_path)}))
    products = ["sku-1001", "sku-1002", "sku-1003"]

    first = dag_runner.run("example_seedance_asset_backfill", "2025-02-01")

    assert first.returncode == 0, first.output[-4000:]
    bodies = _submits(seedance_emulator)
    assert sorted(b["metadata"]["product_id"] for b in bodies) == products
    assert all(len(b["mediaUrls"]) == 1 for b in bodies)
    assert _videos(dag_runner.video_dir) == [f"asset_backfill/{p}/2025-02-01.mp4" for p in products]
    # Each row's result is back in the table (created from the seed CSV on the first run).
    jobs = {j["request"]["metadata"]["product_id"]: j for j in seedance_emulator.admin.jobs()}
    rows = _asset_rows(db_path)
    assert sorted(rows) == products
    for product, (status, request_id, uri, credits, _claimed_by) in rows.items():
        assert status == "succeeded"
        assert request_id == jobs[product]["requestId"]
        assert credits == jobs[product]["creditsCharged"]
        assert uri.endswith(f"asset_backfill/{product}/2025-02-01.mp4")

    # Another date (a backfill over more dates): every row is done, nothing is sent.
    again = dag_runner.run("example_seedance_asset_backfill", "2025-02-02")

    assert again.returncode == 0, again.output[-4000:]
    assert len(_submits(seedance_emulator)) == 3
    assert "This run owns 0 rows" in again.output

    # A row handed back with the job an earlier run submitted: the job is resumed, not paid for again.
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.execute("UPDATE products SET video_status = 'submitted', claimed_by = NULL, video_uri = NULL "
                   "WHERE product_id = 'sku-1002'")
        db.execute("UPDATE products SET video_status = NULL, request_id = NULL, claimed_by = NULL "
                   "WHERE product_id = 'sku-1003'")
    repair = dag_runner.run("example_seedance_asset_backfill", "2025-02-03")

    assert repair.returncode == 0, repair.output[-4000:]
    bodies = _submits(seedance_emulator)
    assert [b["metadata"]["product_id"] for b in bodies[3:]] == ["sku-1003"]  # only the row never submitted
    rows = _asset_rows(db_path)
    assert rows["sku-1002"][:2] == ("succeeded", jobs["sku-1002"]["requestId"])
    assert rows["sku-1002"][2].endswith("asset_backfill/sku-1002/2025-02-03.mp4")
    assert rows["sku-1003"][0] == "succeeded"
    assert rows["sku-1003"][1] != jobs["sku-1003"]["requestId"]


def test_failed_generation_fails_the_run_and_saves_nothing(dag_runner, seedance_emulator):
    seedance_emulator.admin.configure(time_scale=0)
    seedance_emulator.admin.set_next_jobs(fail_with="content policy violation")

    run = dag_runner.run("example_seedance_image_to_video")

    assert run.returncode != 0
    assert "content policy violation" in run.output
    assert len(_submits(seedance_emulator)) == 1
    assert not dag_runner.video_dir.exists() or _videos(dag_runner.video_dir) == []
