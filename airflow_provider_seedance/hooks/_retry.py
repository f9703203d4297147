"""Retries: tenacity, the one engine, with a wait that honours ``Retry-After``, a bound on attempts and total
time, and the policy of each kind of call declared in :data:`POLICIES`.

*Whether* the hook sends a failed call again is :func:`~airflow_provider_seedance.errors.is_retryable`'s answer;
this module only decides *when* and *how often* (``docs/architecture.rst``, "The hook and its retries").
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from airflow_provider_seedance.errors import is_retryable

__all__ = ["POLICIES", "RetryPolicy", "StopAtBudget", "WaitRetryAfterOrBackoff", "build_retrying", "policy_for"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is retried.

    :param max_attempts: attempts in total, the first included (1 = never retry).
    :param max_total_seconds: no retry is started whose wait would end later than this many seconds after
        the first attempt began; a ``Retry-After`` longer than what is left ends the retries (the raised
        :class:`~airflow_provider_seedance.errors.SeedanceRateLimitError` carries ``retry_after``).
    :param initial_wait: first backoff in seconds; it doubles on each further attempt.
    :param max_wait: cap of one backoff (not of a ``Retry-After``, which the server chose).
    :param jitter: up to this many random seconds added to every wait, so clients do not retry in step.
    """

    max_attempts: int = 5
    max_total_seconds: float = 120.0
    initial_wait: float = 1.0
    max_wait: float = 30.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        for name in ("max_total_seconds", "initial_wait", "max_wait", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def with_retries(self, max_retries: int | None) -> RetryPolicy:
        """This policy with ``max_retries`` retries after the first attempt (None: unchanged).

        :param max_retries: retries after the first attempt.
        """
        return self if max_retries is None else replace(self, max_attempts=max_retries + 1)

    def backoff(self, attempt_number: int) -> float:
        """Wait after the given failed attempt when the server did not say (before jitter).

        :param attempt_number: 1 for the first attempt.
        """
        exponent = min(max(attempt_number - 1, 0), 64)
        return float(min(self.max_wait, self.initial_wait * 2**exponent))


#: The retries of each kind of call. A submit is only ever retried when nothing can have been created (429,
#: 408, a connection that never opened): quick backoff, so an unreachable host fails in about 10 s, before any
#: money is at stake; a 429 waits what ``Retry-After`` says. A status poll gets a quick second try (a stale
#: connection, a 5xx blip); longer outages are the wait's own loop's to sit out, on the poll schedule. A cancel
#: must get through. The catalogue is a free read before a submit: one retry, then the bundled table serves.
POLICIES: dict[str, RetryPolicy] = {
    "submit": RetryPolicy(max_attempts=5, max_total_seconds=120.0, initial_wait=0.5, max_wait=30.0, jitter=0.5),
    "poll": RetryPolicy(max_attempts=3, max_total_seconds=10.0, initial_wait=0.5, max_wait=2.0, jitter=0.5),
    "cancel": RetryPolicy(max_attempts=5, max_total_seconds=20.0, initial_wait=0.5, max_wait=5.0, jitter=0.5),
    "catalogue": RetryPolicy(max_attempts=2, max_total_seconds=5.0, initial_wait=0.5, max_wait=2.0, jitter=0.5),
}


def policy_for(kind: str, override: RetryPolicy | None) -> RetryPolicy:
    """The policy of a kind of call (``submit``, ``poll``, ``cancel``, ``catalogue``), unless the hook was given
    one for every call.

    :param kind: the kind of call.
    :param override: the hook's ``retry_policy``, when set.
    """
    return override if override is not None else POLICIES[kind]


class WaitRetryAfterOrBackoff(wait_base):
    """Wait the server's ``Retry-After`` when the failure carries one, else exponential backoff; plus jitter.

    Jitter is only ever added, so a ``Retry-After`` is never undercut.

    :param policy: the retry policy.
    :param rng: source of randomness in [0, 1) (tests pass a fixed one).
    """

    def __init__(self, policy: RetryPolicy, rng: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        jitter = self.rng() * self.policy.jitter
        if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool) and retry_after >= 0:
            return float(retry_after) + jitter
        return self.policy.backoff(retry_state.attempt_number) + jitter


class StopAtBudget(stop_base):
    """Stop after ``max_attempts``, or when the coming wait would overrun ``max_total_seconds``.

    :param policy: the retry policy.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= self.policy.max_attempts:
            return True
        # tenacity computes the wait before asking stop (upcoming_sleep), so the budget covers the sleep too.
        upcoming = getattr(retry_state, "upcoming_sleep", 0.0) or 0.0
        elapsed = retry_state.seconds_since_start or 0.0
        return elapsed + upcoming > self.policy.max_total_seconds


def build_retrying(
    policy: RetryPolicy,
    *,
    idempotent: bool,
    asynchronous: bool = False,
    before_sleep: Callable[[RetryCallState], Any] | None = None,
) -> Retrying | AsyncRetrying:
    """A tenacity controller for one call.

    :param policy: the retry policy.
    :param idempotent: whether repeating the call cannot create a second job (GET, cancel).
    :param asynchronous: build an :class:`~tenacity.AsyncRetrying` (sleeps without blocking the loop).
    :param before_sleep: called before each wait (logging).
    """
    kwargs: dict[str, Any] = {
        "retry": retry_if_exception(partial(is_retryable, idempotent=idempotent)),
        "stop": StopAtBudget(policy),
        "wait": WaitRetryAfterOrBackoff(policy),
        "reraise": True,
        "before_sleep": before_sleep,
    }
    return AsyncRetrying(**kwargs) if asynchronous else Retrying(**kwargs)


def log_before_sleep(log: logging.Logger | Any, what: str | None, policy: RetryPolicy
                     ) -> Callable[[RetryCallState], None]:
    """A ``before_sleep`` callback that logs the failure and the coming wait (never headers).

    :param log: the hook's logger.
    :param what: the call, e.g. ``GET /api/open/v1/video/generations/req_1``; None: the first two arguments of
        the retried function (method and path).
    :param policy: for the attempt count.
    """

    def _log(retry_state: RetryCallState) -> None:
        call = what or " ".join(str(a) for a in retry_state.args[:2])
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        sleep = getattr(retry_state, "upcoming_sleep", None)
        if sleep is None and retry_state.next_action is not None:
            sleep = retry_state.next_action.sleep
        log.warning(
            "Seedance %s failed (%s: %s); attempt %d of %d, retrying in %.2f s",
            call, type(exc).__name__, exc, retry_state.attempt_number, policy.max_attempts, sleep or 0.0,
        )

    return _log
