"""Example: one video per row of an asset table, fanned out with dynamic task mapping, safe to backfill.

The table is ``data/products.csv`` beside this file (``product_id,image_url,prompt``). Every daily
run:

1. ``pending_rows`` reads the table and drops every row whose video for this logical date already
   exists at ``<seedance_video_dir>/asset_backfill/<product_id>/<date>.mp4``. So re-running a date,
   clearing a run, or a backfill over dates already done never pays for a video twice: rows already
   done send no request (when no row is left, no generate_video task runs at all)::

       airflow dags unpause example_seedance_asset_backfill   # backfill runs of a paused DAG wait
       airflow backfill create --dag-id example_seedance_asset_backfill \
           --from-date 2025-01-01 --to-date 2025-01-07 --reprocess-behavior completed

2. ``generate_video`` is mapped over the pending rows (``expand_kwargs``), one task per row,
   deferred while the video renders.
3. ``save_video`` is mapped over (output URL, row) pairs and stores each file at its per-row,
   per-date path.

**Concurrency cap.** ``generate_video`` runs in the Airflow pool ``seedance``. Create it first, and
count deferred tasks in it, so the cap also holds while jobs render (the vendor limits concurrent
jobs per account)::

    airflow pools set seedance 2 "Seedance generations in flight" --include-deferred

Without the pool the mapped tasks are never scheduled (Airflow shows a "non-existent pool" warning).

**Distributed deployments** (Celery/Kubernetes executors): tasks of one run land on different
workers, so set the ``seedance_video_dir`` Variable to shared storage (``s3://aws_default@bucket/videos``,
``gs://...``): the "already done" check must see the files other workers wrote.

The image URLs in the shipped table are placeholders (the emulator does not fetch media); point
them at your own public https images before running against the real service.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Variable, task

from airflow_provider_seedance.operators.persist import SeedancePersistVideoOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

log = logging.getLogger(__name__)

ASSET_TABLE = Path(__file__).parent / "data" / "products.csv"
POOL = "seedance"
DEFAULT_VIDEO_DIR = "/tmp/seedance-videos"  # noqa: S108 - an example default; set the Variable


def video_path(base: str, product_id: str, day: str) -> str:
    """Where one row's video for one logical date lives.

    :param base: the video directory (local path or object storage URI).
    :param product_id: the row's product id.
    :param day: the run's logical date (``YYYY-MM-DD``).
    """
    return f"{base.rstrip('/')}/asset_backfill/{product_id}/{day}.mp4"


def to_generate_kwargs(row: dict[str, Any]) -> dict[str, Any]:
    """The per-row arguments of ``generate_video``.

    :param row: one pending row.
    """
    return {"prompt": row["prompt"], "media_urls": [row["image_url"]], "metadata": {"product_id": row["product_id"]}}


def to_save_kwargs(pair: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """The per-row arguments of ``save_video``: the generated URL and the row's destination.

    :param pair: (output URL, pending row), zipped in map-index order.
    """
    output_url, row = pair
    return {"source_url": output_url, "destination": row["destination"]}


with DAG(
    dag_id="example_seedance_asset_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    tags=["example", "seedance"],
    doc_md=__doc__,
):

    @task
    def pending_rows(ds: str | None = None) -> list[dict[str, Any]]:
        """Rows of the asset table with no video yet for this date.

        :param ds: the run's logical date, injected by Airflow.
        """
        base = Variable.get("seedance_video_dir", default=DEFAULT_VIDEO_DIR)
        with ASSET_TABLE.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        pending = []
        for row in rows:
            destination = video_path(base, row["product_id"], ds or "undated")
            if ObjectStoragePath(destination).exists():
                log.info("Skipping %s: %s already exists", row["product_id"], destination)
                continue
            pending.append({**row, "destination": destination})
        log.info("%d of %d rows need a video for %s", len(pending), len(rows), ds)
        return pending

    rows = pending_rows()

    generate = SeedanceGenerateOperator.partial(
        task_id="generate_video",
        pool=POOL,
        model="seedance-2.0",
        aspect_ratio="1:1",
        duration=5,
        resolution="720p",
        deferrable=True,
    ).expand_kwargs(rows.map(to_generate_kwargs))

    SeedancePersistVideoOperator.partial(task_id="save_video").expand_kwargs(
        generate.output.zip(rows).map(to_save_kwargs)
    )
