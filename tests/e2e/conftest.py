"""The e2e fixture: the emulator (own process) plus a real Airflow engine, stopped even when a test fails."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_engine import POOL_SLOTS, AirflowEngine, wait_for  # tests/e2e is on sys.path (pytest's rootdir-less import)

EXAMPLE_DAGS = {
    "example_seedance_image_to_video",
    "example_seedance_content_pipeline",
    "example_seedance_video_consumer",
    "example_seedance_asset_backfill",
}


class Stack:
    """What the e2e tests share.

    :param engine: the Airflow engine.
    :param emulator: the emulator handle (admin API).
    :param video_dir: the ``seedance_video_dir`` Variable.
    """

    def __init__(self, engine: AirflowEngine, emulator: Any, video_dir: Path) -> None:
        self.engine = engine
        self.emulator = emulator
        self.video_dir = video_dir
        self.asset_db = video_dir.parent / "assets.db"


def _dag_ids(engine: AirflowEngine) -> set[str]:
    return {d["dag_id"] for d in engine.api("GET", "/dags", params={"limit": 100})["dags"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, migrated_airflow_db: Path) -> Iterator[Stack]:
    """Emulator + migrated DB (a copy) + pool + api-server, scheduler, dag-processor, triggerer; all DAGs parsed."""
    from airflow_provider_seedance.emulator.testing import spawn_emulator

    root = tmp_path_factory.mktemp("e2e")
    video_dir = root / "videos"
    started = time.monotonic()
    # Time scale 1: a job is queued 1 s and processing 2 s unless a test asks for longer.
    with spawn_emulator(time_scale=1.0) as emulator:
        engine = AirflowEngine(root / "airflow-home", {
            "AIRFLOW_CONN_SEEDANCE_DEFAULT": emulator.connection_json,
            "AIRFLOW_VAR_SEEDANCE_VIDEO_DIR": str(video_dir),
            # The backfill example's asset table: a SQLite file, created from the seed CSV on first use.
            "AIRFLOW_CONN_SEEDANCE_ASSET_DB": json.dumps({"conn_type": "sqlite", "host": str(root / "assets.db")}),
        })
        try:
            shutil.copyfile(migrated_airflow_db, engine.home / "airflow.db")
            engine.cli("pools", "set", "seedance", str(POOL_SLOTS), "Seedance generations in flight",
                       "--include-deferred")
            for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
                engine.start(component)
            wait_for(engine.healthy, timeout=180, interval=1, what="all Airflow components healthy")
            wait_for(lambda: _dag_ids(engine) >= EXAMPLE_DAGS, timeout=120, interval=1, what="the example DAGs parsed")
            print(f"\n[e2e] engine up in {time.monotonic() - started:.1f} s (logs: {engine.log_dir})")
            yield Stack(engine, emulator, video_dir)
        finally:
            engine.stop_all()
