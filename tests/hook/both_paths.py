"""Run one hook call on the sync (requests) or async (aiohttp) path, so a test covers both with one body."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest

T = TypeVar("T")
MODES = ["sync", "async"]
REQUEST = GenerationRequest(prompt="a lighthouse in a storm")


def call(hook: SeedanceHook, mode: str, sync: Callable[[], T], asynchronous: Callable[[], Awaitable[T]]) -> T:
    """Run one hook call on the chosen path; the async one in a fresh loop, releasing the shared session.

    :param hook: the hook.
    :param mode: ``sync`` or ``async``.
    :param sync: the sync call.
    :param asynchronous: the async call.
    """
    if mode == "sync":
        return sync()

    async def main() -> T:
        try:
            return await asynchronous()
        finally:
            await hook.aclose()

    return asyncio.run(main())


def get_job(hook: SeedanceHook, mode: str, request_id: str) -> Any:
    """``get_job`` / ``aget_job``.

    :param hook: the hook.
    :param mode: ``sync`` or ``async``.
    :param request_id: the job.
    """
    return call(hook, mode, lambda: hook.get_job(request_id), lambda: hook.aget_job(request_id))


def submit(hook: SeedanceHook, mode: str, request: GenerationRequest = REQUEST) -> Any:
    """``submit`` / ``asubmit``.

    :param hook: the hook.
    :param mode: ``sync`` or ``async``.
    :param request: the generation.
    """
    return call(hook, mode, lambda: hook.submit(request), lambda: hook.asubmit(request))
