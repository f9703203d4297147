"""Connection handling: base URL rules, API key, extras honoured by both sync and async paths, env forms."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_seedance import CONN_FIELDS, get_provider_info
from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import SeedanceTransportError
from airflow_provider_seedance.hooks._connection import (
    DEFAULT_BASE_URL,
    SeedanceConnectionError,
    resolve_base_url,
    settings_from_connection,
)
from airflow_provider_seedance.hooks._form import form_field_specs
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .conftest import RecordingServer, closed_port, set_connection


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_BASE_URL),
        ("", None, DEFAULT_BASE_URL),
        ("  ", 8080, DEFAULT_BASE_URL),
        ("www.seedance2.ink", None, "https://www.seedance2.ink"),
        ("api.example.com", 8443, "https://api.example.com:8443"),
        ("api.example.com:9443", 1, "https://api.example.com:9443"),
        ("127.0.0.1", 8787, "http://127.0.0.1:8787"),
        ("localhost:8787", None, "http://localhost:8787"),
        ("::1", 8787, "http://[::1]:8787"),
        ("[::1]", None, "http://[::1]"),
        ("https://www.seedance2.ink/", None, "https://www.seedance2.ink"),
        ("https://api.example.com", 8443, "https://api.example.com:8443"),
        ("http://127.0.0.1:1234", 5678, "http://127.0.0.1:1234"),
        ("HTTPS://Example.com", None, "https://Example.com"),
    ],
)
def test_base_url_rules(host: str | None, port: int | None, expected: str) -> None:
    assert resolve_base_url(host, port) == expected


@pytest.mark.parametrize("host", ["ftp://example.com", "https://", "http://[::1", "file:///etc/passwd"])
def test_bad_base_urls_name_the_connection(host: str) -> None:
    with pytest.raises(SeedanceConnectionError, match="'my_conn'"):
        resolve_base_url(host, None, conn_id="my_conn")


def conn(**fields: Any) -> Any:
    base = {"host": "https://api.example.com", "port": None, "password": "sd2_k", "extra_dejson": {}}
    base.update(fields)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_api_key_names_connection_and_field(password: str | None) -> None:
    with pytest.raises(SeedanceConnectionError) as info:
        settings_from_connection(conn(password=password), "my_conn")
    assert "'my_conn'" in str(info.value)
    assert "password" in str(info.value)
    assert "API key" in str(info.value)


@pytest.mark.parametrize("password", ["sd2_a\r\nX-Injected: 1", "sd2_\x00", "sd2_\u2603"])
def test_api_key_that_cannot_be_a_header_is_refused_without_echoing_it(password: str) -> None:
    with pytest.raises(SeedanceConnectionError, match="control or non-latin-1") as info:
        settings_from_connection(conn(password=password), "my_conn")
    assert password.strip() not in str(info.value)
    assert "password" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "attr", "expected"),
    [
        ({}, "timeout", 30.0),
        ({"timeout": 5}, "timeout", 5.0),
        ({"timeout": "2.5"}, "timeout", 2.5),
        ({"timeout": ""}, "timeout", 30.0),
        ({}, "proxies", ()),
        ({"proxies": {"https": "http://p:3128"}}, "proxies", (("https", "http://p:3128"),)),
        ({"proxies": '{"http": "http://p:1", "https": ""}'}, "proxies", (("http", "http://p:1"),)),
        ({}, "verify_ssl", True),
        ({"verify_ssl": False}, "verify_ssl", False),
        ({"verify_ssl": "false"}, "verify_ssl", False),
        ({"verify_ssl": "True"}, "verify_ssl", True),
        ({"verify_ssl": "0"}, "verify_ssl", False),
    ],
)
def test_extras(extra: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(settings_from_connection(conn(extra_dejson=extra), "c"), attr) == expected


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "inf"}, "timeout"),
        ({"proxies": "not json"}, "proxies"),
        ({"proxies": ["http://p"]}, "proxies"),
        ({"proxies": {"https": 3128}}, "proxies"),
        ({"verify_ssl": "maybe"}, "verify_ssl"),
    ],
)
def test_bad_extras_name_connection_and_extra(extra: dict[str, Any], name: str) -> None:
    with pytest.raises(SeedanceConnectionError) as info:
        settings_from_connection(conn(extra_dejson=extra), "my_conn")
    assert "'my_conn'" in str(info.value)
    assert f"'{name}'" in str(info.value)


def test_hook_timeout_wins_over_the_extra() -> None:
    settings = settings_from_connection(conn(extra_dejson={"timeout": 9}), "c", timeout=3)
    assert settings.timeout == 3.0


def test_settings_repr_hides_the_key() -> None:
    settings = settings_from_connection(conn(password="sd2_secret_value"), "c")
    assert "sd2_secret_value" not in repr(settings)


def test_ui_metadata_is_consistent_with_provider_info() -> None:
    info = get_provider_info()["connection-types"][0]
    assert info["connection-type"] == SeedanceHook.conn_type == "seedance"
    assert info["hook-name"] == SeedanceHook.hook_name
    assert info["hook-class-name"] == f"{SeedanceHook.__module__}.{SeedanceHook.__qualname__}"
    behaviour = SeedanceHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == info["ui-field-behaviour"]["hidden-fields"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert "password" not in behaviour["hidden_fields"]
    assert "host" not in behaviour["hidden_fields"]
    specs = {s["name"]: s for s in form_field_specs()}
    assert list(specs) == list(CONN_FIELDS)
    assert specs["verify_ssl"]["kind"] == "boolean"
    assert specs["verify_ssl"]["default"] is True
    assert specs["timeout"]["label"] == CONN_FIELDS["timeout"]["label"]


def test_connection_form_widgets_for_old_airflow() -> None:
    wtforms = pytest.importorskip("wtforms")
    widgets = SeedanceHook.get_connection_form_widgets()
    assert list(widgets) == list(CONN_FIELDS)
    assert widgets["verify_ssl"].field_class is wtforms.BooleanField


# -- through Airflow's own connection lookup ------------------------------------------------------------


def test_json_and_uri_env_connections_reach_the_emulator(
    seedance_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", seedance_emulator.connection_json)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_URI", seedance_emulator.connection_uri)
    json_hook, uri_hook = make_hook(), make_hook("seedance_uri")
    assert json_hook.base_url == uri_hook.base_url == seedance_emulator.base_url
    assert json_hook.test_connection()[0] is True
    assert uri_hook.test_connection()[0] is True
    assert [r["auth"] for r in seedance_emulator.admin.requests()] == ["valid", "valid"]


def test_env_connection_forms_in_a_fresh_process(seedance_emulator: EmulatorHandle) -> None:
    """Airflow reads AIRFLOW_CONN_* at lookup time in a new interpreter too (JSON and URI)."""
    script = textwrap.dedent(
        """
        import json
        from airflow_provider_seedance.hooks.seedance import SeedanceHook
        out = {}
        for conn_id in ("seedance_default", "seedance_uri"):
            hook = SeedanceHook(conn_id)
            out[conn_id] = [hook.base_url, *hook.test_connection()]
        print("RESULT=" + json.dumps(out))
        """
    )
    env = dict(os.environ)
    env["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = seedance_emulator.connection_json
    env["AIRFLOW_CONN_SEEDANCE_URI"] = seedance_emulator.connection_uri
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))
    result = json.loads(line.split("=", 1)[1])
    for conn_id in ("seedance_default", "seedance_uri"):
        base_url, ok, message = result[conn_id]
        assert base_url == seedance_emulator.base_url
        assert ok is True, message
    assert seedance_emulator.api_key not in proc.stdout + proc.stderr


def test_missing_key_through_airflow_connection(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]
) -> None:
    set_connection(monkeypatch, "no_key", host=emu.base_url)
    hook = make_hook("no_key")
    ok, message = hook.test_connection()
    assert ok is False
    assert "'no_key'" in message
    assert "password" in message
    with pytest.raises(SeedanceConnectionError, match="no_key"):
        hook.get_job("req_1")
    assert emu.admin.requests() == []


# -- extras honoured by both paths ----------------------------------------------------------------------


def test_timeout_extra_is_honoured_sync_and_async(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]
) -> None:
    import asyncio

    set_connection(monkeypatch, "slow", host=emu.base_url, password=emu.api_key, extra={"timeout": 0.3})
    emu.admin.add_fault(kind="latency", delay=1.5, endpoint="status", times=2)
    hook = make_hook("slow", timeout=None, max_retries=0)
    with pytest.raises(SeedanceTransportError) as sync_err:
        hook.get_job("req_x")
    assert sync_err.value.sent is True

    async def run() -> SeedanceTransportError:
        try:
            await hook.aget_job("req_x")
        except SeedanceTransportError as exc:
            return exc
        finally:
            await hook.aclose()
        raise AssertionError("no timeout")

    assert asyncio.run(run()).sent is True


def test_proxies_extra_is_honoured_sync_and_async(
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    recording_server: Callable[..., RecordingServer],
) -> None:
    import asyncio

    proxy = recording_server()
    # The API host does not even resolve: only a proxy can answer.
    set_connection(monkeypatch, "via_proxy", host="http://seedance.invalid", password="sd2_proxy_key",
                   extra=json.dumps({"proxies": {"http": proxy.base_url}, "allow_insecure_http": True}))
    hook = make_hook("via_proxy", max_retries=0)
    assert hook.test_connection()[0] is True

    async def run() -> None:
        try:
            await hook.aget_job("req_async")
        finally:
            await hook.aclose()

    with pytest.raises(Exception, match="nope"):
        asyncio.run(run())
    paths = [r["path"] for r in proxy.seen]
    assert len(paths) == 2
    assert paths[0].startswith("http://seedance.invalid/api/open/v1/video/generations/airflow-connection-test-")
    assert paths[1] == "http://seedance.invalid/api/open/v1/video/generations/req_async"
    assert all(r["headers"]["Authorization"] == "Bearer sd2_proxy_key" for r in proxy.seen)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_ssl_extra_is_honoured_sync_and_async(
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    recording_server: Callable[..., RecordingServer],
    self_signed_tls: ssl.SSLContext,
) -> None:
    import asyncio

    server = recording_server(tls_context=self_signed_tls)
    set_connection(monkeypatch, "tls_strict", host=server.base_url, password="sd2_tls_key")
    set_connection(monkeypatch, "tls_lax", host=server.base_url, password="sd2_tls_key",
                   extra={"verify_ssl": "false"})
    strict, lax = make_hook("tls_strict", max_retries=0), make_hook("tls_lax", max_retries=0)

    with pytest.raises(SeedanceTransportError) as sync_err:
        strict.get_job("r1")
    assert sync_err.value.sent is False  # the TLS handshake failed: nothing was sent
    assert lax.test_connection()[0] is True

    async def run() -> tuple[SeedanceTransportError | None, str]:
        err = None
        try:
            await strict.aget_job("r2")
        except SeedanceTransportError as exc:
            err = exc
        try:
            await lax.aget_job("r3")
        except Exception as exc:  # the server's fixed 404
            message = str(exc)
        await strict.aclose()
        await lax.aclose()
        return err, message

    async_err, message = asyncio.run(run())
    assert async_err is not None
    assert async_err.sent is False
    assert "nope" in message
    assert [r["path"].rsplit("/", 1)[1] for r in server.seen][-1] == "r3"
    assert not any(r["path"].endswith(("/r1", "/r2")) for r in server.seen)


def test_connection_refused_is_not_sent(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]
) -> None:
    set_connection(monkeypatch, "refused", host=f"127.0.0.1:{closed_port()}", password="sd2_k")
    hook = make_hook("refused", max_retries=0)
    with pytest.raises(SeedanceTransportError) as info:
        hook.get_job("r")
    assert info.value.sent is False
