"""The per-DAG-run budget (``run_budget_credits``) and the run's spend summary.

- Concurrency: many tasks reserving at once through real threads never overspend (the reserve-then-verify
  argument of ``airflow_provider_seedance.budget``), over many random interleavings.
- The real operator against the emulator, tasks of one run sharing their XComs: what fits is submitted,
  what does not is refused before any POST, refused submits give their reservation back, ambiguous ones
  keep it, and a retry that pays again still counts the first charge.
The same under a real scheduler with truly concurrent mapped tasks: test_run_budget_engine.py.
"""

from __future__ import annotations

import random
import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from budget_helpers import DictStore, RunXComs, run_context

from airflow_provider_seedance.budget import (
    SPEND_XCOM_KEY,
    RunBudget,
    SeedanceBudgetExceededError,
    SpendRecord,
    seedance_run_spend,
    spend_task_ids,
)
from airflow_provider_seedance.errors import SeedanceJobFailedError, SeedanceValidationError
from airflow_provider_seedance.operators.seedance import SeedanceAmbiguousSubmitNoRetryError, SeedanceGenerateOperator

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

MAPPED = SimpleNamespace(operator_class=SeedanceGenerateOperator)  # how a mapped task shows in dag.task_dict


class _JitteryXComs(RunXComs):
    """Each push and pull takes a random moment before it lands, like a round trip to the API server."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def push(self, task_id: str, map_index: int, key: str, value: Any) -> None:
        time.sleep(self.rng.random() * 0.003)
        super().push(task_id, map_index, key, value)

    def pull(self, task_ids: list[str], key: str) -> list[Any]:
        time.sleep(self.rng.random() * 0.003)
        return super().pull(task_ids, key)


def _race(seed: int) -> tuple[int, list[int], list[bool]]:
    rng = random.Random(seed)
    limit = rng.randint(40, 200)
    estimates = [rng.choice([20, 40, 64, 80]) for _ in range(rng.randint(2, 8))]
    xcoms = _JitteryXComs(rng)
    start = threading.Barrier(len(estimates))
    went: list[bool] = [False] * len(estimates)

    def task(index: int) -> None:
        budget = RunBudget(run_context(xcoms, {"generate": MAPPED}, map_index=index), limit, attempts=4,
                           backoff=(0.001, 0.01))
        start.wait()
        try:
            budget.reserve(estimates[index])
        except SeedanceBudgetExceededError:
            return
        went[index] = True
        time.sleep(rng.random() * 0.005)  # the submit
        budget.charge(f"req_{index}", estimates[index], estimates[index], earlier_credits=0)

    threads = [threading.Thread(target=task, args=(i,)) for i in range(len(estimates))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return limit, estimates, went


def test_concurrent_reservations_never_overspend_the_run() -> None:
    fits_somewhere = proceeded_somewhere = 0
    for seed in range(60):
        limit, estimates, went = _race(seed)
        spent = sum(e for e, ok in zip(estimates, went, strict=True) if ok)
        assert spent <= limit, (seed, limit, estimates, went)
        if min(estimates) <= limit:
            fits_somewhere += 1
            proceeded_somewhere += any(went)
    # Not a safety property, but a budget that refused everyone would be safe and useless.
    assert proceeded_somewhere >= fits_somewhere * 0.9, (proceeded_somewhere, fits_somewhere)


def _op(task_id: str = "generate", **kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("max_poll_interval", 0.1)
    return SeedanceGenerateOperator(task_id=task_id, prompt=f"[{task_id}] a harbour", **kwargs)


def _submits(emu: EmulatorHandle) -> list[dict[str, Any]]:
    return emu.admin.requests(endpoint="submit")


def test_what_fits_is_submitted_and_the_rest_refused_before_any_post(emu: EmulatorHandle) -> None:
    xcoms = RunXComs()
    # "100" is what a template renders: the budget is templated.
    ops = {t: _op(t, run_budget_credits="100" if t == "a" else 100, wait_for_completion=False) for t in "abc"}
    ops["a"].execute(run_context(xcoms, ops, "a"))
    ops["b"].execute(run_context(xcoms, ops, "b"))
    with pytest.raises(SeedanceBudgetExceededError) as info:
        ops["c"].execute(run_context(xcoms, ops, "c"))
    message = str(info.value)
    assert "estimated at 40 credits" in message
    assert "hold 80" in message
    assert "a: 40 (charged)" in message
    assert "b: 40 (charged)" in message
    assert "Nothing was submitted" in message
    assert len(_submits(emu)) == 2
    assert SpendRecord.from_json(xcoms.values[("c", -1, SPEND_XCOM_KEY)]).state == "released"  # type: ignore[union-attr]
    spend = seedance_run_spend(run_context(xcoms, ops, "report"))
    assert spend == {"credits_charged": 80, "credits_estimated": 80, "credits_reserved": 0, "generations": 2,
                     "tasks": {"a": 40, "b": 40, "c": 0}}
    assert spend["credits_charged"] == emu.admin.stats()["credits_charged"]


def test_mapped_tasks_share_the_budget(emu: EmulatorHandle) -> None:
    xcoms = RunXComs()
    op = _op(run_budget_credits=130, wait_for_completion=False)
    outcomes = []
    for index in range(4):
        try:
            op.execute(run_context(xcoms, {"generate": MAPPED}, map_index=index))
            outcomes.append("submitted")
        except SeedanceBudgetExceededError:
            outcomes.append("refused")
    assert outcomes == ["submitted", "submitted", "submitted", "refused"]
    assert seedance_run_spend(run_context(xcoms, {"generate": MAPPED}, "report"))["tasks"] == {
        "generate[0]": 40, "generate[1]": 40, "generate[2]": 40, "generate[3]": 0}


def test_unknown_price_or_bad_budget_is_refused_without_any_request(emu: EmulatorHandle) -> None:
    emu.admin.add_model(id="vendor-next", durations=[5], resolutions=["720p"])  # listed without a price
    op = _op(model="vendor-next", run_budget_credits=500)
    with pytest.raises(SeedanceBudgetExceededError, match="cannot be estimated"):
        op.execute(run_context(RunXComs(), {"generate": op}))
    assert _submits(emu) == []
    emu.admin.reset()
    with pytest.raises(SeedanceValidationError, match="run_budget_credits"):
        _op(run_budget_credits="lots").execute(run_context(RunXComs(), {}))
    assert emu.admin.stats()["requests"] == 0


def test_a_refused_submit_gives_its_reservation_back(emu: EmulatorHandle) -> None:
    emu.admin.configure(balance=50)  # the second generation is refused by the API (402)
    xcoms = RunXComs()
    ops = {t: _op(t, run_budget_credits=100, wait_for_completion=False) for t in ("a", "b")}
    ops["a"].execute(run_context(xcoms, ops, "a"))
    with pytest.raises(Exception, match="Insufficient credits"):
        ops["b"].execute(run_context(xcoms, ops, "b"))
    record = SpendRecord.from_json(xcoms.values[("b", -1, SPEND_XCOM_KEY)])
    assert record is not None
    assert record.state == "released"
    assert record.counted == 0


def test_an_ambiguous_submit_keeps_its_reservation(emu: EmulatorHandle) -> None:
    emu.admin.add_fault(kind="drop", endpoint="submit")  # created and charged, answer lost
    xcoms = RunXComs()
    ops = {t: _op(t, run_budget_credits=100, wait_for_completion=False) for t in ("a", "b", "c")}
    with pytest.raises(SeedanceAmbiguousSubmitNoRetryError):
        ops["a"].execute(run_context(xcoms, ops, "a"))
    ops["b"].execute(run_context(xcoms, ops, "b"))
    # a's job may exist: its 40 still count, so c (40 more) would exceed 100.
    with pytest.raises(SeedanceBudgetExceededError, match=r"a: 40 \(reserved\)"):
        ops["c"].execute(run_context(xcoms, ops, "c"))
    assert emu.admin.stats()["jobs_total"] == 2  # a's orphan and b's
    assert seedance_run_spend(run_context(xcoms, ops, "report"))["credits_reserved"] == 40


def test_a_retry_that_pays_again_still_counts_the_first_charge(emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(fail_with="content policy violation")  # try 1's job fails at the vendor
    xcoms, store = RunXComs(), DictStore()
    op = _op(run_budget_credits=100)
    with pytest.raises(SeedanceJobFailedError):
        op.execute(run_context(xcoms, {"generate": op}, store=store))
    xcoms.values.clear()  # Airflow deletes a task's XComs when its next try starts
    op.execute(run_context(xcoms, {"generate": op}, store=store, try_number=2))
    record = SpendRecord.from_json(xcoms.values[("generate", -1, SPEND_XCOM_KEY)])
    assert record is not None
    assert (record.earlier_credits, record.charged, record.spent) == (40, 40, 80)
    assert seedance_run_spend(run_context(xcoms, {"generate": op}, "report"))["credits_charged"] == 80
    assert emu.admin.stats()["credits_charged"] == 80


def test_spend_task_ids_finds_plain_mapped_and_subclassed_tasks() -> None:
    class Custom(SeedanceGenerateOperator):
        pass

    dag = SimpleNamespace(task_dict={
        "plain": _op("plain"), "mapped": MAPPED, "custom": Custom(task_id="custom", prompt="x"),
        "other": SimpleNamespace(), "mapped_other": SimpleNamespace(operator_class=dict),
    })
    assert spend_task_ids(dag) == ["custom", "mapped", "plain"]
