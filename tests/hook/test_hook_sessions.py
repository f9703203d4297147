"""Connection reuse: one requests.Session per hook; per event loop and connection one aiohttp session, shared by
every hook (a triggerer's waits) and counted by reference."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import SeedanceError, SeedanceNotFoundError
from airflow_provider_seedance.hooks._async_session import open_sessions
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .conftest import FAST, set_connection


def test_sync_calls_reuse_one_connection(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    session = hook.get_conn()
    job = hook.submit(__import__("airflow_provider_seedance.models", fromlist=["x"]).GenerationRequest(prompt="p"))
    for _ in range(30):
        hook.get_job(job.request_id)
    hook.list_models(refresh=True)
    assert hook.get_conn() is session
    stats = emu.admin.stats()
    assert stats["requests"] == 32
    assert stats["connections"] == 1


async def test_async_hooks_in_one_loop_share_one_session(emu: EmulatorHandle) -> None:
    hooks = [SeedanceHook(retry_policy=FAST) for _ in range(25)]
    for hook in hooks:
        with pytest.raises(SeedanceNotFoundError):
            await hook.aget_job("req_missing")
    sessions = open_sessions()
    assert len(sessions) == 1
    [(session, refs)] = sessions.values()
    assert refs == 25
    assert all(h._lease is not None and h._lease.session is session for h in hooks)
    assert emu.admin.stats()["connections"] == 1  # sequential calls: one keep-alive connection

    for hook in hooks[:-1]:
        await hook.aclose()
    assert not session.closed  # still referenced by the last hook
    await hooks[-1].aclose()
    assert session.closed
    assert open_sessions() == {}


async def test_concurrent_async_calls_share_the_pool(emu: EmulatorHandle) -> None:
    hooks = [SeedanceHook(retry_policy=FAST) for _ in range(40)]
    results = await asyncio.gather(*(h.aget_job("req_missing") for h in hooks), return_exceptions=True)
    assert all(isinstance(r, SeedanceNotFoundError) for r in results)
    assert len(open_sessions()) == 1
    assert emu.admin.stats()["connections"] <= 40
    await asyncio.gather(*(h.aclose() for h in hooks))
    assert open_sessions() == {}


async def test_different_connections_get_different_sessions(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "lax", host=emu.base_url, password=emu.api_key, extra={"verify_ssl": False})
    a, b, c = SeedanceHook(retry_policy=FAST), SeedanceHook(retry_policy=FAST), SeedanceHook("lax", retry_policy=FAST)
    for hook in (a, b, c):
        with pytest.raises(SeedanceNotFoundError):
            await hook.aget_job("req_missing")
    assert len(open_sessions()) == 2
    assert a._lease is not None
    assert b._lease is not None
    assert c._lease is not None
    assert a._lease.session is b._lease.session is not c._lease.session
    for hook in (a, b, c):
        await hook.aclose()
    assert open_sessions() == {}


def test_no_unclosed_session_warnings(emu: EmulatorHandle) -> None:
    """A closed run leaves nothing for the garbage collector to complain about."""
    errors: list[Any] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        hooks = [SeedanceHook(retry_policy=FAST) for _ in range(5)]
        for hook in hooks:
            with pytest.raises(SeedanceNotFoundError):
                await hook.aget_job("req_missing")
        for hook in hooks:
            await hook.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert errors == []


def test_loop_shutdown_closes_sessions_nobody_released(emu: EmulatorHandle) -> None:
    """A hook that is never closed (e.g. a cancelled trigger) still leaves no open session behind."""
    leaked: list[Any] = []

    async def main() -> None:
        hook = SeedanceHook(retry_policy=FAST)
        with pytest.raises(SeedanceNotFoundError):
            await hook.aget_job("req_missing")
        assert hook._lease is not None
        leaked.append(hook._lease.session)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert leaked[0].closed
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_one_hook_across_two_event_loops(emu: EmulatorHandle, make_hook: Callable[..., SeedanceHook]) -> None:
    hook = make_hook()
    for _ in range(2):  # e.g. two asyncio.run() calls in a worker
        async def call() -> None:
            with pytest.raises(SeedanceNotFoundError):
                await hook.aget_job("req_missing")

        asyncio.run(call())
    assert emu.admin.stats()["gets"] == 2


async def test_async_methods_do_not_look_up_the_connection_in_the_event_loop(emu: EmulatorHandle) -> None:
    """The triggerer's event loop must not block on a sync secrets lookup.

    Airflow >= 3.1 has ``BaseHook.aget_connection`` (the sync lookup is not used at all); older versions get
    the sync lookup run in a worker thread.
    """
    threads: list[int] = []

    class Probe(SeedanceHook):
        @classmethod
        def get_connection(cls, conn_id: str) -> Any:
            threads.append(threading.get_ident())
            return super().get_connection(conn_id)

    hook = Probe(retry_policy=FAST)
    try:
        with pytest.raises(SeedanceNotFoundError):
            await hook.aget_job("req_missing")
        assert [m.model_id for m in await hook.alist_models()][:1] == ["seedance-2.0"]
    finally:
        await hook.aclose()
    assert threading.get_ident() not in threads
    if hasattr(BaseHook, "aget_connection"):
        assert threads == []
    else:
        assert len(threads) == 1


async def test_posts_and_gets_share_the_one_session(emu: EmulatorHandle) -> None:
    from airflow_provider_seedance.models import GenerationRequest

    hooks = [SeedanceHook(retry_policy=FAST) for _ in range(3)]
    jobs = [await h.asubmit(GenerationRequest(prompt="a cat")) for h in hooks]
    for hook, job in zip(hooks, jobs, strict=True):
        assert (await hook.aget_job(job.request_id)).request_id == job.request_id
    sessions = open_sessions()
    assert len(sessions) == 1
    [(client, refs)] = sessions.values()
    assert type(client).__name__ == "ClientSession"
    assert refs == 3
    assert emu.admin.stats()["connections"] == 1  # sequential calls over one kept-alive connection
    for hook in hooks:
        await hook.aclose()
    assert open_sessions() == {}


async def test_a_proxied_connection_polls_through_the_proxy(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "proxied", host=emu.base_url, password=emu.api_key,
                   extra={"proxies": {"http": "http://127.0.0.1:9"}})  # nothing listens on port 9
    hook = SeedanceHook("proxied", retry_policy=FAST)
    try:
        with pytest.raises(SeedanceError, match="could not connect"):
            await hook.aget_job("req_missing")
        assert hook._lease is not None
    finally:
        await hook.aclose()
    assert emu.admin.stats()["gets"] == 0
