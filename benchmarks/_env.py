"""The environment benchmark processes run in: a throw-away AIRFLOW_HOME, no example DAGs."""

from __future__ import annotations

import os
import tempfile

__all__ = ["isolate_airflow_home"]


def isolate_airflow_home() -> str:
    """Point ``AIRFLOW_HOME`` (inherited by every child process) at a fresh temporary directory.

    Keeps the benchmarks from creating or reading ``~/airflow``; call before anything imports Airflow.
    """
    if not os.environ.get("SEEDANCE_BENCH_AIRFLOW_HOME"):
        os.environ["SEEDANCE_BENCH_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="seedance-bench-home-")
    home = os.environ["SEEDANCE_BENCH_AIRFLOW_HOME"]
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return home
