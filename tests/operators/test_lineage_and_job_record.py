"""Pure helpers of the operator: lineage merging and the stored job record."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.operators._job_state import (
    JobRecord,
    NullJobStore,
    TaskStateJobStore,
    VariableJobStore,
    job_store_for,
)
from airflow_provider_seedance.operators._lineage import lineage_of, with_lineage

LINEAGE = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 3, "try_number": 2}


def test_lineage_goes_under_its_own_key_and_user_keys_are_untouched() -> None:
    user = {"campaign": "spring", "dag_id": "users-own-value"}
    merged = with_lineage(user, LINEAGE)
    assert merged == {"campaign": "spring", "dag_id": "users-own-value", "airflow": LINEAGE}
    assert user == {"campaign": "spring", "dag_id": "users-own-value"}  # not mutated


def test_users_own_airflow_object_wins_key_by_key() -> None:
    merged = with_lineage({"airflow": {"task_id": "mine", "team": "x"}}, LINEAGE)
    assert merged["airflow"] == {**LINEAGE, "task_id": "mine", "team": "x"}


def test_users_non_object_airflow_value_is_left_alone() -> None:
    assert with_lineage({"airflow": "v2"}, LINEAGE) == {"airflow": "v2"}


def test_no_user_metadata() -> None:
    assert with_lineage(None, LINEAGE) == {"airflow": LINEAGE}


def test_lineage_of_a_task_instance(context: dict[str, Any]) -> None:
    assert lineage_of(context) == {
        "dag_id": "unit_dag", "run_id": "manual__2026-01-01T00:00:00+00:00", "task_id": "generate",
        "map_index": -1, "try_number": 1,
    }


def test_record_round_trip_and_tolerant_parse() -> None:
    record = JobRecord("req_1", started_at=10.0, deadline=70.0, credits_charged=64)
    assert JobRecord.from_json(record.to_json()) == record
    assert JobRecord.from_json(None) is None
    assert JobRecord.from_json({"request_id": ""}) is None
    assert JobRecord.from_json("req_1") is None
    odd = JobRecord.from_json({"request_id": "req_2", "deadline": "soon", "credits_charged": True, "delivered": 1})
    assert odd == JobRecord("req_2", started_at=0.0, deadline=None, credits_charged=None, delivered=False)


def test_task_state_store_round_trip(state_store: Any) -> None:
    store = TaskStateJobStore(state_store)
    assert store.load() is None
    record = JobRecord("req_1", started_at=1.0)
    store.save(record)
    store.mark_delivered(record)
    loaded = store.load()
    assert loaded is not None
    assert loaded.delivered
    assert loaded.request_id == "req_1"


def test_store_choice(context: dict[str, Any]) -> None:
    assert isinstance(job_store_for(context), TaskStateJobStore)
    assert isinstance(job_store_for(context, resumable=False), NullJobStore)
    without = {"ti": context["ti"]}  # Airflow < 3.3: no task_state_store in the context
    store = job_store_for(without)
    assert isinstance(store, VariableJobStore)
    assert store.key == "seedance_job__unit_dag__manual__2026-01-01T00:00:00+00:00__generate__-1"


@pytest.mark.parametrize("run_id", ["short", "x" * 400])
def test_variable_keys_fit_airflows_limit_and_are_distinct(run_id: str) -> None:
    key = VariableJobStore.key_for("dag", run_id, "task", 0)
    assert len(key) <= 250
    assert key != VariableJobStore.key_for("dag", run_id, "task", 1)
