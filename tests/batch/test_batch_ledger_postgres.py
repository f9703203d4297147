"""The ledger's SQL on a real PostgreSQL server (started from the OS packages, as ``make e2e-distributed`` does).

Skipped when psycopg2 or the server binaries are missing. The hook is a plain common.sql ``DbApiHook`` over
psycopg2 (the postgres provider is not a dependency of this project): the ledger uses only the DB-API and the
hook's placeholder, which is what is tested here, with overlapping claims from concurrent owners.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest

psycopg2 = pytest.importorskip("psycopg2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "distributed"))

from airflow.providers.common.sql.hooks.sql import DbApiHook  # noqa: E402
from processes import ProcessRegistry  # noqa: E402
from system_services import MissingDependencyError, start_postgres  # noqa: E402

from airflow_provider_seedance.operators._batch_ledger import DEFAULT_RESULT_COLUMNS, TableLedger  # noqa: E402
from tests.batch.conftest import CREATE  # noqa: E402

# Starts a PostgreSQL server: the integration tier (`make test-integration`), not `make test`.
pytestmark = pytest.mark.integration

WORKABLE = ["pending", "submitting", "submitted", "cancelled"]


class PsycopgHook(DbApiHook):
    """A DbApiHook over one PostgreSQL DSN (what PostgresHook is, minus the connection lookup)."""

    conn_name_attr = "pg_conn_id"
    default_conn_name = "pg_test"

    def __init__(self, dsn: dict) -> None:
        super().__init__()
        self.dsn = dsn
        self._placeholder = "%s"

    def get_conn(self):
        return psycopg2.connect(**self.dsn)


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    registry = ProcessRegistry(tmp_path_factory.mktemp("pg-run"))
    password = secrets.token_hex(8)
    # As root the server runs as the OS package's user, which cannot enter pytest's private temp dirs.
    base = Path(tempfile.mkdtemp(prefix="seedance-batch-pg-"))
    base.chmod(0o755)
    try:
        port = start_postgres(registry, base / "pg", password)
    except MissingDependencyError as exc:
        registry.stop_all()
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(str(exc))
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "airflow", "password": password, "dbname": "airflow"}
    finally:
        registry.stop_all()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def hook(pg, monkeypatch):
    # The hook's Airflow connection only carries extras (none): psycopg2 connects with the DSN above.
    monkeypatch.setenv("AIRFLOW_CONN_PG_TEST", json.dumps({"conn_type": "generic", "host": "127.0.0.1"}))
    hook = PsycopgHook(pg)
    hook.run("DROP TABLE IF EXISTS products")
    hook.run(CREATE)
    hook.insert_rows("products", [(f"sku-{i:03d}", f"prompt {i}", 5) for i in range(60)],
                     target_fields=["product_id", "prompt", "seconds"])
    return hook


def _ledger(hook, owner):
    return TableLedger(hook, "products", "product_id", DEFAULT_RESULT_COLUMNS, "seconds = 5", owner)


def test_overlapping_owners_never_claim_the_same_row(hook):
    held: dict[str, list] = {}

    def claim(owner: str) -> None:
        ledger = _ledger(hook, owner)
        held[owner] = [r.key for r in ledger.claim([r.key for r in ledger.candidates(WORKABLE)], WORKABLE)]

    threads = [threading.Thread(target=claim, args=(f"run_{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    counts = Counter(k for keys in held.values() for k in keys)
    assert len(counts) == 60
    assert set(counts.values()) == {1}


def test_a_claim_from_a_stale_read_takes_nothing(hook):
    # B read the candidates before A claimed them (the race of two runs starting together).
    a, b = _ledger(hook, "run_a"), _ledger(hook, "run_b")
    stale = [r.key for r in b.candidates(WORKABLE)]
    held_a = a.claim([r.key for r in a.candidates(WORKABLE)], WORKABLE)

    assert b.claim(stale, WORKABLE) == []
    assert len(a.claim([], WORKABLE)) == len(held_a) == 60


def test_the_ledger_writes_on_postgres(hook):
    ledger = _ledger(hook, "run_a")
    ledger.check_schema(["prompt", "seconds"])
    [first, *_] = ledger.claim(["sku-000", "sku-001", "sku-002"], WORKABLE)

    assert ledger.mark_submitting("sku-000", "v1:abc")
    assert ledger.mark_submitted("sku-000", "req_1", 80)
    assert ledger.mark_submitting("sku-001", "v1:def")
    assert ledger.mark_pending("sku-001")
    assert ledger.mark_outcome("sku-002", "failed", error="x" * 5000)
    assert not _ledger(hook, "run_b").mark_submitting("sku-000", "v1:zzz")  # not run_b's row
    assert ledger.release() == 3
    assert ledger.mark_cancelled("sku-000", "req_1")  # on_kill after release (execution_timeout)

    rows = {r.key: r for r in _ledger(hook, "run_c").candidates([*WORKABLE, "failed"])}
    assert (rows["sku-000"].status, rows["sku-000"].request_id, rows["sku-000"].digest) == ("cancelled", "req_1",
                                                                                           "v1:abc")
    assert rows["sku-001"].status is None
    assert len(rows["sku-002"].values["video_error"]) <= 1000
    assert first.key == "sku-000"
    assert ledger.count_by_status() == {"cancelled": 1, "failed": 1, "pending": 58}


def test_schema_problems_are_named_on_postgres(hook):
    with pytest.raises(ValueError, match=r"no column for request_columns='colour'"):
        _ledger(hook, "run_a").check_schema(["colour"])
    hook.run("ALTER TABLE products DROP CONSTRAINT products_pkey")
    hook.run("INSERT INTO products (product_id, prompt) VALUES ('sku-001', 'again')")
    with pytest.raises(ValueError, match=r"not unique: 'sku-001' \(2 rows\)"):
        _ledger(hook, "run_a").check_schema([])
