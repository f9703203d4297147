"""Example: one video per row of an asset table in a database, fanned out with dynamic task mapping.

The asset table (``products``: ``product_id, image_url, prompt`` plus the result columns) lives in the
database of the Airflow connection ``seedance_asset_db``, read and written through its common.sql hook
(any DB-API hook: SQLite, PostgreSQL, MySQL...). A SQLite file needs no server::

    export AIRFLOW_CONN_SEEDANCE_ASSET_DB='{"conn_type": "sqlite", "host": "/tmp/seedance-assets.db"}'

When the table does not exist yet it is created and filled from ``data/products.csv`` beside this file.
Every run:

1. ``claim_rows`` claims, in one ``UPDATE``, the rows (at most ``max_rows``, 1,000 by default) that have
   no video yet and are not claimed by another run, and returns the rows this run owns (in a stable order,
   so a cleared run maps each row to the same task again). An overlapping backfill or scheduled run skips
   rows another run owns.
2. ``generate_video`` is mapped over them (``expand_kwargs``), one task per row in the pool ``seedance``,
   deferred while the video renders, saved to a per-row path (``persist_to``). On success it writes the
   row's result back: ``video_status = 'succeeded'``, ``request_id``, ``video_uri``, ``credits_charged``.
   A row that is already done sends no request; a row whose job an earlier run submitted resumes that job.
3. ``release_rows`` (runs even when generations failed) hands back the rows this run did not finish: a row
   whose job was submitted keeps its ``request_id`` (``video_status = 'submitted'``), so the next run
   resumes that job instead of paying for a new one; a row never submitted is released untouched.

So re-running a date, clearing a run, or a backfill overlapping another one never pays twice for a row
and never loses a finished one::

    airflow dags unpause example_seedance_asset_backfill   # backfill runs of a paused DAG wait
    airflow backfill create --dag-id example_seedance_asset_backfill \\
        --from-date 2025-01-01 --to-date 2025-01-07 --reprocess-behavior completed

**Concurrency cap.** Create the pool first, counting deferred tasks: the vendor's concurrent-job limit when
it refuses (429) past it, a little more when it queues (docs: "Backfills over asset tables" has the
sizing guide)::

    airflow pools set seedance 20 "Seedance generations in flight" --include-deferred

Without the pool the mapped tasks are never scheduled (Airflow shows a "non-existent pool" warning).

**Distributed deployments**: set the ``seedance_video_dir`` Variable to shared storage
(``s3://aws_default@bucket/videos``...), and point ``seedance_asset_db`` at a server database
(PostgreSQL...): every worker reads and writes the same table.

The image URLs in the shipped table are placeholders (the emulator does not fetch media); point them
at your own public https images before running against the real service.
"""

from __future__ import annotations

import csv
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseHook, Variable, task

from airflow_provider_seedance.errors import SeedanceNotFoundError
from airflow_provider_seedance.models import JobResult, JobStatus
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.polling import PollSchedule

log = logging.getLogger(__name__)

ASSET_CONN_ID = "seedance_asset_db"
TABLE = "products"
SEED_CSV = Path(__file__).parent / "data" / "products.csv"
POOL = "seedance"
DEFAULT_VIDEO_DIR = "/tmp/seedance-videos"  # noqa: S108 - an example default; set the Variable
#: Most rows one run claims (the ``max_rows`` param overrides it): keeps a run's mapped tasks within
#: ``[core] max_map_length`` (1,024 by default); a bigger table is worked through by successive runs.
MAX_ROWS_PER_RUN = 1000
#: Polling for throughput: a backfill is capped by the vendor's concurrent-job limit, and every second
#: between a job's end and the poll that sees it leaves one of those slots idle. So poll every 5 s for the
#: whole wait (the default schedule grows to 60 s to save requests on long single waits): a pool of 20
#: costs about 4 status requests per second (sizing guide: "Backfills over asset tables").
POLL_INTERVAL = 5.0
MAX_POLL_INTERVAL = 5.0
#: The result columns written back to the table, beside the asset columns.
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    product_id VARCHAR(100) PRIMARY KEY,
    image_url TEXT NOT NULL,
    prompt TEXT NOT NULL,
    video_status VARCHAR(20),
    request_id VARCHAR(100),
    video_uri TEXT,
    credits_charged INTEGER,
    claimed_by VARCHAR(250),
    updated_at VARCHAR(40)
)"""


def asset_db() -> Any:
    """The asset database's common.sql hook (``DbApiHook``), from the ``seedance_asset_db`` connection."""
    return BaseHook.get_hook(ASSET_CONN_ID)


def _now() -> str:
    return pendulum.now("UTC").isoformat()


def video_path(base: str, product_id: str, day: str) -> str:
    """Where one row's video lives: one file per row and logical date.

    :param base: the video directory (local path or object storage URI).
    :param product_id: the row's product id.
    :param day: the run's logical date (``YYYY-MM-DD``).
    """
    return f"{base.rstrip('/')}/asset_backfill/{product_id}/{day}.mp4"


def ensure_table(db: Any) -> Any:
    """Create the asset table if missing, filled from the seed CSV when empty; return the hook.

    :param db: the asset database's hook.
    """
    db.run(CREATE_TABLE)
    if db.get_first(f"SELECT COUNT(*) FROM {TABLE}")[0]:  # noqa: S608 - constant table name
        return db
    with SEED_CSV.open(newline="", encoding="utf-8") as handle:
        seed = [(r["product_id"], r["image_url"], r["prompt"]) for r in csv.DictReader(handle)]
    db.insert_rows(TABLE, seed, target_fields=["product_id", "image_url", "prompt"])
    log.info("Created table %s with %d seed rows from %s", TABLE, len(seed), SEED_CSV.name)
    return db


def to_generate_kwargs(row: dict[str, Any]) -> dict[str, Any]:
    """The per-row arguments of ``generate_video``.

    :param row: one claimed row.
    """
    return {
        "prompt": row["prompt"],
        "media_urls": [row["image_url"]],
        "metadata": {"product_id": row["product_id"]},
        "persist_to": row["destination"],
        "product_id": row["product_id"],
        "known_request_id": row["request_id"],
    }


class AssetRowVideoOperator(SeedanceGenerateOperator):
    """``SeedanceGenerateOperator`` for one table row: skips a done row, resumes a known job, writes back.

    :param product_id: the row's key.
    :param known_request_id: a job an earlier run submitted for this row and did not finish (None: none).
    :param kwargs: :class:`SeedanceGenerateOperator` arguments.
    """

    def __init__(self, *, product_id: str, known_request_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.product_id = product_id
        self.known_request_id = known_request_id

    def execute(self, context: Any) -> Any:
        """Return the stored video of a done row; else resume the row's known job, or generate.

        :param context: the task's context.
        """
        db = asset_db()
        p = db.placeholder
        status, uri = db.get_first(
            f"SELECT video_status, video_uri FROM {TABLE} WHERE product_id = {p}", parameters=(self.product_id,)  # noqa: S608
        )
        if status == "succeeded":
            self.log.info("Row %s already has its video (%s): nothing is sent", self.product_id, uri)
            return uri
        if self.known_request_id:
            resumed = self._resume_known_job(context, self.known_request_id)
            if resumed is not None:
                return resumed
        return super().execute(context)

    def _resume_known_job(self, context: Any, request_id: str) -> Any:
        """Finish a job an earlier run submitted for this row (None: it is gone or failed, submit anew)."""
        schedule = PollSchedule(initial=self.poll_interval, maximum=self.max_poll_interval)
        started = time.monotonic()
        while True:
            try:
                job = self.hook.get_job(request_id)
            except SeedanceNotFoundError:
                job = None
            if job is None or job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                self.log.info("The earlier job %s of row %s is %s: generating anew", request_id, self.product_id,
                              "unknown" if job is None else job.raw_status)
                return None
            if job.status is JobStatus.SUCCEEDED:
                self.log.info("Resuming the earlier job %s of row %s: it succeeded, nothing is sent",
                              request_id, self.product_id)
                return self.on_success(context, job)
            # Rare path (a run died with the job in flight): wait here rather than pay for a second job.
            time.sleep(schedule.next_delay(time.monotonic() - started))

    def on_success(self, context: Any, result: JobResult) -> Any:
        """Save the video (``persist_to``), then write the row's result back to the table.

        :param context: the task's context.
        :param result: the succeeded job.
        """
        value = super().on_success(context, result)
        ti = context["ti"]
        pulled = {
            key: ti.xcom_pull(task_ids=ti.task_id, key=key, map_indexes=ti.map_index)
            for key in ("video_uri", "credits_charged")
        }
        db = asset_db()
        p = db.placeholder
        # Guarded: a row that is already done keeps its first result (a finished row is never overwritten).
        db.run(
            f"UPDATE {TABLE} SET video_status = 'succeeded', request_id = {p}, video_uri = {p}, "  # noqa: S608
            f"credits_charged = COALESCE({p}, credits_charged), updated_at = {p} "
            f"WHERE product_id = {p} AND (video_status IS NULL OR video_status <> 'succeeded')",
            parameters=(result.request_id, pulled["video_uri"] or result.output_url, pulled["credits_charged"],
                        _now(), self.product_id),
        )
        return value


with DAG(
    dag_id="example_seedance_asset_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    tags=["example", "seedance"],
    params={"max_rows": MAX_ROWS_PER_RUN},
    doc_md=__doc__,
):

    @task
    def claim_rows(run_id: str | None = None, ds: str | None = None, params: Any = None) -> list[dict[str, Any]]:
        """Claim the rows without a video that no other run owns; return every row this run owns.

        :param run_id: the run's id, injected by Airflow.
        :param ds: the run's logical date, injected by Airflow.
        :param params: the run's params (``max_rows``: most rows one run claims), injected by Airflow.
        """
        db = ensure_table(asset_db())
        p = db.placeholder
        max_rows = int((params or {}).get("max_rows") or MAX_ROWS_PER_RUN)
        # One statement: two runs claiming at once never get the same row (the outer claimed_by check).
        db.run(
            f"UPDATE {TABLE} SET video_status = 'claimed', claimed_by = {p}, updated_at = {p} "  # noqa: S608
            f"WHERE claimed_by IS NULL AND product_id IN (SELECT product_id FROM {TABLE} WHERE claimed_by IS NULL "
            f"AND (video_status IS NULL OR video_status = 'submitted') ORDER BY product_id LIMIT {p})",
            parameters=(run_id, _now(), max_rows),
        )
        records = db.get_records(
            f"SELECT product_id, image_url, prompt, video_status, request_id FROM {TABLE} "  # noqa: S608
            f"WHERE claimed_by = {p} ORDER BY product_id",
            parameters=(run_id,),
        )
        base = Variable.get("seedance_video_dir", default=DEFAULT_VIDEO_DIR)
        rows = [
            {"product_id": pid, "image_url": image, "prompt": prompt,
             "request_id": rid if status != "succeeded" else None,
             "destination": video_path(base, pid, ds or "undated")}
            for pid, image, prompt, status, rid in records
        ]
        done = sum(1 for r in records if r[3] == "succeeded")
        log.info("This run owns %d rows (%d already done by it); %d need a video", len(rows), done, len(rows) - done)
        return rows

    @task(trigger_rule="all_done")
    def release_rows(rows: list[dict[str, Any]], run_id: str | None = None, ti: Any = None) -> dict[str, int]:
        """Hand back the rows this run did not finish, keeping the request id of any job it submitted.

        :param rows: the rows ``claim_rows`` returned (their position is their map index).
        :param run_id: the run's id, injected by Airflow.
        :param ti: the task instance, injected by Airflow.
        """
        db = asset_db()
        p = db.placeholder
        unfinished = {pid for (pid,) in db.get_records(
            f"SELECT product_id FROM {TABLE} WHERE claimed_by = {p} AND video_status <> 'succeeded'",  # noqa: S608
            parameters=(run_id,),
        )}
        submitted = released = 0
        for index, row in enumerate(rows):
            if row["product_id"] not in unfinished:
                continue
            request_id = ti.xcom_pull(task_ids="generate_video", key="request_id", map_indexes=index)
            credits = ti.xcom_pull(task_ids="generate_video", key="credits_charged", map_indexes=index)
            request_id = request_id or row["request_id"]
            db.run(
                f"UPDATE {TABLE} SET video_status = {p}, request_id = {p}, "  # noqa: S608
                f"credits_charged = COALESCE({p}, credits_charged), claimed_by = NULL, updated_at = {p} "
                f"WHERE product_id = {p} AND claimed_by = {p} AND video_status <> 'succeeded'",
                parameters=("submitted" if request_id else None, request_id, credits, _now(), row["product_id"],
                            run_id),
            )
            submitted += bool(request_id)
            released += not request_id
        log.info("%d rows done by this run; handed back %d with a job to resume and %d never submitted",
                 len(rows) - len(unfinished), submitted, released)
        return {"rows": len(rows), "unfinished": len(unfinished), "submitted": submitted, "released": released}

    rows = claim_rows()

    generate = AssetRowVideoOperator.partial(
        task_id="generate_video",
        pool=POOL,
        model="seedance-2.0",
        aspect_ratio="1:1",
        duration=5,
        resolution="720p",
        # A retry resumes the job its try submitted (never a second charge), so retries are free to set.
        retries=2,
        retry_delay=timedelta(seconds=30),
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        max_poll_interval=MAX_POLL_INTERVAL,
    ).expand_kwargs(rows.map(to_generate_kwargs))

    generate >> release_rows(rows)
