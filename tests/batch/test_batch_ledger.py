"""Never pays twice: the table is the ledger (re-attach after a crash, ambiguous rows, changed requests, claims)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_seedance.models import GenerationRequest
from tests.batch.conftest import TaskInstance, jobs_per_row, run_batch, submits

REPO = Path(__file__).resolve().parents[2]

CRASHING_RUN = """
from tests.batch.conftest import run_batch
run_batch(max_in_flight=5)
"""


def _digest(key: str) -> str:
    return GenerationRequest(prompt=f"A turntable shot of product {key}", media_urls=[f"https://example.com/{key}.jpg"],
                             duration=5, resolution="720p").digest()


def test_a_sigkilled_batch_is_rerun_and_reattaches_with_no_duplicate(emu, table):
    keys = table.fill(12)
    emu.admin.configure(time_scale=1.0)  # jobs take 3 s: several are in flight when the worker dies
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_RUN], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(emu.admin.jobs()) < 5:
            assert proc.poll() is None, "the batch ended before 5 jobs were in flight"
            assert time.monotonic() < deadline, "the batch never got 5 jobs in flight"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a worker lost mid-batch: no finally, no release
        proc.wait()
    killed_with = table.rows()
    in_flight = {k for k, r in killed_with.items() if r["request_id"]}
    assert len(in_flight) >= 5
    assert all(r["claimed_by"] for r in killed_with.values() if r["video_status"])

    emu.admin.configure(time_scale=0.1)
    summary = run_batch(max_in_flight=5)  # the task's retry: same owner token, it takes its rows back

    assert summary["reattached"] == len(in_flight)
    per_row = jobs_per_row(emu)
    assert max(per_row.values()) == 1  # 0 duplicate jobs
    rows = table.rows()
    ambiguous = {k for k, r in rows.items() if r["video_status"] == "ambiguous"}  # killed mid-POST, if at all
    assert summary["ambiguous"] == len(ambiguous) <= 1
    assert {k for k, r in rows.items() if r["video_status"] == "succeeded"} == set(keys) - ambiguous
    for key in in_flight:
        assert rows[key]["request_id"] == killed_with[key]["request_id"]  # the same job, delivered


def test_a_row_left_submitting_without_an_id_is_reported_not_resubmitted(emu, table):
    table.fill(3)
    table.execute("UPDATE products SET video_status = 'submitting', request_digest = ? WHERE product_id = 'sku-0001'",
                  _digest("sku-0001"))

    summary = run_batch()

    assert summary["ambiguous"] == 1
    assert summary["succeeded"] == 2
    assert set(jobs_per_row(emu)) == {"sku-0000", "sku-0002"}
    row = table.rows()["sku-0001"]
    assert row["video_status"] == "ambiguous"
    assert "resubmit_ambiguous" in row["video_error"]
    assert summary["table"] == {"succeeded": 2, "ambiguous": 1}

    again = run_batch({"ti": TaskInstance(run_id="manual__2")})  # a re-run leaves it alone too
    assert again["submitted"] == 0
    assert submits(emu) == 2

    opted_in = run_batch({"ti": TaskInstance(run_id="manual__3")}, resubmit_ambiguous=True)
    assert opted_in["submitted"] == 1
    assert jobs_per_row(emu)["sku-0001"] == 1


def test_an_ambiguous_submit_answer_marks_the_row_and_is_not_resent(emu, table):
    table.fill(4)
    # The third POST creates (and charges) its job, then the answer is lost.
    emu.admin.add_fault(kind="drop", endpoint="submit", skip=2, times=1)

    summary = run_batch(max_in_flight=1)

    assert summary["ambiguous"] == 1
    assert summary["succeeded"] == 3
    assert submits(emu) == 4  # never re-sent
    rows = table.rows()
    [lost] = [k for k, r in rows.items() if r["video_status"] == "ambiguous"]
    assert rows[lost]["request_id"] is None
    assert "may have reached Seedance" in rows[lost]["video_error"]
    assert jobs_per_row(emu)[lost] == 1


def test_a_changed_request_is_submitted_anew_and_an_unchanged_one_reattached(emu, table):
    table.fill(3)
    run_batch()
    first = {k: r["request_id"] for k, r in table.rows().items()}
    # Two rows handed back with their jobs (as a crash would leave them); one of them had its prompt edited.
    table.execute("UPDATE products SET video_status = 'submitted' WHERE product_id IN ('sku-0000', 'sku-0001')")
    table.execute("UPDATE products SET prompt = 'A new angle' WHERE product_id = 'sku-0001'")

    summary = run_batch({"ti": TaskInstance(run_id="manual__2")})

    assert summary["reattached"] == 1
    assert summary["submitted"] == 1
    rows = table.rows()
    assert rows["sku-0000"]["request_id"] == first["sku-0000"]  # same job: not paid again
    assert rows["sku-0001"]["request_id"] != first["sku-0001"]
    assert rows["sku-0001"]["request_digest"] != rows["sku-0000"]["request_digest"]
    assert jobs_per_row(emu) == {"sku-0000": 1, "sku-0001": 2, "sku-0002": 1}
    assert {r["video_status"] for r in rows.values()} == {"succeeded"}


@pytest.mark.parametrize("shards", [2, 3])
def test_shards_and_an_overlapping_run_never_take_the_same_row(emu, table, shards):
    keys = table.fill(24)
    results: list[dict] = []
    errors: list[BaseException] = []

    def shard(index: int, run_id: str) -> None:
        try:
            results.append(run_batch({"ti": TaskInstance(run_id=run_id, map_index=index)}, shard_index=index,
                                     shard_count=shards, max_in_flight=8))
        except BaseException as exc:
            errors.append(exc)

    # K shards of one run, and the same K shards of an overlapping run, all at once.
    threads = [threading.Thread(target=shard, args=(i, run)) for run in ("run_a", "run_b") for i in range(shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert not errors
    assert jobs_per_row(emu) == dict.fromkeys(keys, 1)
    assert sum(r["succeeded"] for r in results) == 24
    assert all(r["window"] <= -(-8 // shards) for r in results)  # each shard's share of max_in_flight
    assert set(table.statuses()) == {"succeeded"}
