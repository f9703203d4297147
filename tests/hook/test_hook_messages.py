"""What the hook says when the connection is the problem: a host that does not resolve, a refused key, where
the API is. Both paths (requests and aiohttp)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import SeedanceAuthError, SeedanceError, SeedanceHostNotFoundError
from airflow_provider_seedance.hooks._connection import DEFAULT_BASE_URL
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .both_paths import MODES, get_job, submit
from .conftest import FAST, RecordingServer, set_connection
from .scripted_server import job_body

#: The hook's own retry log line (see hooks/_retry.log_before_sleep).
RETRY_LINE = "retrying in"


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged so far (Airflow's structlog writes to the console; stdlib loggers to caplog)."""
    out = capsys.readouterr()
    return out.out + out.err + caplog.text


def times_logged(text: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> int:
    """How often a line was logged: Airflow 3.3 writes through structlog to the console, 3.0 through stdlib
    logging, which pytest shows both on the console and in caplog: one line, seen in one or both places."""
    out = capsys.readouterr()
    return max((out.out + out.err).count(text), caplog.text.count(text))


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


# -- 6. a host name that does not resolve fails at once, naming the host and the connection ---------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["get_job", "submit"])
def test_unresolvable_host_fails_at_once_naming_host_and_connection(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, mode: str, operation: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    # .invalid never resolves (RFC 6761): no network needed, and no chance of reaching anything.
    if resolves("seedance.invalid"):
        pytest.skip("this machine's DNS answers for .invalid names (NXDOMAIN hijacking)")
    set_connection(monkeypatch, "typo_host", host="seedance.invalid", password="sd2_dns")
    hook = make_hook("typo_host")  # FAST: 4 attempts would be made for any retryable failure
    with pytest.raises(SeedanceHostNotFoundError) as info:
        get_job(hook, mode, "req_1") if operation == "get_job" else submit(hook, mode)
    message = str(info.value)
    assert "'seedance.invalid'" in message
    assert "'typo_host'" in message
    assert "host field" in message
    assert "https://seedance.invalid" in message
    assert info.value.sent is False  # not "ambiguous" for a submit: nothing can exist
    assert info.value.__cause__ is None
    text = logged(capsys, caplog)
    if mode == "sync":  # the async path says it at debug (see test_async_path_logs_the_base_url_at_debug)
        assert "API at https://seedance.invalid" in text  # the logs were captured...
    assert RETRY_LINE not in text  # ...and the hook never retried
    assert FAST.max_attempts > 1


@pytest.mark.parametrize("mode", MODES)
def test_empty_host_that_does_not_resolve_says_it_is_the_vendors_default(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, mode: str,
) -> None:
    vendor_host = DEFAULT_BASE_URL.split("://", 1)[1]
    if resolves(vendor_host):
        pytest.skip(f"{vendor_host} resolves here: this case needs a machine where it does not")
    set_connection(monkeypatch, "no_host", password="sd2_dns")
    with pytest.raises(SeedanceHostNotFoundError) as info:
        get_job(make_hook("no_host"), mode, "req_1")
    message = str(info.value)
    assert f"'{vendor_host}'" in message
    assert "'no_host'" in message
    assert "no host" in message
    assert "vendor's default" in message
    assert RETRY_LINE not in logged(capsys, caplog)


# -- 7. a refused key names the connection and its password field -----------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["get_job", "submit"])
def test_401_names_the_connection_and_its_password_field(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook],
    mode: str, operation: str,
) -> None:
    set_connection(monkeypatch, "seedance_wrong_key", host=emu.base_url, password="sd2_live_not_the_key_42")
    hook = make_hook("seedance_wrong_key")
    with pytest.raises(SeedanceAuthError) as info:
        get_job(hook, mode, "req_1") if operation == "get_job" else submit(hook, mode)
    message = str(info.value)
    assert info.value.status_code == 401
    assert "'seedance_wrong_key'" in message
    assert "password field" in message
    assert "'API key'" in message
    assert emu.base_url in message
    assert "sd2_live_not_the_key_42" not in message
    assert len(emu.admin.requests()) == 1  # a refused key is not retried
    assert emu.admin.stats()["jobs_total"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_403_names_the_connection_and_its_password_field(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    emu.admin.add_fault(kind="http", status=403, endpoint="status", times=1, body="key revoked")
    set_connection(monkeypatch, "seedance_revoked", host=emu.base_url, password=emu.api_key)
    with pytest.raises(SeedanceAuthError) as info:
        get_job(make_hook("seedance_revoked"), mode, "req_1")
    message = str(info.value)
    assert info.value.status_code == 403
    assert "key revoked" in message  # the vendor's words are kept
    assert "'seedance_revoked'" in message
    assert "password field" in message


# -- 8. the first request says where the API is, once -------------------------------------------------------


def test_base_url_is_logged_once_per_hook_on_both_paths(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = recording_server(status=200, body=job_body("req_1"))
    set_connection(monkeypatch, "where", host=server.base_url, password="sd2_where")
    hook = make_hook("where")
    assert logged(capsys, caplog).count("API at") == 0  # nothing before the first request
    hook.get_job("req_1")
    hook.get_job("req_1")

    async def twice() -> None:
        try:
            await hook.aget_job("req_1")
            await hook.aget_job("req_1")
        finally:
            await hook.aclose()

    asyncio.run(twice())
    assert times_logged(f"Seedance connection 'where': API at {server.base_url}", capsys, caplog) == 1
    assert "has no host" not in caplog.text
    assert len(server.seen) == 4


# The worker side logs the base URL at info. The async side (a triggerer starts one hook per wait, after the
# task's worker side has said it) logs it at debug: test_async_path_logs_the_base_url_at_debug.
@pytest.mark.parametrize("mode", ["sync"])
def test_first_call_logs_the_base_url(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    server = recording_server(status=200, body=job_body("req_1"))
    set_connection(monkeypatch, "where", host=server.base_url, password="sd2_where")
    get_job(make_hook("where"), mode, "req_1")
    assert times_logged(f"API at {server.base_url}", capsys, caplog) == 1


@pytest.mark.parametrize("mode", ["sync"])
def test_empty_host_log_says_it_is_the_vendors_api(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    # Through a loopback "proxy" that refuses CONNECT: nothing can reach the vendor, even where it resolves.
    proxy = recording_server()
    set_connection(monkeypatch, "no_host", password="sd2_where", extra={"proxies": {"https": proxy.base_url}})
    hook = make_hook("no_host", max_retries=0)
    with pytest.raises(SeedanceError):
        get_job(hook, mode, "req_1")
    line = f"Seedance connection 'no_host' has no host: using the vendor's API at {DEFAULT_BASE_URL}"
    assert times_logged(line, capsys, caplog) == 1


def test_async_path_logs_the_base_url_at_debug(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
) -> None:
    server = recording_server(status=200, body=job_body("req_1"))
    set_connection(monkeypatch, "where", host=server.base_url, password="sd2_where")
    hook = make_hook("where")
    calls: list[tuple[int, str]] = []

    class Recorder:
        def log(self, level: int, message: str, *args: Any) -> None:
            calls.append((level, message % args))

        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    monkeypatch.setattr(type(hook), "log", property(lambda self: Recorder()))
    get_job(hook, "async", "req_1")
    assert calls == [(logging.DEBUG, f"Seedance connection 'where': API at {server.base_url}")]


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_connection_names_the_connection_and_base_url(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    set_connection(monkeypatch, "down", host=f"http://127.0.0.1:{port}", password="sd2_down")
    with pytest.raises(SeedanceError, match="could not connect") as info:
        get_job(make_hook("down", max_retries=0), mode, "req_1")
    assert f"Airflow connection 'down', base URL http://127.0.0.1:{port}" in str(info.value)
