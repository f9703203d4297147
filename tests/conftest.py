"""Session-wide test settings: an isolated AIRFLOW_HOME and the emulator fixture."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

# Set before anything imports Airflow: its settings are read once at import time.
_HOME = tempfile.mkdtemp(prefix="seedance-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))

pytest_plugins = ["airflow_provider_seedance.emulator.pytest_plugin"]


@pytest.fixture
def emu(seedance_default_connection: EmulatorHandle) -> EmulatorHandle:
    """Short name used across the suite: the reset emulator, set as ``seedance_default``."""
    return seedance_default_connection

# The suite is a gate: property tests run the same examples on every machine (derandomize), so a red
# run is reproducible. `HYPOTHESIS_PROFILE=explore make test` draws new examples to hunt for bugs.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("gate", derandomize=True, print_blob=True)
_hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))
