"""When to ask again: the adaptive polling schedule of every wait
(:class:`~airflow_provider_seedance.waiting.JobWait`).

The interval is a function of the time since submit, ``min(maximum, initial + growth * elapsed)``, not of a
poll counter, so it is stateless: a wait re-created after a triggerer restart or a retry carries on from
``started_at`` alone. Pure Python (no Airflow, no HTTP client). The latency bound and the requests per job it
gives: ``docs/architecture.rst``, "Why it is cheap".
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_POLL_GROWTH",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_POLL_JITTER",
    "PollSchedule",
]

DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_MAX_POLL_INTERVAL = 60.0
DEFAULT_POLL_GROWTH = 0.5
DEFAULT_POLL_JITTER = 0.1


@dataclass(frozen=True)
class PollSchedule:
    """Polling intervals that start fast and back off linearly with elapsed time up to a cap.

    :param initial: first (and smallest) interval in seconds.
    :param maximum: cap of the interval in seconds.
    :param growth: seconds of interval added per second elapsed (0 = fixed interval).
    :param jitter: fraction (0 <= jitter < 1) by which an interval is randomly *shortened*, so many
        waits started together do not poll in lockstep; it never lengthens one (keeps the bound).
    """

    initial: float = DEFAULT_POLL_INTERVAL
    maximum: float = DEFAULT_MAX_POLL_INTERVAL
    growth: float = DEFAULT_POLL_GROWTH
    jitter: float = DEFAULT_POLL_JITTER

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "growth", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"poll schedule {name} must be a finite number, got {value!r}")
        if self.initial <= 0:
            raise ValueError(f"poll interval must be > 0 seconds, got {self.initial!r}")
        if self.maximum < self.initial:
            raise ValueError(
                f"max poll interval ({self.maximum!r}) must be >= the poll interval ({self.initial!r})"
            )
        if self.growth < 0:
            raise ValueError(f"poll growth must be >= 0, got {self.growth!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"poll jitter must be in [0, 1), got {self.jitter!r}")

    def interval(self, elapsed: float) -> float:
        """The un-jittered interval after ``elapsed`` seconds: also the detection-latency bound then.

        :param elapsed: seconds since the job was submitted (negative counts as 0).
        """
        return min(self.maximum, self.initial + self.growth * max(0.0, elapsed))

    def next_delay(
        self,
        elapsed: float,
        *,
        remaining: float | None = None,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to sleep before the next poll.

        :param elapsed: seconds since the job was submitted.
        :param remaining: seconds left until the deadline (the sleep never passes it); None = no deadline.
        :param retry_after: the server asked us to wait at least this long (429 ``Retry-After``).
        :param rand: source of randomness in [0, 1) for the jitter (tests pass a fixed one).
        """
        delay = self.interval(elapsed) * (1.0 - self.jitter * rand())
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        if remaining is not None:
            delay = min(delay, max(0.0, remaining))
        return delay

    def poll_times(self, duration: float) -> list[float]:
        """Elapsed times of the polls made (without jitter) while a job of ``duration`` seconds runs.

        The first poll is at 0 (the status check right after submit); the last one is the first at
        or after ``duration``: the one that sees the job finished.

        :param duration: seconds the job takes.
        """
        times = [0.0]
        while times[-1] < duration:
            times.append(times[-1] + self.interval(times[-1]))
        return times
