"""Fixtures: the emulator, reachable as the default Seedance connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass



class StubTaskInstance:
    """The task-instance attributes the sensor reads; XComs recorded in push order."""

    dag_id = "unit_dag"
    run_id = "manual__2026-01-01T00:00:00+00:00"
    task_id = "wait"
    map_index = -1
    try_number = 1

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


@pytest.fixture
def context() -> dict[str, object]:
    return {"ti": StubTaskInstance()}
