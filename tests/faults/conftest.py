"""Fault tests: the emulator as the default connection (for the in-process property tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle


@pytest.fixture
def emu(seedance_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """The (reset) session emulator, configured as ``seedance_default``."""
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", seedance_emulator.connection_json)
    return seedance_emulator
