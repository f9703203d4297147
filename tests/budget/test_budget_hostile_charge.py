"""A charge that is no amount (negative, not an integer) never switches the run budget off (issue 23, #8).

The parser refuses such a charge (tests/unit/test_hostile_answers.py); these check the budget on its own, for
a record written by an older version or pushed by hand: it counts the estimate instead, never less than 0.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from budget_helpers import RunXComs, run_context

from airflow_provider_seedance.budget import SPEND_XCOM_KEY, RunBudget, SeedanceBudgetExceededError, SpendRecord


class _Generating:
    """Stands for the operator class in ``dag.task_dict``: a task that records Seedance spend."""

    records_seedance_spend = True


TASKS = {"first": SimpleNamespace(operator_class=_Generating), "second": SimpleNamespace(operator_class=_Generating)}


@pytest.mark.parametrize("charged", [-1000, -1, 1.5, True, "64"])
def test_a_charge_that_is_no_amount_counts_the_estimate(charged: Any) -> None:
    record = SpendRecord(task_id="t", map_index=-1, state="charged", estimated=64, charged=charged)
    assert record.counted == 64
    assert record.spent == 0
    parsed = SpendRecord.from_json(dict(record.to_json(), earlier_credits=-500))
    assert parsed is not None
    assert parsed.counted == 64
    assert parsed.spent == 0


@pytest.mark.parametrize("charged", [-1000, -10**12])
def test_a_negative_charge_does_not_let_the_next_task_past_the_budget(charged: int) -> None:
    xcoms = RunXComs()
    first = RunBudget(run_context(xcoms, TASKS, task_id="first"), limit=100, attempts=1)
    first.reserve(64)
    first.charge("req_1", charged, 64, earlier_credits=0)
    assert xcoms.values[("first", -1, SPEND_XCOM_KEY)]["charged"] == charged  # the hostile value, as recorded
    second = RunBudget(run_context(xcoms, TASKS, task_id="second"), limit=100, attempts=1)
    with pytest.raises(SeedanceBudgetExceededError, match="Run budget exceeded"):
        second.reserve(64)  # 64 + 64 > 100: a negative charge must not make room


def test_a_negative_estimate_is_an_unknown_price() -> None:
    budget = RunBudget(run_context(RunXComs(), TASKS, task_id="first"), limit=100, attempts=1)
    with pytest.raises(SeedanceBudgetExceededError, match="cannot be estimated"):
        budget.reserve(-50)
