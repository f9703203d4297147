"""Airflow lineage in the request's ``metadata``, so every paid job can be traced back to its task.

The lineage goes under one reserved key, ``metadata["airflow"]``, and the user's own keys are never
touched: ``{"campaign": "x"}`` becomes ``{"campaign": "x", "airflow": {"dag_id": ..., "run_id": ...,
"task_id": ..., "map_index": ..., "try_number": ...}}``. If the user set ``metadata["airflow"]``
to an object themselves, their entries win over ours key by key; if they set it to anything else,
it is left exactly as given and no lineage is added (a warning says so).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["LINEAGE_KEY", "lineage_of", "with_lineage"]

LINEAGE_KEY = "airflow"

log = logging.getLogger(__name__)


def lineage_of(context: Mapping[str, Any]) -> dict[str, Any]:
    """The task instance's identity, JSON-simple.

    :param context: the task's context.
    """
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": map_index if map_index is not None else -1,
        "try_number": getattr(ti, "try_number", None),
    }


def with_lineage(metadata: Mapping[str, Any] | None, lineage: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new metadata dict: the user's keys untouched, the lineage under ``"airflow"``.

    :param metadata: the user's metadata (already a mapping with string keys), or None.
    :param lineage: from :func:`lineage_of`.
    """
    merged: dict[str, Any] = dict(metadata or {})
    own = merged.get(LINEAGE_KEY)
    if own is None:
        merged[LINEAGE_KEY] = dict(lineage)
    elif isinstance(own, Mapping):
        merged[LINEAGE_KEY] = {**lineage, **own}
    else:
        log.warning(
            "metadata[%r] is set by the DAG (%s), so no Airflow lineage is added to this request",
            LINEAGE_KEY, type(own).__name__,
        )
    return merged
