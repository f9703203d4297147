"""Spend-guard fixtures: the emulator as default connection; tests/faults importable (the shared engine run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
if str(FAULTS) not in sys.path:
    sys.path.insert(0, str(FAULTS))

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle


@pytest.fixture
def emu(seedance_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """The (reset) session emulator, configured as ``seedance_default``."""
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", seedance_emulator.connection_json)
    return seedance_emulator
