"""What a worker process learnt about its job, kept for the OpenLineage methods.

The OpenLineage listener may call ``get_openlineage_facets_on_complete`` in a forked child of the task
process (its default), where talking to the supervisor (XCom, Variables, connections) can hang until
the listener's timeout. So the operator keeps the facts it pushes to XCom in ``_lineage_facts`` as it
goes; after a deferral, the resumed process learns the job from the trigger's event and the job
record (:func:`note_resumed`), not from an attribute of the process that deferred.

Pure Python apart from lazy imports: called from the operator in the worker.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["note_resumed", "openlineage_enabled"]

log = logging.getLogger(__name__)


def openlineage_enabled() -> bool:
    """True when the OpenLineage provider is installed and configured to emit (a transport is set)."""
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    try:
        return not is_disabled()
    except Exception:
        return False


def note_resumed(operator: Any, context: Any, record: Any) -> None:
    """Remember the job a resumed task (after a deferral) is completing.

    Request id and charge come from the job record (or the trigger's event); the estimate, pushed to
    XCom before the deferral, is read back here in the task's own process, and only when OpenLineage
    emits (without it, the task does exactly what it did before).

    :param operator: the ``SeedanceGenerateOperator`` (its ``_lineage_facts`` dict is updated).
    :param context: the task's context.
    :param record: the job record (or one built from the event's request id).
    """
    facts: dict[str, Any] = operator._lineage_facts
    facts.setdefault("request_id", record.request_id)
    if record.credits_charged is not None:
        facts.setdefault("credits_charged", record.credits_charged)
    if not openlineage_enabled():
        return
    ti = context["ti"]
    for key in ("credits_estimated", "credits_charged"):
        if key in facts:
            continue
        try:
            value = ti.xcom_pull(task_ids=ti.task_id, key=key)
        except Exception:  # lineage never fails the task
            log.debug("Could not read XCom %s for lineage", key, exc_info=True)
            continue
        if value is not None:
            facts[key] = value
