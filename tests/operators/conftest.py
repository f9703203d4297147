"""Fixtures: the emulator, reachable as the default Seedance connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass



class StubTaskInstance:
    """The few task-instance attributes the operator reads; XComs are recorded in push order."""

    def __init__(self, task_id: str = "generate", try_number: int = 1) -> None:
        self.dag_id = "unit_dag"
        self.run_id = "manual__2026-01-01T00:00:00+00:00"
        self.task_id = task_id
        self.map_index = -1
        self.try_number = try_number
        self.pushed: list[tuple[str, object]] = []

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed.append((key, value))

    def xcom(self, key: str) -> object:
        values = [v for k, v in self.pushed if k == key]
        return values[-1] if values else None


class DictStateStore:
    """Same get/set surface as the Task SDK's task_state_store accessor, kept in a dict."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    def get(self, key: str, default: object = None) -> object:
        return self.data.get(key, default)

    def set(self, key: str, value: object, *, retention: object = None) -> None:
        self.data[key] = value


@pytest.fixture
def state_store() -> DictStateStore:
    return DictStateStore()


@pytest.fixture
def new_ti() -> type[StubTaskInstance]:
    """The stub task-instance class (a later 'try' is a new instance sharing the state store)."""
    return StubTaskInstance


@pytest.fixture
def context(state_store: DictStateStore) -> dict[str, object]:
    """A task context with a task instance and a state store that survive between 'tries'."""
    return {"ti": StubTaskInstance(), "task_state_store": state_store}
