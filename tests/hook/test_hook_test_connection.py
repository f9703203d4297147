"""test_connection(): a working setup, a rejected key, an unreachable host, and anything else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .conftest import RecordingServer, closed_port, set_connection


def test_working_setup(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    ok, message = hook.test_connection()
    assert ok is True, message
    assert "API key accepted" in message
    assert emu.base_url in message
    stats = emu.admin.stats()
    assert stats["gets"] == 1
    assert stats["submits"] == 0
    assert stats["jobs_total"] == 0
    assert stats["credits_charged"] == 0
    assert emu.admin.requests()[0]["auth"] == "valid"


def test_wrong_key(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]
) -> None:
    set_connection(monkeypatch, "bad_key", host=emu.base_url, password="sd2_not_a_real_key")
    ok, message = make_hook("bad_key").test_connection()
    assert ok is False
    assert message.startswith("API key rejected")
    assert "401" in message
    assert "sd2_not_a_real_key" not in message


def test_unreachable_host(monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]) -> None:
    port = closed_port()
    set_connection(monkeypatch, "nowhere", host=f"127.0.0.1:{port}", password="sd2_k")
    ok, message = make_hook("nowhere").test_connection()
    assert ok is False
    assert message.startswith(f"cannot reach http://127.0.0.1:{port}")


def test_server_error_is_reported_with_details(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.add_fault(kind="http", status=503, endpoint="status", times=-1)
    ok, message = hook.test_connection()
    assert ok is False
    assert "503" in message
    assert emu.admin.stats()["gets"] == 1  # one probe, no retries: quick feedback in the UI


def test_a_host_that_finds_a_made_up_id_is_not_seedance(
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    recording_server: Callable[..., RecordingServer],
) -> None:
    server = recording_server(status=200, body={"requestId": "x", "status": "queued"})
    set_connection(monkeypatch, "catch_all", host=server.base_url, password="sd2_k")
    ok, message = make_hook("catch_all").test_connection()
    assert ok is False
    assert "Is the host the Seedance API" in message
