"""The example DAGs run for real (`airflow dags test`) against the emulator."""

from __future__ import annotations

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
    assert (dag_runner.video_dir / "content_pipeline" / "2025-03-04.mp4").read_bytes() == SAMPLE
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
    assert _videos(dag_runner.video_dir) == ["content_pipeline/2025-03-08.mp4"]


def test_asset_backfill_generates_each_row_once(dag_runner, seedance_emulator):
    seedance_emulator.admin.configure(time_scale=0)
    products = ["sku-1001", "sku-1002", "sku-1003"]

    first = dag_runner.run("example_seedance_asset_backfill", "2025-02-01")

    assert first.returncode == 0, first.output[-4000:]
    bodies = _submits(seedance_emulator)
    assert sorted(b["metadata"]["product_id"] for b in bodies) == products
    assert all(len(b["mediaUrls"]) == 1 for b in bodies)
    assert _videos(dag_runner.video_dir) == [f"asset_backfill/{p}/2025-02-01.mp4" for p in products]

    # The same date again (a re-run or backfill with reprocessing): every row is done, nothing is sent.
    again = dag_runner.run("example_seedance_asset_backfill", "2025-02-01")

    assert again.returncode == 0, again.output[-4000:]
    assert len(_submits(seedance_emulator)) == 3
    assert "0 of 3 rows need a video for 2025-02-01" in again.output

    # One video lost: only that row is generated again.
    (dag_runner.video_dir / "asset_backfill" / "sku-1002" / "2025-02-01.mp4").unlink()
    repair = dag_runner.run("example_seedance_asset_backfill", "2025-02-01")

    assert repair.returncode == 0, repair.output[-4000:]
    bodies = _submits(seedance_emulator)
    assert len(bodies) == 4
    assert bodies[-1]["metadata"]["product_id"] == "sku-1002"
    assert len(_videos(dag_runner.video_dir)) == 3


def test_failed_generation_fails_the_run_and_saves_nothing(dag_runner, seedance_emulator):
    seedance_emulator.admin.configure(time_scale=0)
    seedance_emulator.admin.set_next_jobs(fail_with="content policy violation")

    run = dag_runner.run("example_seedance_image_to_video")

    assert run.returncode != 0
    assert "content policy violation" in run.output
    assert len(_submits(seedance_emulator)) == 1
    assert not dag_runner.video_dir.exists() or _videos(dag_runner.video_dir) == []
