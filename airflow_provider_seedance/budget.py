"""Spend guard: budgets that refuse a generation before it is paid for, and what a DAG run spent.

Two budgets, both checked after validation and before the submit (a refused task sends no POST):
``max_credits`` per task, and ``run_budget_credits`` per DAG run (:class:`RunBudget`, shared by every Seedance
generation of the run, mapped ones included), both applied by :class:`CreditGuard`. Every
:class:`~airflow_provider_seedance.operators.seedance.SeedanceGenerateOperator` records its spend in XCom
``seedance_spend`` (a :class:`SpendRecord`: its reservation, then its charge); :func:`seedance_run_spend` sums a
run's records. How the run budget stays safe with no atomic counter, and the windows that remain:
``docs/guides/spend.rst`` ("Why two tasks cannot both overspend").
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_seedance.errors import SeedanceError, SeedanceValidationError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_seedance.models import GenerationRequest

__all__ = [
    "SPEND_XCOM_KEY",
    "CreditGuard",
    "RunBudget",
    "SeedanceBudgetExceededError",
    "SpendRecord",
    "credit_setting",
    "seedance_run_spend",
    "spend_task_ids",
]

#: XCom key of a task's :class:`SpendRecord`.
SPEND_XCOM_KEY = "seedance_spend"
RESERVED, CHARGED, RELEASED = "reserved", "charged", "released"


class SeedanceBudgetExceededError(SeedanceError, AirflowFailException):
    """A budget (``max_credits`` or ``run_budget_credits``) refuses the request, or its cost is unknown.

    Nothing was sent. Also an ``AirflowFailException``: a retry would be refused the same way.
    """


@dataclass(frozen=True)
class SpendRecord:
    """What one task instance spent, or is about to spend, in its DAG run (XCom ``seedance_spend``).

    :param task_id: the task.
    :param map_index: its map index (-1 when not mapped).
    :param state: ``reserved`` (estimate held before the submit), ``charged`` or ``released``.
    :param estimated: the estimate of the current generation.
    :param charged: ``creditsCharged`` of the current generation, once known.
    :param earlier_credits: charges of this task instance's earlier generations in the run (a retry that
        had to submit anew, or a clear).
    :param request_id: the current generation, once submitted.
    :param token: identifies one reservation attempt.
    """

    task_id: str
    map_index: int
    state: str
    estimated: int | None = None
    charged: int | None = None
    earlier_credits: int = 0
    request_id: str | None = None
    token: str = ""

    @property
    def counted(self) -> int:
        """Credits this record holds against the run budget (never below 0: a negative charge once switched the
        budget off; an unusable charge counts as unknown, so the estimate keeps counting)."""
        charged, estimated = _credit(self.charged), _credit(self.estimated) or 0
        if self.state == CHARGED:
            current = charged if charged is not None else estimated
        elif self.state == RESERVED:
            current = estimated
        else:
            current = 0
        return current + (_credit(self.earlier_credits) or 0)

    @property
    def spent(self) -> int:
        """Credits charged so far (current generation once charged, plus earlier ones)."""
        return ((_credit(self.charged) or 0) if self.state == CHARGED else 0) + (_credit(self.earlier_credits) or 0)

    def to_json(self) -> dict[str, Any]:
        """JSON-simple form (the XCom value)."""
        return {
            "task_id": self.task_id, "map_index": self.map_index, "state": self.state, "estimated": self.estimated,
            "charged": self.charged, "earlier_credits": self.earlier_credits, "request_id": self.request_id,
            "token": self.token,
        }

    @classmethod
    def from_json(cls, data: Any) -> SpendRecord | None:
        """Parse tolerantly; None when it is not a record (never raises).

        :param data: an XCom value.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("task_id"), str):
            return None
        state = data.get("state")
        if state not in (RESERVED, CHARGED, RELEASED):
            return None
        return cls(
            task_id=data["task_id"],
            map_index=_int(data.get("map_index"), -1),
            state=str(state),
            estimated=_credit(data.get("estimated")),
            charged=_credit(data.get("charged")),
            earlier_credits=_credit(data.get("earlier_credits")) or 0,
            request_id=data.get("request_id") if isinstance(data.get("request_id"), str) else None,
            token=str(data.get("token") or ""),
        )


def _int(value: Any, default: int | None = None) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _credit(value: Any) -> int | None:
    """A credit amount, or None when it is none (a negative or non-integer value is no amount)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def spend_task_ids(dag: Any) -> list[str]:
    """Ids of the DAG's tasks that record Seedance spend (our operator, its subclasses, mapped or not).

    :param dag: the DAG (``context["dag"]``).
    """
    ids = []
    for task_id, task in getattr(dag, "task_dict", {}).items():
        cls = getattr(task, "operator_class", None) or type(task)  # a mapped task names its class
        if isinstance(cls, type) and getattr(cls, "records_seedance_spend", False):
            ids.append(task_id)
    return sorted(ids)


def _read_records(context: Context) -> list[SpendRecord]:
    task_ids = spend_task_ids(context["dag"])
    if not task_ids:
        return []
    # No map_indexes: every map index of every task (Airflow 3.3 reads them with one call per task).
    values = context["ti"].xcom_pull(task_ids=task_ids, key=SPEND_XCOM_KEY)
    if not isinstance(values, list):
        values = [values]
    records = (SpendRecord.from_json(v) for v in values)
    return [r for r in records if r is not None]


class RunBudget:
    """The spend record of one task instance and, when ``limit`` is set, its check against the run budget.

    :param context: the task's context.
    :param limit: the run budget in credits (None: record spend, check nothing).
    :param attempts: tries when only other tasks' pending reservations are in the way.
    :param backoff: (min, max) seconds of the random wait between tries, multiplied by the try number.
    :param sleep: how to wait (tests pass their own).
    :param log: the operator's logger.
    """

    def __init__(
        self,
        context: Context,
        limit: int | None,
        *,
        attempts: int = 5,
        backoff: tuple[float, float] = (0.2, 1.0),
        sleep: Callable[[float], None] = time.sleep,
        log: Any = None,
    ) -> None:
        ti = context["ti"]
        self.context = context
        self.limit = limit
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self.log = log
        map_index = getattr(ti, "map_index", None)
        self.record = SpendRecord(task_id=ti.task_id, map_index=map_index if map_index is not None else -1,
                                  state=RELEASED)

    def _push(self, record: SpendRecord) -> None:
        self.record = record
        self.context["ti"].xcom_push(key=SPEND_XCOM_KEY, value=record.to_json())

    def _others(self) -> list[SpendRecord]:
        me = (self.record.task_id, self.record.map_index)
        return [r for r in _read_records(self.context) if (r.task_id, r.map_index) != me]

    def reserve(self, estimate: int | None, *, earlier_credits: int = 0, describe: str = "this request") -> None:
        """Hold ``estimate`` for this task before it submits; refuse when the run budget cannot take it.

        :param estimate: the expected charge (None: unknown, refused when a limit is set).
        :param earlier_credits: what this task instance already spent in the run.
        :param describe: the request, for the error message.
        :raises SeedanceBudgetExceededError: the run budget is (or would be) exceeded; nothing was sent.
        """
        if self.limit is not None and _credit(estimate) is None:
            raise SeedanceBudgetExceededError(
                f"run_budget_credits={self.limit} is set but the price of {describe} cannot be estimated; "
                "nothing was submitted"
            )
        for attempt in range(1, self.attempts + 1):
            token = uuid.uuid4().hex
            self._push(replace(self.record, state=RESERVED, estimated=estimate, charged=None, request_id=None,
                               earlier_credits=earlier_credits, token=token))
            if self.limit is None:
                return
            # Read only after our own write returned: see the module docstring for why this order is the guard.
            others = self._others()
            held = sum(r.counted for r in others)
            mine = self.record.counted
            if held + mine <= self.limit:
                if self.log is not None:
                    self.log.info("Run budget: %s + %s credits held by other tasks <= run_budget_credits=%s",
                                  mine, held, self.limit)
                return
            self.release()
            settled = sum(r.counted for r in others if r.state != RESERVED)
            pending = [r for r in others if r.state == RESERVED]
            if settled + mine > self.limit or not pending or attempt == self.attempts:
                raise SeedanceBudgetExceededError(self._refusal(describe, mine, others))
            wait = random.uniform(*self.backoff) * attempt
            if self.log is not None:
                self.log.info("Run budget: %d other task(s) hold pending reservations; trying again in %.1f s",
                              len(pending), wait)
            self.sleep(wait)

    def _refusal(self, describe: str, mine: int, others: Iterable[SpendRecord]) -> str:
        held = [r for r in others if r.counted]
        parts = ", ".join(
            f"{r.task_id}{'' if r.map_index < 0 else f'[{r.map_index}]'}: {r.counted} ({r.state})" for r in held
        ) or "none"
        return (
            f"Run budget exceeded: {describe} is estimated at {mine} credits and the run's other Seedance "
            f"generations hold {sum(r.counted for r in held)} (run_budget_credits={self.limit}; {parts}). "
            "Nothing was submitted."
        )

    def charge(self, request_id: str, charged: int | None, estimate: int | None, *, earlier_credits: int) -> None:
        """Replace the reservation by the job's charge (also on a retry that resumes an earlier job).

        :param request_id: the generation.
        :param charged: ``creditsCharged`` (None: unknown, the estimate keeps counting).
        :param estimate: the estimate.
        :param earlier_credits: what this task instance spent on earlier generations of the run.
        """
        self._push(replace(self.record, state=CHARGED, request_id=request_id, charged=charged,
                           estimated=estimate if estimate is not None else self.record.estimated,
                           earlier_credits=earlier_credits))

    def release(self) -> None:
        """Withdraw the reservation: the submit certainly created no job."""
        self._push(replace(self.record, state=RELEASED, charged=None, request_id=None))


def credit_setting(name: str, value: Any) -> int | None:
    """A credit setting (``max_credits``, ``run_budget_credits``: an int >= 0 or digits) as an int; None when unset.

    :param name: the parameter, for the error (a :class:`SeedanceValidationError` naming it).
    :param value: the given (or rendered) value.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise SeedanceValidationError(name, value, "a whole number of credits >= 0, or None")


def _priced_as(request: GenerationRequest) -> str:
    # Duration and resolution as the estimate priced them (an omitted one at the vendor's default).
    from airflow_provider_seedance.catalogue import DEFAULT_DURATION, DEFAULT_RESOLUTION

    duration = f"{request.duration} s" if request.duration is not None else f"{DEFAULT_DURATION} s (default)"
    resolution = request.resolution if request.resolution is not None else f"{DEFAULT_RESOLUTION} (default)"
    return f"duration {duration}, resolution {resolution}"


class CreditGuard:
    """The operator's credit checks for one try: ``max_credits``, then the run budget (reserve, charge, release).

    Parameters: the task's context, the operator's ``max_credits`` and ``run_budget_credits`` and its logger.
    """

    def __init__(self, context: Context, *, max_credits: Any, run_budget_credits: Any, log: Any) -> None:
        self.max_credits = credit_setting("max_credits", max_credits)
        self.log = log
        self.estimate: int | None = None
        self.budget = RunBudget(context, credit_setting("run_budget_credits", run_budget_credits), log=log)

    def reserve(self, request: GenerationRequest, estimate: int | None, *, earlier_credits: int) -> None:
        """Check ``max_credits``, then hold ``estimate`` against the run budget (refused: SeedanceBudgetExceededError).

        :param request: the generation about to be submitted.
        :param estimate: its expected charge (None: unknown).
        :param earlier_credits: what this task instance already spent in the run.
        """
        self.estimate, limit = estimate, self.max_credits
        if limit is not None and estimate is None:
            raise SeedanceBudgetExceededError(
                f"max_credits={limit} is set but the price of model {request.model!r} cannot be estimated "
                "(no catalogue pricing and not in the bundled table); nothing was submitted")
        if limit is not None and estimate is not None and estimate > limit:
            raise SeedanceBudgetExceededError(f"Estimated cost {estimate} credits exceeds max_credits={limit} "
                                              f"(model {request.model}, {_priced_as(request)}); nothing was submitted")
        kind = "text" if request.is_text_to_video else "image"
        describe = f"model {request.model}, {_priced_as(request)}, {kind}-to-video"
        self.budget.reserve(estimate, earlier_credits=earlier_credits, describe=describe)

    def charge(self, request_id: str, charged: int | None, *, earlier_credits: int) -> None:
        """Job ``request_id`` exists: its charge (``creditsCharged``, None if unknown) replaces the reservation,
        with what this task instance spent on earlier generations (a charge above a limit or the estimate is logged).
        """
        self.budget.charge(request_id, charged, self.estimate, earlier_credits=earlier_credits)
        if charged is not None and self.max_credits is not None and charged > self.max_credits:
            self.log.warning("Seedance charged %s credits, more than max_credits=%s (the estimate was lower)",
                             charged, self.max_credits)
        if charged is not None and self.estimate is not None and charged > self.estimate:
            self.log.warning("Seedance charged %s credits, more than the %s estimated: budgets may be overshot "
                             "by the difference (set the connection's price_table)", charged, self.estimate)

    def release(self) -> None:
        """The submit certainly created no job: withdraw the reservation."""
        self.budget.release()


def seedance_run_spend(context: Context | None = None) -> dict[str, Any]:
    """What the current DAG run's Seedance generations spent, from their ``seedance_spend`` XComs.

    Use it in a last task, e.g. ``@task(trigger_rule="all_done") def spend(): return seedance_run_spend()``.

    :param context: the task's context (default: the current one).
    :return: ``{"credits_charged": int, "credits_estimated": int, "credits_reserved": int, "generations": int,
        "tasks": {"task_id" or "task_id[map_index]": credits charged}}``.
    """
    if context is None:
        from airflow.providers.common.compat.sdk import get_current_context

        context = get_current_context()
    records = _read_records(context)
    tasks: dict[str, int] = {}
    for r in sorted(records, key=lambda r: (r.task_id, r.map_index)):
        tasks[r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]"] = r.spent
    return {
        "credits_charged": sum(r.spent for r in records),
        "credits_estimated": sum(r.estimated or 0 for r in records if r.state != RELEASED),
        "credits_reserved": sum(r.estimated or 0 for r in records if r.state == RESERVED),
        "generations": sum(1 for r in records if r.state == CHARGED),
        "tasks": tasks,
    }
