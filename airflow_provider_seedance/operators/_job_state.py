"""Where a submitted generation is remembered between tries, so a retry never pays twice.

One record per task instance (dag, run, task, map index): the request id, when it was submitted,
its absolute deadline, the credits charged, whether its result was already handed over, and the
digest of the request that made it (:meth:`~airflow_provider_seedance.models.GenerationRequest.digest`),
so a retry resumes only the *same* request: an edited prompt or a changed template submits anew.
A record written before the digest existed has none and resumes as it always did.

Before the POST an *intent* record is written (no request id, ``sending``): a try that never reads the
submit's answer (an unreadable body, a timeout, a killed worker) leaves it behind, and a later try then
refuses to POST again, since the job may exist (``docs/architecture.rst``, "The road of one generation").

- Airflow >= 3.3: ``context["task_state_store"]`` (the Task SDK's store, the one ``ResumableJobMixin``
  uses). The record is kept after success, marked ``delivered``, for observability.
- Older Airflow 3: an Airflow Variable named after the task instance (Variables are readable and
  writable from the Task SDK). Deleted once the result is delivered, so only failed runs leave one
  behind; visible to anyone who can read Variables (it holds no secret, only the request id).
- ``resumable=False``: nothing is remembered and every try submits anew.

``delivered`` is what makes *clearing* a succeeded task generate a new video (that is what a clear
asks for; the old URL may have expired), while a *retry* of a failed try resumes or reuses its job.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "STATE_KEY",
    "JobRecord",
    "JobStateStore",
    "NullJobStore",
    "TaskStateJobStore",
    "VariableJobStore",
    "job_store_for",
]

#: Key in the task state store. Renaming it breaks resuming tries that are in flight during an upgrade.
STATE_KEY = "seedance_job"
_VARIABLE_PREFIX = "seedance_job__"
_MAX_VARIABLE_KEY = 250  # Airflow's ID_LEN for Variable keys


@dataclass(frozen=True)
class JobRecord:
    """What a later try needs to know about the job an earlier try submitted.

    :param request_id: the generation; None in an intent record (the POST's answer was not read yet).
    :param started_at: epoch seconds it was submitted.
    :param deadline: absolute deadline in epoch seconds (None = wait indefinitely).
    :param credits_charged: what the submit response said it cost.
    :param delivered: its result was handed to Airflow (the task succeeded with it).
    :param earlier_credits: credits charged for this task instance's earlier jobs in the run (replaced
        after they failed, or before a clear), so the run's spend keeps counting them.
    :param request_digest: :meth:`GenerationRequest.digest` of the submitted request; None in records
        written by versions before it existed (such a job is resumed whatever the request is now).
    :param sending: an intent record: the POST was (about to be) sent and its answer never read.
    """

    request_id: str | None
    started_at: float
    deadline: float | None = None
    credits_charged: int | None = None
    delivered: bool = False
    earlier_credits: int = 0
    request_digest: str | None = None
    sending: bool = False

    @property
    def is_ambiguous(self) -> bool:
        """A submit whose answer was never read: its job may exist, with an id nobody knows."""
        return self.sending and self.request_id is None

    @property
    def credits_total(self) -> int:
        """This job's charge plus the earlier ones."""
        return (self.credits_charged or 0) + self.earlier_credits

    def matches_request(self, digest: str) -> bool | None:
        """Whether this job was submitted for the request whose digest is ``digest``; None when unknown.

        Unknown: the record has no digest (an older version wrote it) or one of another digest version.
        The caller then resumes the job as before rather than paying for a new one on a guess.

        :param digest: :meth:`GenerationRequest.digest` of the request this try would submit.
        """
        stored = self.request_digest
        if stored is None or stored.partition(":")[0] != digest.partition(":")[0]:
            return None
        return stored == digest

    def to_json(self) -> dict[str, Any]:
        """JSON-simple form stored in the state store / Variable."""
        return {
            "request_id": self.request_id,
            "started_at": self.started_at,
            "deadline": self.deadline,
            "credits_charged": self.credits_charged,
            "delivered": self.delivered,
            "earlier_credits": self.earlier_credits,
            "request_digest": self.request_digest,
            "sending": self.sending,
        }

    @classmethod
    def from_json(cls, data: Any) -> JobRecord | None:
        """Parse a stored record tolerantly; None when it is not one (never raises).

        :param data: the stored value.
        """
        if not isinstance(data, Mapping):
            return None
        request_id = data.get("request_id")
        sending = data.get("sending") is True
        # No request id is a record only when written as one (an intent, or one withdrawn after a refusal).
        if not (isinstance(request_id, str) and request_id) and not (request_id is None and "sending" in data):
            return None
        started_at = _number(data.get("started_at"))
        credits = data.get("credits_charged")
        earlier = data.get("earlier_credits")
        digest = data.get("request_digest")
        return cls(
            request_id=request_id,
            started_at=started_at if started_at is not None else 0.0,
            deadline=_number(data.get("deadline")),
            credits_charged=credits if isinstance(credits, int) and not isinstance(credits, bool) else None,
            delivered=data.get("delivered") is True,
            earlier_credits=earlier if isinstance(earlier, int) and not isinstance(earlier, bool) else 0,
            request_digest=digest if isinstance(digest, str) and digest else None,
            sending=sending,
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class JobStateStore(ABC):
    """Load and save the :class:`JobRecord` of one task instance."""

    #: Short name for logs.
    kind: str = "abstract"

    @abstractmethod
    def load(self) -> JobRecord | None:
        """The record an earlier try left, if any."""

    @abstractmethod
    def save(self, record: JobRecord) -> None:
        """Remember ``record`` for later tries.

        :param record: the job just submitted (or resumed).
        """

    def mark_delivered(self, record: JobRecord) -> None:
        """The task is about to succeed with this job's result: a later clear must submit anew.

        :param record: the job whose result was delivered.
        """
        self.save(replace(record, delivered=True))


class NullJobStore(JobStateStore):
    """Remembers nothing: every try submits a new job."""

    kind = "none"

    def load(self) -> JobRecord | None:
        """Nothing is ever remembered."""
        return None

    def save(self, record: JobRecord) -> None:
        """Forget ``record``.

        :param record: ignored.
        """


class TaskStateJobStore(JobStateStore):
    """Airflow >= 3.3: the task state store, scoped to (dag, run, task, map index) across tries.

    :param accessor: ``context["task_state_store"]``.
    """

    kind = "task_state_store"

    def __init__(self, accessor: Any) -> None:
        self._accessor = accessor

    def load(self) -> JobRecord | None:
        """Read the record; None when absent or unreadable."""
        return JobRecord.from_json(self._accessor.get(STATE_KEY))

    def save(self, record: JobRecord) -> None:
        """Write the record (the store's default retention applies).

        :param record: the record.
        """
        self._accessor.set(STATE_KEY, record.to_json())


class VariableJobStore(JobStateStore):
    """Airflow < 3.3 fallback: an Airflow Variable named after the task instance.

    :param key: the Variable's key (see :meth:`key_for`).
    """

    kind = "variable"

    def __init__(self, key: str) -> None:
        self.key = key

    @staticmethod
    def key_for(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
        """The Variable key of a task instance; hashed when the readable form is too long.

        :param dag_id: DAG id.
        :param run_id: run id.
        :param task_id: task id.
        :param map_index: map index (-1 when not mapped).
        """
        readable = f"{_VARIABLE_PREFIX}{dag_id}__{run_id}__{task_id}__{map_index}"
        if len(readable) <= _MAX_VARIABLE_KEY:
            return readable
        digest = hashlib.sha256(readable.encode()).hexdigest()
        return f"{_VARIABLE_PREFIX}{digest}"

    @classmethod
    def for_context(cls, context: Mapping[str, Any]) -> VariableJobStore:
        """The store of the running task instance.

        :param context: the task's context.
        """
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return cls(cls.key_for(ti.dag_id, ti.run_id, ti.task_id, map_index))

    def load(self) -> JobRecord | None:
        """Read the Variable; None when absent or unreadable."""
        from airflow.providers.common.compat.sdk import Variable

        try:
            value = Variable.get(self.key, default=None, deserialize_json=True)
        except ValueError:  # not JSON: not ours
            return None
        return JobRecord.from_json(value)

    def save(self, record: JobRecord) -> None:
        """Write the Variable.

        :param record: the record.
        """
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(
            self.key,
            record.to_json(),
            description="Seedance provider: request id of a generation, kept so a retry does not pay twice.",
            serialize_json=True,
        )

    def mark_delivered(self, record: JobRecord) -> None:
        """Delete the Variable: a delivered job needs no resuming, and Variables should not pile up.

        :param record: the delivered job.
        """
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(self.key)


def job_store_for(context: Mapping[str, Any], *, resumable: bool = True) -> JobStateStore:
    """Pick the store for this task instance (see the module docstring).

    :param context: the task's context.
    :param resumable: False disables remembering (every try submits anew).
    """
    if not resumable:
        return NullJobStore()
    accessor = context.get("task_state_store")
    if accessor is not None:
        return TaskStateJobStore(accessor)
    return VariableJobStore.for_context(context)
