"""Fixtures for the batch operator: a real SQLite asset table (through the sqlite provider's SqliteHook), the
session emulator as the Seedance connection, and a task context whose owner token is stable over 'tries'."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

CREATE = """CREATE TABLE products (
    product_id VARCHAR(100) PRIMARY KEY, prompt TEXT NOT NULL, image_url TEXT, seconds INTEGER,
    video_status VARCHAR(20), request_id VARCHAR(100), video_uri TEXT, credits_charged INTEGER,
    video_error TEXT, updated_at VARCHAR(40), request_digest VARCHAR(80), claimed_by VARCHAR(250))"""


class TaskInstance:
    """What the operator reads of a task instance: the ids that make its owner token."""

    def __init__(self, run_id: str = "manual__1", task_id: str = "batch", map_index: int = -1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "batch_dag", run_id, task_id, map_index


class AssetTable:
    """A SQLite file holding ``products``, reachable as the Airflow connection ``asset_db``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self, n: int, *, create: str = CREATE) -> list[str]:
        keys = [f"sku-{i:04d}" for i in range(n)]
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(create)
            db.executemany("INSERT INTO products (product_id, prompt, image_url, seconds) VALUES (?, ?, ?, ?)",
                           [(k, f"A turntable shot of product {k}", f"https://example.com/{k}.jpg", 5) for k in keys])
        return keys

    def execute(self, sql: str, *args: Any) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(sql, args)

    def rows(self) -> dict[str, dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            db.row_factory = sqlite3.Row
            return {r["product_id"]: dict(r) for r in db.execute("SELECT * FROM products ORDER BY product_id")}

    def statuses(self) -> Counter[str | None]:
        return Counter(r["video_status"] for r in self.rows().values())


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AssetTable:
    path = tmp_path / "assets.db"
    monkeypatch.setenv("AIRFLOW_CONN_ASSET_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return AssetTable(path)


def jobs_per_row(emu: Any) -> Counter[str]:
    """How many jobs the vendor created for each row (from the key the batch puts in each job's metadata)."""
    return Counter(j["request"]["metadata"]["seedance_batch"]["key"] for j in emu.admin.jobs())


def submits(emu: Any) -> int:
    return len(emu.admin.requests("submit"))


def make_operator(**overrides: Any) -> Any:
    """The operator with the test table's names and quick polling (the session emulator runs at scale 0.1)."""
    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator

    kwargs: dict[str, Any] = {
        "task_id": "batch", "conn_id": "asset_db", "table": "products", "key_column": "product_id",
        "request_columns": {"prompt": "prompt", "media_urls": "image_url", "duration": "seconds"},
        "request_template": {"model": "seedance-2.0", "resolution": "720p"},
        "poll_interval": 0.05, "max_poll_interval": 0.1, "requests_per_second": None, "progress_interval": 0.5,
    }
    kwargs.update(overrides)
    return SeedanceBatchGenerateOperator(**kwargs)


def run_batch(context: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    op = make_operator(**overrides)
    return op.execute(context or {"ti": TaskInstance()})
