"""Account limits per API key, as real video vendors enforce them: concurrent jobs and requests per second.

**Concurrent jobs.** At most ``max_concurrent_jobs`` jobs of one key hold a slot (a job holds one from the
moment it gets it until it ends: succeeded, failed or cancelled). Past the limit the vendor does one of
two things, chosen by ``concurrency_mode``:

- ``queue``: the submit is accepted and charged, the job stays ``queued`` until a slot frees, then runs
  its normal lifecycle. Slots are given first come, first served.
- ``refuse``: the submit answers 429 ``concurrency_limit`` with ``Retry-After`` (seconds until the first
  running job ends, rounded up); nothing is created or charged.

**Requests per second.** A token bucket per key (``requests_per_second`` tokens a second, bursts of up
to ``max(1, requests_per_second)``) for every request that carries a key (submit, status, cancel).
Past it: 429 ``rate_limited`` with ``Retry-After``. The output files (a public bucket) and the model
catalogue (no key) are not limited.

Like the job lifecycle, slots are computed from timestamps: ``AccountLimits.advance`` hands freed slots to
waiting jobs as of the given time and runs before any job is read (one timer per server wakes it only for
webhooks of jobs that waited).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.jobs import Job

__all__ = ["CONCURRENCY_MODES", "AccountLimits", "LimitCounters"]

#: What a submit past the concurrency limit gets.
CONCURRENCY_MODES = ("queue", "refuse")
#: Retry-After sent when no running job will ever end by itself (``never_finishes`` jobs hold every slot).
_UNKNOWN_WAIT = 60.0


@dataclass
class LimitCounters:
    """What the limits did (never trimmed; reset by an admin reset)."""

    refused_concurrency: int = 0
    refused_rate: int = 0
    jobs_queued_for_slot: int = 0
    peak_waiting: int = 0
    peak_running: int = 0
    slot_wait_seconds: float = 0.0

    @property
    def sent_429(self) -> int:
        """Every 429 the limits answered."""
        return self.refused_concurrency + self.refused_rate


@dataclass
class _KeySlots:
    holders: list[Job] = field(default_factory=list)
    waiting: deque[Job] = field(default_factory=deque)
    tokens: float = 0.0
    refilled_at: float | None = None


def _slot_end(job: Job) -> float | None:
    """When a slot holder gives its slot back (None: not by itself)."""
    ends = [t for t in (job.finishes_at, job.cancelled_at) if t is not None]
    return min(ends) if ends else None


class AccountLimits:
    """Concurrency slots and request-rate buckets of every key.

    :param max_concurrent_jobs: jobs per key holding a slot at once (0 = no limit).
    :param concurrency_mode: ``queue`` or ``refuse`` (see the module docstring).
    :param requests_per_second: keyed requests per second per key (0 = no limit).
    :param retry_after: fixed ``Retry-After`` seconds to send (None: computed, whole seconds, at least 1).
    """

    def __init__(
        self,
        max_concurrent_jobs: int = 0,
        concurrency_mode: str = "queue",
        requests_per_second: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        self.max_concurrent_jobs = max_concurrent_jobs
        self.concurrency_mode = concurrency_mode
        self.requests_per_second = requests_per_second
        self.retry_after = retry_after
        self.counters = LimitCounters()
        self._keys: dict[int, _KeySlots] = {}
        self._granted: list[Job] = []

    def reconfigure(
        self, max_concurrent_jobs: int, concurrency_mode: str, requests_per_second: float, retry_after: float | None
    ) -> None:
        """Change the limits; jobs already holding or waiting for a slot keep their place.

        :param max_concurrent_jobs: see the class.
        :param concurrency_mode: see the class.
        :param requests_per_second: see the class.
        :param retry_after: see the class.
        """
        self.max_concurrent_jobs = max_concurrent_jobs
        self.concurrency_mode = concurrency_mode
        self.requests_per_second = requests_per_second
        self.retry_after = retry_after

    def clear(self) -> None:
        """Forget every slot, waiting job, bucket and counter."""
        self._keys.clear()
        self._granted.clear()
        self.counters = LimitCounters()

    def _slots(self, key_index: int) -> _KeySlots:
        slots = self._keys.get(key_index)
        if slots is None:
            slots = self._keys[key_index] = _KeySlots()
        return slots

    def _retry_after(self, seconds: float) -> float:
        if self.retry_after is not None:
            return self.retry_after
        # HTTP's delay-seconds is a whole number; a client that waits this long finds the slot free.
        return float(max(1, math.ceil(seconds - 1e-9)))

    # -- requests per second ------------------------------------------------------------------------

    def take_request(self, key_index: int, now: float) -> float | None:
        """Count one keyed request; None when allowed, else the ``Retry-After`` seconds of the 429.

        :param key_index: the key's index.
        :param now: monotonic time.
        """
        rate = self.requests_per_second
        if rate <= 0:
            return None
        slots = self._slots(key_index)
        burst = max(1.0, rate)
        if slots.refilled_at is None:
            slots.tokens = burst
        else:
            slots.tokens = min(burst, slots.tokens + (now - slots.refilled_at) * rate)
        slots.refilled_at = now
        if slots.tokens >= 1.0:
            slots.tokens -= 1.0
            return None
        self.counters.refused_rate += 1
        return self._retry_after((1.0 - slots.tokens) / rate)

    # -- concurrent jobs ----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Hand every slot freed up to ``now`` to the jobs waiting for one, in submit order.

        :param now: monotonic time.
        """
        for slots in self._keys.values():
            if slots.holders or slots.waiting:
                self._advance(slots, now)

    def _advance(self, slots: _KeySlots, now: float) -> None:
        limit = self.max_concurrent_jobs
        while True:
            # Holders whose slot came back by now leave in the order they ended: a waiting job takes the slot
            # at that moment (not at ``now``), so its status is the same whenever it is read.
            ended = sorted(
                ((end, job) for job in slots.holders if (end := _slot_end(job)) is not None and end <= now),
                key=lambda pair: pair[0],
            )
            if not slots.waiting:
                if ended:
                    done = {id(job) for _, job in ended}
                    slots.holders = [job for job in slots.holders if id(job) not in done]
                return
            free_now = limit <= 0 or len(slots.holders) < limit
            if free_now:
                start = now if not ended else ended[0][0]
                start = max(start, slots.waiting[0].created)
            elif ended:
                end, leaving = ended[0]
                slots.holders.remove(leaving)
                start = max(end, slots.waiting[0].created)
            else:
                return
            job = slots.waiting.popleft()
            if job.cancelled_at is not None and job.cancelled_at <= start:
                continue  # cancelled while waiting: it never takes a slot
            self._grant(job, start)
            slots.holders.append(job)
            self.counters.peak_running = max(self.counters.peak_running, len(slots.holders))

    def _grant(self, job: Job, start: float) -> None:
        waited = max(0.0, start - job.created)
        job.slot_wait = waited
        job.waiting_for_slot = False
        # Its normal lifecycle starts when it gets the slot: the vendor's own queue time, then processing.
        job.queued_for += waited
        self.counters.slot_wait_seconds += waited
        self._granted.append(job)

    def pop_granted(self) -> list[Job]:
        """Jobs that got a slot after waiting since the last call (their end time is known now)."""
        granted, self._granted = self._granted, []
        return granted

    def next_slot_end(self) -> float | None:
        """Earliest time a slot frees for a key with waiting jobs (None: nothing waits, or never)."""
        ends = [
            end for slots in self._keys.values() if slots.waiting
            for job in slots.holders if (end := _slot_end(job)) is not None
        ]
        return min(ends) if ends else None

    def admit(self, key_index: int, now: float) -> float | None:
        """Whether a new job of this key may be created now: None if so, else the 429's ``Retry-After``.

        Always None in ``queue`` mode (the job waits instead).

        :param key_index: the key's index.
        :param now: monotonic time.
        """
        limit = self.max_concurrent_jobs
        if limit <= 0 or self.concurrency_mode != "refuse":
            return None
        slots = self._slots(key_index)
        self._advance(slots, now)
        self._drop_ended(slots, now)
        if len(slots.holders) < limit:
            return None
        self.counters.refused_concurrency += 1
        ends = [end for job in slots.holders if (end := _slot_end(job)) is not None]
        return self._retry_after(min(ends) - now if ends else _UNKNOWN_WAIT)

    @staticmethod
    def _drop_ended(slots: _KeySlots, now: float) -> None:
        slots.holders = [job for job in slots.holders if (end := _slot_end(job)) is None or end > now]

    def add_job(self, job: Job, now: float) -> None:
        """Register a created job: it takes a free slot, or waits for one (``queue`` mode).

        :param job: the new job.
        :param now: monotonic time (its submit time).
        """
        limit = self.max_concurrent_jobs
        if limit <= 0:
            return
        slots = self._slots(job.key_id)
        self._advance(slots, now)
        self._drop_ended(slots, now)
        if len(slots.holders) < limit and not slots.waiting:
            slots.holders.append(job)
            self.counters.peak_running = max(self.counters.peak_running, len(slots.holders))
            return
        job.waiting_for_slot = True
        slots.waiting.append(job)
        self.counters.jobs_queued_for_slot += 1
        self.counters.peak_waiting = max(self.counters.peak_waiting, len(slots.waiting))

    def cancelled(self, job: Job, now: float) -> None:
        """A job was cancelled: a waiting one leaves the line; a holder's slot frees at ``now``.

        :param job: the job (``cancelled_at`` already set).
        :param now: monotonic time.
        """
        slots = self._keys.get(job.key_id)
        if slots is None:
            return
        if job.waiting_for_slot:
            try:
                slots.waiting.remove(job)
            except ValueError:
                pass
            job.waiting_for_slot = False
        self._advance(slots, now)

    def waiting(self) -> int:
        """Jobs waiting for a slot right now (call :meth:`advance` first)."""
        return sum(len(slots.waiting) for slots in self._keys.values())

    def running(self, now: float) -> int:
        """Jobs holding a slot right now.

        :param now: monotonic time.
        """
        return sum(
            1 for slots in self._keys.values() for job in slots.holders
            if (end := _slot_end(job)) is None or end > now
        )
