"""Example: a video for every row of an asset table, in one task per shard (the ledger is in the operator).

The batch variant of ``example_seedance_asset_backfill``: no per-row tasks, no pool, no ledger code.
``SeedanceBatchGenerateOperator`` claims the pending rows of ``product_videos`` (in the database of the
connection ``seedance_asset_db``), keeps up to ``max_in_flight`` jobs at the vendor (it learns the account's
limit from 429s), saves each video and writes each row back as it ends. Re-running it skips the rows done
and re-attaches to jobs already paid for. Trigger with ``{"dry_run": true}`` to see the rows, credits and
drain time first. Guide: ``docs/guides/batch.rst``::

    export AIRFLOW_CONN_SEEDANCE_ASSET_DB='{"conn_type": "sqlite", "host": "/tmp/seedance-assets.db"}'
"""

from __future__ import annotations

import csv
from pathlib import Path

import pendulum
from airflow.sdk import DAG, BaseHook, task

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator

ASSET_CONN_ID = "seedance_asset_db"
SHARDS = 2  # worker slots the table is spread over (each shard keeps its share of max_in_flight)
CREATE_TABLE = """CREATE TABLE IF NOT EXISTS product_videos (
    product_id VARCHAR(100) PRIMARY KEY, image_url TEXT NOT NULL, prompt TEXT NOT NULL,
    video_status VARCHAR(20), request_id VARCHAR(100), video_uri TEXT, credits_charged INTEGER,
    video_error TEXT, updated_at VARCHAR(40), request_digest VARCHAR(80), claimed_by VARCHAR(250))"""

with DAG(
    dag_id="example_seedance_batch_backfill",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"dry_run": False},
    tags=["example", "seedance"],
    doc_md=__doc__,
):

    @task
    def ensure_table() -> None:
        """Create the table, filled from ``data/products.csv`` when empty."""
        db = BaseHook.get_hook(ASSET_CONN_ID)
        db.run(CREATE_TABLE)
        if not db.get_first("SELECT COUNT(*) FROM product_videos")[0]:
            with (Path(__file__).parent / "data" / "products.csv").open(newline="", encoding="utf-8") as f:
                rows = [(r["product_id"], r["image_url"], r["prompt"]) for r in csv.DictReader(f)]
            db.insert_rows("product_videos", rows, target_fields=["product_id", "image_url", "prompt"])

    generate = SeedanceBatchGenerateOperator.partial(
        task_id="generate_videos",
        conn_id=ASSET_CONN_ID,
        table="product_videos",
        key_column="product_id",
        request_columns={"prompt": "prompt", "media_urls": "image_url"},
        request_template={"model": "seedance-2.0", "aspect_ratio": "1:1", "duration": 5, "resolution": "720p"},
        destination="{{ var.value.get('seedance_video_dir', '/tmp/seedance-videos') }}"
        "/batch_backfill/{{ row.product_id }}.mp4",
        max_in_flight=20,
        shard_count=SHARDS,
        dry_run="{{ params.dry_run }}",
    ).expand(shard_index=list(range(SHARDS)))

    ensure_table() >> generate
