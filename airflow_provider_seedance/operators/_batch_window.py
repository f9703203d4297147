"""The batch's pace: how many jobs it keeps at the vendor (an adaptive window) and how fast it sends (a rate limit).

The window is AIMD (additive increase, multiplicative decrease, as TCP's congestion window): a submit the
vendor refuses with 429 (nothing created) shrinks it to the jobs the vendor holds for us right then, which is
the account's real limit (or this shard's share of it); every accepted submit grows it by ``1 / size``, so it
probes one more slot per window's worth of jobs. Defaults drain near the ideal without the user knowing the
limit. The rate limit is a token bucket every request of the batch passes (submit, status, cancel). Design:
``docs/guides/batch.rst``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance.errors import SeedanceRateLimitError

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.models import GenerationRequest, JobResult

__all__ = ["AdaptiveWindow", "PacedClient", "RateLimiter", "is_concurrency_refusal"]

#: The vendor's code of a 429 for too many requests per second (any other 429 at submit is about slots).
RATE_LIMITED_CODE = "rate_limited"


def is_concurrency_refusal(error: SeedanceRateLimitError) -> bool:
    """Whether a 429 says "too many jobs at once" (shrink the window) rather than "too many requests"."""
    return (error.code or "").lower() != RATE_LIMITED_CODE


@dataclass
class AdaptiveWindow:
    """How many jobs may be in flight at once: starts at ``cap``, shrinks on a refused submit, grows slowly.

    :param cap: the most jobs in flight (``max_in_flight``, this shard's share).
    :param minimum: never below this many.
    """

    cap: int
    minimum: int = 1
    size: float = field(init=False)
    refusals: int = 0

    def __post_init__(self) -> None:
        self.size = float(self.cap)

    @property
    def limit(self) -> int:
        """Jobs that may be in flight now."""
        return max(self.minimum, min(self.cap, int(self.size)))

    def accepted(self) -> None:
        """A submit was accepted: probe for one more slot over the next window's worth of jobs."""
        self.size = min(float(self.cap), self.size + 1.0 / max(self.size, 1.0))

    def refused(self, in_flight: int) -> None:
        """A submit was refused for lack of a slot while ``in_flight`` of our jobs held one.

        :param in_flight: our jobs the vendor held when it refused: the limit as it is now.
        """
        self.refusals += 1
        self.size = float(max(self.minimum, min(in_flight, self.limit)))


class RateLimiter:
    """A token bucket of ``rate`` requests a second (bursts of up to ``max(1, rate)``); None: no limit.

    A ``Retry-After`` from a rate-limit 429 pauses every request until it passes.

    :param rate: requests per second.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.burst = max(1.0, rate or 1.0)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.requests = 0

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server's ``Retry-After``).

        :param seconds: how long.
        """
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))

    async def acquire(self) -> None:
        """Wait for a token (callers queue in order: a burst of polls cannot starve a submit for long)."""
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0 and self.rate is None:
                    break
                if wait <= 0 and self.rate is not None:
                    self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                    self._at = now
                    if self._tokens >= 1.0:
                        self._tokens -= 1.0
                        break
                    wait = (1.0 - self._tokens) / self.rate
                await asyncio.sleep(wait)
            self.requests += 1


class PacedClient:
    """The hook, every request of it paced by the batch's :class:`RateLimiter`; what ``watch_job`` polls through.

    :param hook: the Seedance hook (built with no retries of its own, so every request passes the limiter).
    :param limiter: the batch's rate limit.
    """

    def __init__(self, hook: SeedanceHook, limiter: RateLimiter) -> None:
        self.hook = hook
        self.limiter = limiter

    async def _paced(self, call: Callable[[], Awaitable[Any]]) -> Any:
        await self.limiter.acquire()
        try:
            return await call()
        except SeedanceRateLimitError as exc:
            if not is_concurrency_refusal(exc):
                self.limiter.pause(exc.retry_after if exc.retry_after is not None else 1.0)
            raise

    async def aget_job(self, request_id: str, *, timeout: float | None = None) -> JobResult:
        """Status of a job (paced).

        :param request_id: the job.
        :param timeout: seconds for the call.
        """
        result: JobResult = await self._paced(lambda: self.hook.aget_job(request_id, timeout=timeout))
        return result

    async def acancel_job(self, request_id: str) -> JobResult:
        """Cancel a job (paced).

        :param request_id: the job.
        """
        result: JobResult = await self._paced(lambda: self.hook.acancel_job(request_id))
        return result

    async def asubmit(self, request: GenerationRequest) -> JobResult:
        """POST a request validated before the loop began (paced).

        :param request: the generation.
        """
        result: JobResult = await self._paced(lambda: self.hook.asubmit(request, validate=False))
        return result
