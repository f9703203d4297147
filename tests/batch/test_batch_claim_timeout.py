"""Stale claims (``claim_timeout``): rows a dead run held are taken over by another run once idle that long; a
row with a request id is re-attached, never re-submitted, one left ``submitting`` without an id stays ambiguous,
and a live run keeps its claims fresh."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators._batch_ledger import DEFAULT_RESULT_COLUMNS, TableLedger
from tests.batch.conftest import TaskInstance, jobs_per_row, make_operator, run_batch, submits

LONG_AGO = "2020-01-01T00:00:00.000000+00:00"


def _digest(key: str) -> str:
    return GenerationRequest(prompt=f"A turntable shot of product {key}", media_urls=[f"https://example.com/{key}.jpg"],
                             duration=5, resolution="720p").digest()


def _left_by_a_dead_run(table) -> dict[str, str]:
    """Four rows as a run SIGKILLed hours ago (and one alive) leave them; returns the jobs already paid for."""
    table.fill(4)
    run_batch()
    jobs = {k: r["request_id"] for k, r in table.rows().items()}
    table.execute("UPDATE products SET claimed_by = 'dead/run/batch/-1', updated_at = ?", LONG_AGO)
    # sku-0000: its job was submitted (id written); sku-0001: killed mid-POST; sku-0002: claimed, not started.
    table.execute("UPDATE products SET video_status = 'submitted', video_uri = NULL WHERE product_id = 'sku-0000'")
    table.execute("UPDATE products SET video_status = 'submitting', request_id = NULL, request_digest = ? "
                  "WHERE product_id = 'sku-0001'", _digest("sku-0001"))
    table.execute("UPDATE products SET video_status = NULL, request_id = NULL, request_digest = NULL "
                  "WHERE product_id = 'sku-0002'")
    # sku-0003: pending, held by a run that is alive (it touched the row just now).
    table.execute("UPDATE products SET video_status = NULL, request_id = NULL, claimed_by = 'alive/run/batch/-1', "
                  "updated_at = '9999-01-01T00:00:00.000000+00:00' WHERE product_id = 'sku-0003'")
    return jobs


def test_a_dead_runs_idle_claims_are_taken_over_and_never_paid_twice(emu, table):
    jobs = _left_by_a_dead_run(table)
    assert submits(emu) == 4

    never = run_batch({"ti": TaskInstance(run_id="manual__2")}, claim_timeout=None)
    assert never["rows"] == 0  # without claim_timeout the dead run's rows stay where they are

    summary = run_batch({"ti": TaskInstance(run_id="manual__3")}, claim_timeout=timedelta(hours=1))

    assert summary["reattached"] == 1
    assert summary["ambiguous"] == 1
    assert summary["submitted"] == 1
    rows = table.rows()
    assert rows["sku-0000"]["video_status"] == "succeeded"
    assert rows["sku-0000"]["request_id"] == jobs["sku-0000"]  # polled and delivered, not submitted again
    assert rows["sku-0001"]["video_status"] == "ambiguous"
    assert rows["sku-0002"]["video_status"] == "succeeded"
    assert rows["sku-0003"]["video_status"] is None  # a live run's claim is left alone
    assert rows["sku-0003"]["claimed_by"] == "alive/run/batch/-1"
    assert submits(emu) == 5
    assert jobs_per_row(emu) == {"sku-0000": 1, "sku-0001": 1, "sku-0002": 2, "sku-0003": 1}


def test_a_live_run_keeps_its_claims_fresh(table):
    table.fill(2)
    ledger = TableLedger(BaseHook.get_hook("asset_db"), "products", "product_id", DEFAULT_RESULT_COLUMNS, None,
                         "alive", claim_timeout=3600)
    other = TableLedger(BaseHook.get_hook("asset_db"), "products", "product_id", DEFAULT_RESULT_COLUMNS, None,
                        "other", claim_timeout=3600)
    statuses = ["pending", "submitting", "submitted"]
    assert [r.key for r in ledger.claim(["sku-0000", "sku-0001"], statuses)] == ["sku-0000", "sku-0001"]
    table.execute("UPDATE products SET updated_at = ?", LONG_AGO)
    assert ledger.touch() == 2  # what the batch does every claim_timeout / 4

    assert other.claim(["sku-0000", "sku-0001"], statuses) == []
    assert other.candidates(statuses) == []
    table.execute("UPDATE products SET updated_at = ? WHERE product_id = 'sku-0001'", LONG_AGO)
    assert [r.key for r in other.claim(["sku-0000", "sku-0001"], statuses)] == ["sku-0001"]
    assert sorted(r["claimed_by"] for r in table.rows().values()) == ["alive", "other"]


def test_the_batch_touches_its_claims_while_its_jobs_run(emu, table):
    table.fill(2)
    emu.admin.set_next_jobs(never_finishes=True, count=2)
    op = make_operator(max_in_flight=2, claim_timeout=0.4)  # touched every 0.1 s
    seen: list[str] = []

    def watch_then_kill() -> None:
        deadline = time.monotonic() + 60  # a guard for a broken run, not a timing assertion
        while time.monotonic() < deadline and len(seen) < 3:
            try:
                rows = table.rows()
            except sqlite3.OperationalError:  # the batch's writer holds the lock: look again
                continue
            stamps = {r["updated_at"] for r in rows.values()}
            if all(r["request_id"] for r in rows.values()) and len(stamps) == 1 and stamps - set(seen):
                seen.extend(stamps)  # both rows stamped at once: the batch's refresh, not one row's write
            time.sleep(0.02)
        op.on_kill()

    killer = threading.Thread(target=watch_then_kill, daemon=True)
    killer.start()
    with pytest.raises(SeedanceError, match="killed"):
        op.execute({"ti": TaskInstance()})
    killer.join(60)
    assert len(seen) == 3
