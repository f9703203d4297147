"""The example DAGs under a real engine: scheduler, dag-processor, triggerer, api-server, LocalExecutor.

The tests share one engine (module fixture ``stack``) and run in file order.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time

import pytest
from e2e_engine import POOL_SLOTS, wait_for

pytestmark = pytest.mark.e2e

PIPELINE = "example_seedance_content_pipeline"
CONSUMER = "example_seedance_video_consumer"
BACKFILL = "example_seedance_asset_backfill"
PRODUCTS = ["sku-1001", "sku-1002", "sku-1003"]


def _submits(stack, **match):
    """Submitted bodies whose Airflow lineage matches ``match`` (dag_id=..., run_id=...)."""
    bodies = [e["body"] for e in stack.emulator.admin.requests() if e["endpoint"] == "submit"]
    return [b for b in bodies if all(b["metadata"]["airflow"].get(k) == v for k, v in match.items())]


def _requests_about(stack, request_id, endpoint):
    return [e for e in stack.emulator.admin.requests() if e["endpoint"] == endpoint and e["requestId"] == request_id]


def _dag_runs(stack, dag_id, **params):
    return stack.engine.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, **params})["dag_runs"]


def test_scheduled_pipeline_defers_through_the_triggerer_and_feeds_the_asset(stack):
    engine = stack.engine
    engine.api("PATCH", f"/dags/{CONSUMER}", json={"is_paused": False})
    engine.api("PATCH", f"/dags/{PIPELINE}", json={"is_paused": False})

    # Unpaused with catchup=False, the scheduler itself creates the run of the latest daily interval.
    run = wait_for(lambda: _dag_runs(stack, PIPELINE, run_type="scheduled"), timeout=90, what="a scheduled run")[0]
    run_id = run["dag_run_id"]
    states = engine.watch_states(PIPELINE, run_id, "generate_video", until={"success", "failed"}, timeout=120)

    assert states[-1] == "success", states
    assert "deferred" in states, states
    request_id = engine.xcom(PIPELINE, run_id, "generate_video", "request_id")
    # The trigger ran in the triggerer process (its job id names the trigger log) and fired the event.
    [triggerer_id] = engine.triggerer_job_ids()
    trigger_logs = engine.trigger_logs(PIPELINE, run_id, "generate_video")
    assert list(trigger_logs) == [triggerer_id]
    assert "Trigger fired event" in trigger_logs[triggerer_id]
    assert request_id in trigger_logs[triggerer_id]
    [body] = _submits(stack, dag_id=PIPELINE, run_id=run_id)
    assert "mediaUrls" not in body  # text-to-video

    # generate_video saved the file itself (persist_to) after the trigger fired.
    day = run["logical_date"][:10]
    # One file per run: the day, then the run id made path-safe (':' and '+' -> '-').
    video = stack.video_dir / "content_pipeline" / day / f"{run_id.replace(':', '-').replace('+', '-')}.mp4"
    assert video.read_bytes()[4:8] == b"ftyp"
    assert engine.xcom(PIPELINE, run_id, "generate_video", "video_uri") == f"file://{video}"
    assert engine.xcom(PIPELINE, run_id, "generate_video") == f"file://{video}"  # .output is the stored file
    announced = engine.watch_states(PIPELINE, run_id, "announce_video", until={"success", "failed"}, timeout=120)
    assert announced[-1] == "success", announced
    assert engine.xcom(PIPELINE, run_id, "announce_video") == f"file://{video}"  # read downstream

    # The Asset event triggered the consumer DAG, which found the file through the event's extra.
    consumer_run = wait_for(lambda: [r for r in _dag_runs(stack, CONSUMER) if r["state"] in ("success", "failed")],
                            timeout=90, what="the consumer DAG run")[0]
    assert consumer_run["state"] == "success"
    assert engine.xcom(CONSUMER, consumer_run["dag_run_id"], "announce_new_videos") == [f"file://{video}"]


def _create_backfill(stack, **body):
    # SQLite only: creating a backfill while the scheduler writes can hit "database is locked" (HTTP 503).
    for _ in range(20):
        try:
            return stack.engine.api("POST", "/backfills", json={"dag_id": BACKFILL, **body})
        except RuntimeError as exc:
            if "HTTP 503" not in str(exc):
                raise
            time.sleep(1)
    raise AssertionError("the backfill could not be created: the SQLite database stayed locked")


def _wait_backfill(stack, backfill_id, timeout):
    return wait_for(lambda: stack.engine.api("GET", f"/backfills/{backfill_id}").get("completed_at"),
                    timeout=timeout, interval=1, what=f"backfill {backfill_id} to complete")


def _task_states(stack, dag_id, run_id, task_id):
    tis = stack.engine.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                           params={"task_id": task_id, "limit": 100})["task_instances"]
    return {ti["map_index"]: ti["state"] for ti in tis if ti["task_id"] == task_id}


def _max_overlap(intervals):
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def _asset_table(stack):
    with contextlib.closing(sqlite3.connect(stack.asset_db)) as db:
        query = "SELECT product_id, video_status, request_id, video_uri, claimed_by FROM products ORDER BY product_id"
        return {row[0]: row[1:] for row in db.execute(query)}


def test_backfill_generates_each_row_once_across_overlapping_runs_within_the_pool(stack):
    engine, emulator = stack.engine, stack.emulator
    # Backfill runs of a paused DAG stay queued. Unpausing also schedules the latest interval (catchup=False),
    # so three runs compete for the same table: the backfill's two dates and the scheduled run.
    engine.api("PATCH", f"/dags/{BACKFILL}", json={"is_paused": False})
    created = _create_backfill(stack, from_date="2025-01-01T00:00:00Z", to_date="2025-01-02T00:00:00Z",
                               max_active_runs=2)
    _wait_backfill(stack, created["id"], timeout=300)
    scheduled = wait_for(lambda: [r for r in _dag_runs(stack, BACKFILL, run_type="scheduled")
                                  if r["state"] in ("success", "failed")], timeout=120, what="the scheduled run")

    runs = _dag_runs(stack, BACKFILL, run_type="backfill")
    assert sorted(r["logical_date"][:10] for r in runs) == ["2025-01-01", "2025-01-02"]
    assert all(r["state"] == "success" for r in runs + scheduled), runs + scheduled
    # One POST per row over all the runs: each row was claimed by exactly one of them.
    bodies = _submits(stack, dag_id=BACKFILL)
    assert sorted(b["metadata"]["product_id"] for b in bodies) == PRODUCTS
    assert len({b["mediaUrls"][0] for b in bodies}) == 3
    table = _asset_table(stack)
    jobs = {j["request"]["metadata"]["product_id"]: j for j in emulator.admin.jobs()
            if j["request"]["metadata"]["airflow"]["dag_id"] == BACKFILL}
    day_of_run = {r["dag_run_id"]: r["logical_date"][:10] for r in runs + scheduled}
    for product in PRODUCTS:
        status, request_id, uri, claimed_by = table[product]
        assert (status, request_id) == ("succeeded", jobs[product]["requestId"])
        # The video was saved at the row's path for the date of the run that generated it.
        video = stack.video_dir / "asset_backfill" / product / f"{day_of_run[claimed_by]}.mp4"
        assert uri == f"file://{video}"
        assert video.read_bytes()[4:8] == b"ftyp"

    # The pool (2 slots, deferred tasks counted) capped the jobs in flight at the vendor.
    lifetimes = [(j["createdAt"], j["createdAt"] + j["queuedSeconds"] + j["processingSeconds"]) for j in jobs.values()]
    in_flight = _max_overlap(lifetimes)
    print(f"\n[e2e] at most {in_flight} backfill generations were in flight at once")
    assert in_flight <= POOL_SLOTS


def test_backfill_again_over_done_dates_generates_nothing(stack):
    before = len(_submits(stack, dag_id=BACKFILL))
    created = _create_backfill(stack, from_date="2025-01-01T00:00:00Z", to_date="2025-01-02T00:00:00Z",
                               max_active_runs=2, reprocess_behavior="completed")
    _wait_backfill(stack, created["id"], timeout=180)

    runs = _dag_runs(stack, BACKFILL, run_type="backfill")
    assert all(r["state"] == "success" for r in runs), runs
    for run in runs:
        # The runs really ran again (second try of claim_rows). A run that generated rows the first time owns
        # them again and maps them, but each finds its row done and sends nothing; the other run owns none.
        claim = stack.engine.task_instance(BACKFILL, run["dag_run_id"], "claim_rows")
        assert (claim["state"], claim["try_number"]) == ("success", 2)
        mapped_states = set(_task_states(stack, BACKFILL, run["dag_run_id"], "generate_video").values())
        assert mapped_states <= {"success", "removed", "skipped"}
    assert len(_submits(stack, dag_id=BACKFILL)) == before
    assert {status for status, *_ in _asset_table(stack).values()} == {"succeeded"}


def test_triggerer_restart_neither_loses_nor_duplicates_the_job(stack):
    engine, emulator = stack.engine, stack.emulator
    # Long enough to stop and restart the triggerer while the job is still processing.
    emulator.admin.set_next_jobs(prompt_contains="restart-probe", processing_seconds=40)
    run_id = engine.trigger(PIPELINE, "e2e_restart_probe", "2025-06-01T00:00:00Z",
                            conf={"theme": "restart-probe: a harbour"})
    engine.watch_states(PIPELINE, run_id, "generate_video", until={"deferred", "failed", "success"}, timeout=90)
    request_id = engine.xcom(PIPELINE, run_id, "generate_video", "request_id")
    first = engine.triggerer_job_ids()[-1]
    wait_for(lambda: "starting" in engine.trigger_logs(PIPELINE, run_id, "generate_video").get(first, ""),
             timeout=60, what="the trigger running in the first triggerer")

    exit_code = engine.stop("triggerer")  # SIGTERM: the graceful shutdown of a restart or redeploy

    assert exit_code == 0
    assert emulator.admin.job(request_id)["status"] in ("queued", "processing")
    assert _requests_about(stack, request_id, "cancel") == []
    assert engine.task_instance(PIPELINE, run_id, "generate_video")["state"] == "deferred"

    engine.start("triggerer")
    states = engine.watch_states(PIPELINE, run_id, "generate_video", until={"success", "failed"}, timeout=150)

    assert states[-1] == "success", states
    second = engine.triggerer_job_ids()[-1]
    assert second != first
    logs = engine.trigger_logs(PIPELINE, run_id, "generate_video")
    assert "Trigger fired event" not in logs[first]
    assert "Trigger fired event" in logs[second]
    assert request_id in logs[second]
    # Same job, one POST, never cancelled, no retry of the task.
    assert len(_submits(stack, dag_id=PIPELINE, run_id=run_id)) == 1
    assert _requests_about(stack, request_id, "cancel") == []
    assert emulator.admin.job(request_id)["status"] == "succeeded"
    assert engine.task_instance(PIPELINE, run_id, "generate_video")["try_number"] == 1
    # persist_to: the return value is the stored file; output_url keeps the vendor's URL.
    vendor_url = f"{emulator.base_url}/files/{request_id}.mp4"
    assert engine.xcom(PIPELINE, run_id, "generate_video", "output_url") == vendor_url
    run_key = run_id.replace(":", "-").replace("+", "-")
    assert engine.xcom(PIPELINE, run_id, "generate_video") == (
        f"file://{stack.video_dir}/content_pipeline/2025-06-01/{run_key}.mp4"
    )


def test_marking_a_deferred_task_failed_cancels_its_job(stack):
    engine, emulator = stack.engine, stack.emulator
    emulator.admin.set_next_jobs(prompt_contains="cancel-probe", never_finishes=True)
    run_id = engine.trigger(PIPELINE, "e2e_cancel_probe", "2025-06-02T00:00:00Z",
                            conf={"theme": "cancel-probe: a harbour"})
    engine.watch_states(PIPELINE, run_id, "generate_video", until={"deferred", "failed", "success"}, timeout=90)
    request_id = engine.xcom(PIPELINE, run_id, "generate_video", "request_id")
    triggerer = engine.triggerer_job_ids()[-1]
    wait_for(lambda: "starting" in engine.trigger_logs(PIPELINE, run_id, "generate_video").get(triggerer, ""),
             timeout=60, what="the trigger running in the triggerer")

    engine.api("PATCH", f"/dags/{PIPELINE}/dagRuns/{run_id}/taskInstances/generate_video",
               json={"new_state": "failed"})

    wait_for(lambda: _requests_about(stack, request_id, "cancel"), timeout=90, what="the cancel at the emulator")
    time.sleep(1)  # a second cancel would arrive right after the first
    assert len(_requests_about(stack, request_id, "cancel")) == 1
    assert emulator.admin.job(request_id)["status"] == "cancelled"
    assert engine.task_instance(PIPELINE, run_id, "generate_video")["state"] == "failed"
    assert "Trigger cancelled by user action" in engine.trigger_logs(PIPELINE, run_id, "generate_video")[triggerer]
