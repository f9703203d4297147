"""Proposed changes to the hook and trigger, applied as a monkeypatch so one run measures before and after.

The scale benchmark's ``seedance+changes`` column imports this module in the trigger process before the
run (``BENCH_WORKER_PRELOAD``). Each change is the exact code proposed for the provider; once the provider
has it, the patch sees that and does nothing, and both columns converge.

1. ``SeedanceHook._acall``: with a single attempt (the trigger's polls use ``max_retries=0``) call
   ``_asend`` directly instead of through a tenacity ``AsyncRetrying``, which per call builds a controller
   and inspects callables (``inspect.iscoroutinefunction``) several times.
2. ``SeedanceHook._proxy_for_async``: resolve the environment's proxy for a base URL once per process
   (``functools.lru_cache``) instead of once per hook: every trigger builds a new hook, and
   ``requests.utils.get_environ_proxies`` walks all of ``os.environ`` twice.
3. ``SeedanceJobTrigger._wait``: bound a poll with ``asyncio.timeout`` (Python >= 3.11) instead of
   ``asyncio.wait_for``, which on 3.11 wraps every poll in an extra task.

Select a subset with ``SEEDANCE_BENCH_CHANGES=retry,proxy,timeout`` (default: all).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from requests.utils import get_environ_proxies, select_proxy

from airflow_provider_seedance.hooks import seedance as hook_module
from airflow_provider_seedance.triggers import seedance as trigger_module

__all__ = ["APPLIED"]

T = TypeVar("T")
SELECTED = set(filter(None, os.environ.get("SEEDANCE_BENCH_CHANGES", "retry,proxy,timeout").split(",")))
APPLIED: list[str] = []
Hook = hook_module.SeedanceHook


def _direct_single_attempt() -> None:
    original = Hook._acall
    if getattr(original, "_bench_patched", False):
        return

    async def _acall(self: Any, method: str, path: str, *, parse: Any, idempotent: bool, body: Any = None,
                     request_id: str | None = None) -> Any:
        if self.retry_policy.max_attempts == 1:  # nothing to retry: no retry controller
            await self._aget_settings()
            return await self._asend(method, path, body, request_id, parse)
        return await original(self, method, path, parse=parse, idempotent=idempotent, body=body,
                              request_id=request_id)

    _acall._bench_patched = True  # type: ignore[attr-defined]
    Hook._acall = _acall  # type: ignore[method-assign]
    APPLIED.append("retry")


@functools.lru_cache(maxsize=64)
def _environ_proxy(base_url: str) -> str | None:
    return select_proxy(base_url, get_environ_proxies(base_url))


def _process_wide_proxy_cache() -> None:
    def _proxy_for_async(self: Any, settings: Any) -> str | None:
        return settings.proxy_url or _environ_proxy(settings.base_url)

    Hook._proxy_for_async = _proxy_for_async  # type: ignore[method-assign]
    APPLIED.append("proxy")


class _AsyncioWithTimeout:
    """``asyncio`` as the trigger module sees it, with ``wait_for`` done by ``asyncio.timeout``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            return await awaitable
        async with asyncio.timeout(timeout):
            return await awaitable


def _timeout_without_task() -> None:
    if sys.version_info < (3, 11) or "asyncio.timeout(" in _source(trigger_module):
        return
    trigger_module.asyncio = _AsyncioWithTimeout()  # type: ignore[assignment]
    APPLIED.append("timeout")


def _source(module: Any) -> str:
    try:
        with open(module.__file__, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


if "retry" in SELECTED:
    _direct_single_attempt()
if "proxy" in SELECTED and "_environ_proxy" not in _source(hook_module) and "lru_cache" not in _source(hook_module):
    _process_wide_proxy_cache()
if "timeout" in SELECTED:
    _timeout_without_task()
