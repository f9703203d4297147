"""OpenLineage metadata of a :class:`~airflow_provider_seedance.operators.batch.SeedanceBatchGenerateOperator` run.

Called only by the operator's ``get_openlineage_facets_on_*`` methods (importing it needs the OpenLineage
provider). What a run reports (issue 24, ``docs/guides/batch.rst``, "Lineage"):

- **inputs**: the asset table, named as the common.sql operators name a table: ``SQLParser.create_namespace``
  of the hook's ``get_openlineage_database_info`` and ``database.schema.table``; a hook without OpenLineage
  support (SQLite) is named ``conn_type://host`` + the table;
- **outputs** (complete, failure): the table again (each row's outcome is written back) and the destinations'
  store: the part of the ``destination`` template before its first template tag, down to its last ``/``,
  named as the single operator names a stored video (``naming.storage_dataset``);
- **run facet** ``seedanceGeneration``: the connection, the credits charged, whether videos were stored.

The table's name needs the connection: the operator names it in ``execute`` (its own process); on start, as
the common.sql operators do, it is looked up then, and left out if that fails.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset

from airflow_provider_seedance.lineage.facets import FACET_KEY, SeedanceGenerationRunFacet
from airflow_provider_seedance.lineage.openlineage import START, _storage_datasets

if TYPE_CHECKING:
    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator

__all__ = ["batch_lineage", "destination_root", "table_dataset"]

log = logging.getLogger(__name__)


def table_dataset(db_hook: Any, connection: Any, table: str) -> tuple[str, str]:
    """``(namespace, name)`` of the asset table, as the OpenLineage SQL support names it.

    :param db_hook: the table's common.sql hook.
    :param connection: its Airflow connection.
    :param table: ``table`` or ``schema.table``.
    """
    from airflow.providers.openlineage.sqlparser import SQLParser

    schema, _, name = table.rpartition(".")
    info = None
    try:
        info = db_hook.get_openlineage_database_info(connection)
    except Exception:  # a hook whose OpenLineage support needs more than this connection has: plain naming
        log.debug("No OpenLineage database info from %s", type(db_hook).__name__, exc_info=True)
    if info is None:
        authority = connection.host or ""
        if connection.port:
            authority = f"{authority}:{connection.port}"
        return f"{connection.conn_type}://{authority}", table
    if not schema:
        try:
            schema = db_hook.get_openlineage_default_schema() or ""
        except Exception:
            schema = ""
    database = info.database or connection.schema
    return SQLParser.create_namespace(info), ".".join(p for p in (database, schema, name) if p)


def destination_root(destination: Any) -> str | None:
    """The fixed part of a per-row ``destination`` template: up to its last ``/`` before the first tag.

    :param destination: the operator's ``destination`` (None: videos are not stored).
    """
    if not isinstance(destination, str) or not destination.strip():
        return None
    fixed = destination.strip().split("{{")[0].split("{%")[0]
    root = fixed[: fixed.rfind("/")] if "/" in fixed else ""
    return root if root.strip("/") and not root.endswith(":/") else None


def _table(operator: SeedanceBatchGenerateOperator) -> list[Dataset]:
    facts: dict[str, Any] = getattr(operator, "_lineage_facts", None) or {}
    named = facts.get("table")
    if named is None:
        try:
            from airflow.providers.common.compat.sdk import BaseHook

            hook = BaseHook.get_hook(operator.conn_id)
            named = table_dataset(hook, hook.get_connection(operator.conn_id), operator.table)
        except Exception:
            log.debug("Could not name the batch's table for OpenLineage", exc_info=True)
            return []
    return [Dataset(namespace=named[0], name=named[1])]


def batch_lineage(operator: SeedanceBatchGenerateOperator, task_instance: Any, phase: str) -> OperatorLineage:
    """Lineage of a batch run: the table in; the table and the destinations' store out.

    :param operator: the task.
    :param task_instance: the running task instance (unused: everything comes from this process).
    :param phase: ``start``, ``complete`` or ``failure``.
    """
    facts: dict[str, Any] = getattr(operator, "_lineage_facts", None) or {}
    table = _table(operator)
    root = destination_root(operator.destination)
    outputs: list[Dataset] = []
    if phase != START:
        outputs = table + (_storage_datasets(root) if root else [])
    charged = facts.get("credits_charged")
    facet = SeedanceGenerationRunFacet(
        creditsCharged=charged if isinstance(charged, int) and not isinstance(charged, bool) else None,
        persisted=root is not None,
        connectionId=operator.seedance_conn_id or None,
    )
    return OperatorLineage(inputs=table, outputs=outputs, run_facets={FACET_KEY: facet})
