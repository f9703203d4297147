"""OpenLineage of the batch, in the task's own process: the table in, then the table, the destinations' store and
the credits out (issue 24 item 7), from a real run against the emulator and a real SQLite table."""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.providers.openlineage", reason="the [openlineage] extra is not installed")

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.openlineage.sqlparser import DatabaseInfo

from airflow_provider_seedance.lineage.batch_lineage import destination_root, table_dataset
from airflow_provider_seedance.lineage.facets import FACET_KEY
from airflow_provider_seedance.lineage.naming import storage_dataset
from tests.batch.conftest import TaskInstance, make_operator


def _named(datasets) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_the_table_is_read_then_written_and_the_videos_stored(emu, table, tmp_path):
    table.fill(3)
    op = make_operator(destination=str(tmp_path / "videos" / "{{ row.product_id }}.mp4"))
    table_name = (f"sqlite://{table.path}", "products")

    start = op.get_openlineage_facets_on_start()
    assert _named(start.inputs) == [table_name]
    assert start.outputs == []

    summary = op.execute({"ti": TaskInstance()})
    complete = op.get_openlineage_facets_on_complete(None)

    assert _named(complete.inputs) == [table_name]
    assert _named(complete.outputs) == [table_name, storage_dataset(f"file://{tmp_path}/videos")]
    facet = complete.run_facets[FACET_KEY]
    assert facet.creditsCharged == summary["credits_charged"] > 0
    assert facet.persisted is True
    assert facet.connectionId == "seedance_default"
    assert "externalQuery" not in complete.run_facets  # no one job to point at


def test_without_a_destination_only_the_table_is_written(emu, table):
    table.fill(1)
    op = make_operator()
    op.execute({"ti": TaskInstance()})

    failure = op.get_openlineage_facets_on_failure(None)

    assert _named(failure.outputs) == [(f"sqlite://{table.path}", "products")]
    assert failure.run_facets[FACET_KEY].persisted is False


class _WarehouseHook(DbApiHook):
    """A hook with OpenLineage support, as the PostgreSQL one has (not a dependency of this project)."""

    conn_name_attr = "wh_conn_id"

    def get_openlineage_database_info(self, connection):
        return DatabaseInfo(scheme="postgres", authority="db.example:5432", database="assets")

    def get_openlineage_default_schema(self):
        return "public"


def test_a_table_is_named_as_the_sql_operators_name_it():
    from airflow.models.connection import Connection

    conn = Connection(conn_id="wh", conn_type="postgres", host="db.example", port=5432, schema="assets")
    hook = _WarehouseHook()

    assert table_dataset(hook, conn, "media.products") == ("postgres://db.example:5432", "assets.media.products")
    assert table_dataset(hook, conn, "products") == ("postgres://db.example:5432", "assets.public.products")


@pytest.mark.parametrize(("destination", "root"), [
    ("s3://bucket/videos/{{ row.sku }}.mp4", "s3://bucket/videos"),
    ("s3://bucket/videos/{% if row.x %}a{% endif %}.mp4", "s3://bucket/videos"),
    ("/data/out/{{ row.sku }}/v.mp4", "/data/out"),
    ("{{ row.uri }}", None),
    ("s3://{{ params.bucket }}/v.mp4", None),
    (None, None),
])
def test_the_destinations_store_is_the_templates_fixed_part(destination, root):
    assert destination_root(destination) == root
