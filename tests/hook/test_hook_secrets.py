"""The API key never shows: not in logs (even at DEBUG), reprs or exception texts; it is registered for masking."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest

from .conftest import closed_port, set_connection

REQUEST = GenerationRequest(prompt="p", media_urls=["https://example.com/a.jpg"])


def test_key_is_registered_with_the_secret_masker(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    from airflow.providers.common.compat.sdk import redact

    hook.get_conn()  # loads the connection
    assert emu.api_key not in str(redact(f"token {emu.api_key} here"))


def test_key_not_in_repr(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    hook.submit(REQUEST)
    for text in (repr(hook), str(hook), repr(hook.get_conn().auth), repr(hook._settings), repr(hook.__dict__)):
        assert emu.api_key not in text


def test_key_not_in_logs_or_exception_texts(
    emu: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    # The server echoes the key in an error message: the hook must still not repeat it.
    emu.admin.add_fault(kind="http", status=503, endpoint="status", times=-1, request_id="req_1",
                        body=f"bad token {emu.api_key}")
    emu.admin.add_fault(kind="http", status=500, endpoint="submit", times=1)
    hook = make_hook()
    texts: list[str] = []
    for call in (lambda: hook.get_job("req_1"), lambda: hook.submit(REQUEST), lambda: hook.get_job("req_2")):
        try:
            call()
        except SeedanceError as exc:
            texts += [str(exc), repr(exc), str(getattr(exc, "cause", ""))]
    texts.append(str(hook.test_connection()))
    set_connection(monkeypatch, "refused", host=f"127.0.0.1:{closed_port()}", password=emu.api_key)
    try:
        make_hook("refused", max_retries=1).submit(REQUEST)
    except SeedanceError as exc:
        texts.append(str(exc))

    async def run_async() -> None:
        try:
            await hook.aget_job("req_3")
        except SeedanceError as exc:
            texts.append(str(exc))
        finally:
            await hook.aclose()

    asyncio.run(run_async())
    out = capsys.readouterr()
    logged = caplog.text + out.out + out.err
    assert "retrying in" in logged  # the logs were captured, so their absence below means something
    assert any("bad token ***" in t for t in texts)
    assert emu.api_key not in logged
    for text in texts:
        assert emu.api_key not in text


def test_key_not_in_debug_logs_of_a_fresh_process(emu: EmulatorHandle) -> None:
    """At DEBUG, with Airflow's own logging set up, sync and async calls still never print the key."""
    script = textwrap.dedent(
        """
        import asyncio
        from airflow_provider_seedance.hooks.seedance import RetryPolicy, SeedanceHook
        from airflow_provider_seedance.models import GenerationRequest
        from airflow_provider_seedance.emulator.testing import EmulatorAdmin
        import os
        admin = EmulatorAdmin(os.environ["EMU_URL"])
        admin.add_fault(kind="http", status=429, retry_after="0", endpoint="status", times=1)
        hook = SeedanceHook(retry_policy=RetryPolicy(initial_wait=0.01, max_wait=0.01, jitter=0))
        job = hook.submit(GenerationRequest(prompt="p"))
        hook.get_job(job.request_id)
        hook.cancel_job(job.request_id)
        print(hook.test_connection())
        async def main():
            try:
                await hook.aget_job(job.request_id)
                await hook.alist_models()
            finally:
                await hook.aclose()
        asyncio.run(main())
        print("DONE")
        """
    )
    env = dict(os.environ, AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG", EMU_URL=emu.base_url,
               AIRFLOW_CONN_SEEDANCE_DEFAULT=emu.connection_json)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "DONE" in proc.stdout
    assert "-> HTTP 200" in output  # one of the hook's debug lines: debug logging really was on
    assert emu.api_key not in output
