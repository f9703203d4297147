"""Session-wide test settings: an isolated AIRFLOW_HOME and the emulator fixture."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports Airflow: its settings are read once at import time.
_HOME = tempfile.mkdtemp(prefix="seedance-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))

pytest_plugins = ["airflow_provider_seedance.emulator.pytest_plugin"]
