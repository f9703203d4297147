"""The run budget under a real scheduler: four mapped generations started together, room for two.

``seedance_engine_budget`` (tests/faults/engine_dags) maps four text-to-video generations (40 credits
each) with ``run_budget_credits=100``; LocalExecutor runs them in parallel processes, each reading and
writing the run's XComs through the real execution API. A last task reports ``seedance_run_spend()``.
"""

from __future__ import annotations

import pytest
from engine_run import EngineObservation, observe_engine

pytestmark = pytest.mark.e2e
DAG_ID = "seedance_engine_budget"


@pytest.fixture(scope="module")
def obs() -> EngineObservation:
    return observe_engine()


def test_the_budget_held_under_concurrency(obs: EngineObservation) -> None:
    states = {i: obs.task(DAG_ID, "generate", i)["state"] for i in range(4)}
    jobs = obs.jobs_of(DAG_ID)
    charged = sum(j["creditsCharged"] for j in jobs)
    assert charged <= 100
    assert sorted(states.values()) == ["failed", "failed", "success", "success"], states
    assert len(jobs) == 2
    # The refused tasks sent nothing: one POST per job.
    assert len(obs.submits_of(DAG_ID)) == 2
    refused = [i for i, s in states.items() if s == "failed"]
    for index in refused:
        [log] = [t for p, t in obs.task_logs.items()
                 if f"dag_id={DAG_ID}/" in p and f"map_index={index}/attempt=1.log" in p and ".trigger." not in p]
        assert "Run budget exceeded" in log
        assert "Nothing was submitted" in log


def test_the_run_spend_summary_matches_the_vendors_charges(obs: EngineObservation) -> None:
    jobs = obs.jobs_of(DAG_ID)
    summary = obs.xcom(DAG_ID, "run_spend")
    assert summary["credits_charged"] == sum(j["creditsCharged"] for j in jobs) == 80
    assert summary["generations"] == 2
    assert summary["credits_reserved"] == 0
    assert sorted(summary["tasks"].values()) == [0, 0, 40, 40]
    for index in range(4):
        charged = obs.xcom(DAG_ID, "generate", "credits_charged", map_index=index)
        assert summary["tasks"][f"generate[{index}]"] == (charged or 0)
