"""The asset backfill a user would write from ``apache-airflow-providers-http`` alone (benchmark baseline).

Same table, rows, pool and per-row paths as ``example_seedance_asset_backfill``: claim the rows, submit
each with a mapped ``HttpOperator`` (a 429 fails the try; Airflow retries it, which is safe because a
refused POST created nothing), wait for each with a mapped ``HttpSensor(deferrable=True)``, then save
every video and write the results back in one task.

What the http provider does with that sensor: a status endpoint answers 200 while the job is still
running, so the sensor needs a ``response_check`` on the body, and with a ``response_check`` the http
provider's ``HttpSensor.execute`` does not defer (``if not self.deferrable or self.response_check``):
it pokes from the worker, holding a worker slot for the whole generation. That is what this baseline
measures: the DAG a user writes, run as the provider runs it.

Settings come from the environment (set by ``benchmarks/backfill_bench.py``): the poke interval, the
retry delay after a 429, the API connection ``seedance_http`` (host, port, ``Authorization`` header in
the extra) and the asset database ``seedance_asset_db``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG, BaseHook, Variable, task

log = logging.getLogger(__name__)

TABLE = "products"
POOL = "seedance"
GENERATIONS = "/api/open/v1/video/generations"
POKE_INTERVAL = float(os.environ.get("BENCH_HTTP_POKE_INTERVAL", "5"))
RETRY_DELAY = float(os.environ.get("BENCH_HTTP_RETRY_DELAY", "10"))


def _db() -> Any:
    return BaseHook.get_hook("seedance_asset_db")


def _now() -> str:
    return pendulum.now("UTC").isoformat()


def to_body(row: dict[str, Any]) -> str:
    """The POST body of one row.

    :param row: a claimed row.
    """
    return json.dumps({"model": "seedance-2.0", "prompt": row["prompt"], "mediaUrls": [row["image_url"]],
                       "aspectRatio": "1:1", "duration": 5, "resolution": "720p",
                       "metadata": {"product_id": row["product_id"]}})


def submitted(response: Any) -> dict[str, Any]:
    """What the submit task keeps: the request id and the credits charged.

    :param response: the ``requests`` response.
    """
    body = response.json()
    return {"request_id": str(body["requestId"]), "credits": body.get("creditsCharged")}


def status_endpoint(job: dict[str, Any]) -> str:
    """The status path of one job.

    :param job: what :func:`submitted` kept.
    """
    return f"{GENERATIONS}/{job['request_id']}"


def finished(response: Any) -> bool:
    """True once the job succeeded; a failed or cancelled job fails the sensor.

    :param response: the ``requests`` response.
    """
    status = response.json()["status"]
    if status in ("failed", "cancelled"):
        raise RuntimeError(f"generation {status}")
    return bool(status == "succeeded")


with DAG(
    dag_id="bench_http_asset_backfill",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["benchmark"],
    doc_md=__doc__,
):

    @task
    def claim_rows(run_id: str | None = None, ds: str | None = None) -> list[dict[str, Any]]:
        """Claim the rows without a video; return the rows this run owns.

        :param run_id: the run's id.
        :param ds: the run's logical date.
        """
        db = _db()
        p = db.placeholder
        db.run(f"UPDATE {TABLE} SET video_status = 'claimed', claimed_by = {p}, updated_at = {p} "  # noqa: S608
               "WHERE claimed_by IS NULL AND video_status IS NULL", parameters=(run_id, _now()))
        records = db.get_records(f"SELECT product_id, image_url, prompt FROM {TABLE} "  # noqa: S608
                                 f"WHERE claimed_by = {p} AND video_status = 'claimed' ORDER BY product_id",
                                 parameters=(run_id,))
        base = Variable.get("seedance_video_dir", default="/tmp/seedance-videos")  # noqa: S108
        return [{"product_id": pid, "image_url": image, "prompt": prompt,
                 "destination": f"{base.rstrip('/')}/asset_backfill/{pid}/{ds}.mp4"}
                for pid, image, prompt in records]

    @task(trigger_rule="all_done")
    def save_and_record(rows: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> int:
        """Download every finished video to its row's path and write the results back.

        :param rows: the claimed rows (map index order).
        :param jobs: the submit tasks' request ids and credits (map index order).
        """
        from pathlib import Path

        import requests
        from airflow.providers.http.hooks.http import HttpHook

        api = HttpHook(method="GET", http_conn_id="seedance_http")
        db = _db()
        p = db.placeholder
        done = 0
        for row, job in zip(rows, jobs, strict=False):
            answer = api.run(status_endpoint(job)).json()
            if answer["status"] != "succeeded":
                continue
            target = Path(row["destination"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(requests.get(answer["output"]["url"], timeout=60).content)
            db.run(f"UPDATE {TABLE} SET video_status = 'succeeded', request_id = {p}, video_uri = {p}, "  # noqa: S608
                   f"credits_charged = {p}, updated_at = {p} WHERE product_id = {p}",
                   parameters=(job["request_id"], f"file://{target}", job["credits"], _now(), row["product_id"]))
            done += 1
        log.info("Saved and recorded %d of %d rows", done, len(rows))
        return done

    rows = claim_rows()
    submit = HttpOperator.partial(
        task_id="submit",
        http_conn_id="seedance_http",
        endpoint=GENERATIONS,
        method="POST",
        headers={"Content-Type": "application/json"},
        response_filter=submitted,
        pool=POOL,
        # A 429 fails the try; retries with a growing delay wait the vendor out (a refused POST created nothing).
        retries=12,
        retry_delay=timedelta(seconds=RETRY_DELAY),
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(seconds=RETRY_DELAY * 30),
    ).expand(data=rows.map(to_body))
    wait = HttpSensor.partial(
        task_id="wait",
        http_conn_id="seedance_http",
        response_check=finished,
        poke_interval=POKE_INTERVAL,
        timeout=24 * 3600,
        deferrable=True,
        pool=POOL,
    ).expand(endpoint=submit.output.map(status_endpoint))
    wait >> save_and_record(rows, submit.output)
