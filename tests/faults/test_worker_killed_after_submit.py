"""The worker dies right after submitting (real SIGKILL under a real scheduler): the retry pays nothing more.

Try 1 of ``seedance_engine_kill`` runs in its own task process supervised by LocalExecutor; a test-only
subclass kills that process with SIGKILL the instant the request id is saved in the task state store
(the operator's submit, record and resume code run unmodified). The supervisor reports the death, the
scheduler schedules try 2, and try 2 must resume the same job: one POST across both tries.
"""

from __future__ import annotations

import json

import pytest
from engine_run import EngineObservation, kill_row, observe_engine
from fault_scenarios import SCENARIOS, check_row

pytestmark = pytest.mark.e2e
DAG_ID = "seedance_engine_kill"


@pytest.fixture(scope="module")
def obs() -> EngineObservation:
    return observe_engine()


def _events(obs: EngineObservation, attempt: int) -> list[str]:
    [text] = [t for p, t in obs.task_logs.items() if f"dag_id={DAG_ID}/" in p and p.endswith(f"attempt={attempt}.log")]
    return [str(json.loads(line).get("event")) for line in text.splitlines() if line.startswith("{")]


def test_matrix_row_holds(obs: EngineObservation) -> None:
    [scenario] = [s for s in SCENARIOS if s.path == "engine"]
    row = kill_row(obs)
    assert not check_row(scenario, row), (check_row(scenario, row), row)


def test_try_1_really_died_after_saving_and_before_anything_else(obs: EngineObservation) -> None:
    events = _events(obs, 1)
    [job] = obs.jobs_of(DAG_ID)
    assert any(f"Seedance generation {job['requestId']} submitted" in e for e in events)
    # The operator's next line after saving was never written: the process was gone.
    assert not any(e.startswith("Submitted Seedance generation") for e in events)
    assert any("terminated by signal" in e for e in events)


def test_try_2_resumed_the_same_job_with_one_post(obs: EngineObservation) -> None:
    [job] = obs.jobs_of(DAG_ID)
    rid = job["requestId"]
    events = _events(obs, 2)
    assert any(f"Found Seedance generation {rid} from an earlier try" in e for e in events)
    assert len(obs.submits_of(DAG_ID)) == 1
    assert job["status"] == "succeeded"
    assert obs.xcom(DAG_ID, "generate", "request_id") == rid
    assert obs.xcom(DAG_ID, "generate") == obs.xcom(DAG_ID, "generate", "output_url")
    assert obs.xcom(DAG_ID, "generate", "credits_charged") == job["creditsCharged"]
    assert not [r for r in obs.requests if r["endpoint"] == "cancel" and r["requestId"] == rid]
