"""A DAG run's XComs kept in memory, and task contexts over them (spend-guard tests).

The stand-in has the one property the run budget relies on (a push that returned is seen by every later
pull, in every thread); the real XCom table is exercised by the engine run (tests/faults/engine_run.py,
``seedance_engine_budget``).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

__all__ = ["DictStore", "RunTI", "RunXComs", "run_context"]


class RunXComs:
    """One DAG run's XComs: (task_id, map_index, key) -> value, linearizable (one lock)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int, str], Any] = {}
        self.lock = threading.Lock()

    def push(self, task_id: str, map_index: int, key: str, value: Any) -> None:
        with self.lock:
            self.values[(task_id, map_index, key)] = value

    def pull(self, task_ids: list[str], key: str) -> list[Any]:
        with self.lock:
            return [v for (t, _m, k), v in sorted(self.values.items()) if t in task_ids and k == key]


class RunTI:
    """The task-instance surface the operator and the budget use, over :class:`RunXComs`."""

    dag_id = "budget_dag"
    run_id = "manual__1"

    def __init__(self, xcoms: RunXComs, task_id: str = "generate", map_index: int = -1, try_number: int = 1) -> None:
        self.xcoms = xcoms
        self.task_id = task_id
        self.map_index = map_index
        self.try_number = try_number

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms.push(self.task_id, self.map_index, key, value)

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids or [self.task_id])
        return self.xcoms.pull(ids, key)


class DictStore:
    """The task state store surface (get/set)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.data[key] = value


def run_context(xcoms: RunXComs, dag_tasks: dict[str, Any], task_id: str = "generate", map_index: int = -1,
                store: DictStore | None = None, try_number: int = 1) -> dict[str, Any]:
    """A task context in a run whose DAG holds ``dag_tasks``.

    :param xcoms: the run's XComs.
    :param dag_tasks: task id -> operator (or anything with ``operator_class``) of the DAG.
    :param task_id: this task.
    :param map_index: this task's map index.
    :param store: its task state store.
    :param try_number: its try.
    """
    return {
        "ti": RunTI(xcoms, task_id, map_index, try_number),
        "dag": SimpleNamespace(task_dict=dag_tasks),
        "task_state_store": store if store is not None else DictStore(),
    }
