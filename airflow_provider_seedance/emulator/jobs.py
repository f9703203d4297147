"""The emulator's jobs: a lifecycle computed from timestamps, per-job behaviours, and the job table.

Status is derived lazily from the submit time (no task or timer per job), so holding 10,000+ jobs
costs only their memory.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_seedance.models import GenerationRequest

__all__ = ["Job", "JobBehaviour", "JobTable", "new_request_id"]

QUEUED, PROCESSING, SUCCEEDED, FAILED, CANCELLED = "queued", "processing", "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


def new_request_id() -> str:
    """A fresh request id in the vendor's ``req_...`` shape."""
    return "req_" + uuid.uuid4().hex[:20]


@dataclass
class JobBehaviour:
    """How the next submitted job(s) behave (admin ``next-jobs``). All fields optional.

    :param count: how many following jobs get this behaviour; -1 = every job until reset/cleared.
    :param prompt_contains: only jobs whose prompt contains this text (for concurrent submitters).
    :param never_finishes: stay ``processing`` forever (until cancelled).
    :param fail_with: end ``failed`` with this error message.
    :param fail_code: error code of that failure (default ``generation_failed``).
    :param status: report this (undocumented) status string instead of ``processing``.
    :param no_output: end ``succeeded`` but with ``output: null``.
    :param queued_seconds: exact wall seconds spent queued (ignores the time scale).
    :param processing_seconds: exact wall seconds spent processing (ignores the time scale).
    :param time_scale: multiplier of the default durations for this job.
    :param output_expires_seconds: the output file answers 404 this long after the job finished.
    """

    count: int = 1
    prompt_contains: str | None = None
    never_finishes: bool = False
    fail_with: str | None = None
    fail_code: str | None = None
    status: str | None = None
    no_output: bool = False
    queued_seconds: float | None = None
    processing_seconds: float | None = None
    time_scale: float | None = None
    output_expires_seconds: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobBehaviour:
        """Build from an admin request body; unknown keys raise ``ValueError`` naming them.

        :param data: JSON object.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown next-jobs field(s) {unknown}; allowed: {sorted(known)}")
        behaviour = cls(**dict(data))
        for name in ("queued_seconds", "processing_seconds", "time_scale", "output_expires_seconds"):
            value = getattr(behaviour, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(behaviour.count, bool) or not isinstance(behaviour.count, int):
            raise ValueError(f"count must be an integer (-1 = all), got {behaviour.count!r}")
        return behaviour

    def to_json(self) -> dict[str, Any]:
        """JSON form (admin listing)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def matches(self, request: GenerationRequest) -> bool:
        """Whether this behaviour applies to ``request``.

        :param request: the submitted request.
        """
        return self.prompt_contains is None or self.prompt_contains in request.prompt


@dataclass
class Job:
    """One submitted generation. Times are ``time.monotonic()`` seconds.

    :param request_id: the id returned at submit.
    :param request: the validated request.
    :param key_id: index of the API key that submitted it (never the key itself).
    :param credits: credits charged at submit.
    :param base_url: where the output file is served (``{base_url}/files/{id}.mp4``).
    :param created: submit time.
    :param queued_for: seconds queued.
    :param processing_for: seconds processing.
    :param behaviour: the per-job behaviour, when one applied.
    """

    request_id: str
    request: GenerationRequest
    key_id: int
    credits: int
    base_url: str
    created: float
    queued_for: float
    processing_for: float
    behaviour: JobBehaviour | None = None
    cancelled_at: float | None = None
    refunded: int = 0
    created_wall: float = field(default_factory=time.time)
    #: Waiting for one of its key's concurrency slots (``queue`` mode): stays ``queued`` meanwhile.
    waiting_for_slot: bool = False
    #: Seconds it waited for a slot (already included in ``queued_for``).
    slot_wait: float = 0.0

    @property
    def finishes_at(self) -> float | None:
        """Monotonic time the job reaches its terminal state by itself; None if it never does (or not yet known)."""
        if self.waiting_for_slot or (self.behaviour is not None and self.behaviour.never_finishes):
            return None
        return self.created + self.queued_for + self.processing_for

    def phase(self, now: float | None = None) -> str:
        """The documented status at ``now``: queued, processing, succeeded, failed or cancelled.

        :param now: monotonic time (default: now).
        """
        now = time.monotonic() if now is None else now
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return CANCELLED
        if self.waiting_for_slot:
            return QUEUED
        elapsed = now - self.created
        if elapsed < self.queued_for:
            return QUEUED
        finishes_at = self.finishes_at
        if finishes_at is None or now < finishes_at:
            return PROCESSING
        if self.behaviour is not None and self.behaviour.fail_with is not None:
            return FAILED
        return SUCCEEDED

    def reported_status(self, now: float | None = None) -> str:
        """The status string the API shows (an undocumented one while processing, if configured).

        :param now: monotonic time (default: now).
        """
        phase = self.phase(now)
        if phase == PROCESSING and self.behaviour is not None and self.behaviour.status:
            return self.behaviour.status
        return phase

    def output_url(self) -> str:
        """URL of the generated video."""
        return f"{self.base_url}/files/{self.request_id}.mp4"

    def output_available(self, now: float | None = None) -> bool:
        """True when the file can be downloaded (succeeded, has output, not expired).

        :param now: monotonic time (default: now).
        """
        now = time.monotonic() if now is None else now
        if self.phase(now) != SUCCEEDED:
            return False
        behaviour = self.behaviour
        if behaviour is None:
            return True
        if behaviour.no_output:
            return False
        finished = self.finishes_at
        if behaviour.output_expires_seconds is not None and finished is not None:
            return now < finished + behaviour.output_expires_seconds
        return True

    def to_api_json(self, now: float | None = None) -> dict[str, Any]:
        """The body of ``GET .../generations/{requestId}`` (also the webhook payload).

        :param now: monotonic time (default: now).
        """
        now = time.monotonic() if now is None else now
        phase = self.phase(now)
        req = self.request
        output = None
        if phase == SUCCEEDED and not (self.behaviour is not None and self.behaviour.no_output):
            output = {"type": "video", "url": self.output_url()}
        error = None
        if phase == FAILED and self.behaviour is not None:
            error = {"code": self.behaviour.fail_code or "generation_failed", "message": self.behaviour.fail_with}
        return {
            "success": True,
            "requestId": self.request_id,
            "status": self.reported_status(now),
            "model": req.model,
            "prompt": req.prompt,
            "duration": req.duration,
            "aspectRatio": req.aspect_ratio,
            "output": output,
            "error": error,
            "metadata": req.metadata,
        }

    def to_admin_json(self, now: float | None = None) -> dict[str, Any]:
        """The job-table row served by the admin API.

        :param now: monotonic time (default: now).
        """
        now = time.monotonic() if now is None else now
        return {
            "requestId": self.request_id,
            "status": self.reported_status(now),
            "phase": self.phase(now),
            "request": self.request.to_api_json(),
            "textToVideo": self.request.is_text_to_video,
            "creditsCharged": self.credits,
            "creditsRefunded": self.refunded,
            "keyIndex": self.key_id,
            "createdAt": self.created_wall,
            "ageSeconds": round(now - self.created, 4),
            "queuedSeconds": self.queued_for,
            "processingSeconds": self.processing_for,
            "waitingForSlot": self.waiting_for_slot,
            "slotWaitSeconds": round(self.slot_wait, 4),
            "behaviour": self.behaviour.to_json() if self.behaviour is not None else None,
        }


class JobTable:
    """All jobs by id, plus the queue of pending per-job behaviours."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._behaviours: list[JobBehaviour] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def get(self, request_id: str) -> Job | None:
        """The job, or None when the id is unknown.

        :param request_id: the id.
        """
        return self._jobs.get(request_id)

    def add(self, job: Job) -> None:
        """Store a job.

        :param job: the new job.
        """
        self._jobs[job.request_id] = job

    def clear(self) -> None:
        """Forget every job and pending behaviour."""
        self._jobs.clear()
        self._behaviours.clear()

    def push_behaviour(self, behaviour: JobBehaviour) -> None:
        """Queue a behaviour for the next matching job(s) (first in, first used).

        :param behaviour: the behaviour.
        """
        self._behaviours.append(behaviour)

    def behaviours(self) -> list[JobBehaviour]:
        """Pending behaviours."""
        return list(self._behaviours)

    def clear_behaviours(self) -> None:
        """Drop pending behaviours."""
        self._behaviours.clear()

    def take_behaviour(self, request: GenerationRequest) -> JobBehaviour | None:
        """Consume the first pending behaviour matching ``request``.

        :param request: the request being submitted.
        """
        for index, behaviour in enumerate(self._behaviours):
            if not behaviour.matches(request):
                continue
            if behaviour.count > 0:
                behaviour.count -= 1
                if behaviour.count == 0:
                    del self._behaviours[index]
            return dataclasses.replace(behaviour, count=1)
        return None

    def counts_by_status(self, now: float | None = None) -> dict[str, int]:
        """Number of jobs per reported status.

        :param now: monotonic time (default: now).
        """
        now = time.monotonic() if now is None else now
        counts: dict[str, int] = {}
        for job in self._jobs.values():
            status = job.reported_status(now)
            counts[status] = counts.get(status, 0) + 1
        return counts
