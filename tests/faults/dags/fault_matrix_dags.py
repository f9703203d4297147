"""DAG file of the fault matrix: one DAG per scenario (see tests/faults/fault_scenarios.py).

Parsed from this folder by ``airflow dags test`` / ``DAG.test()``; ``tests/faults`` must be importable
(the harness puts it on ``sys.path``/``PYTHONPATH``).
"""

from __future__ import annotations

from fault_dags import build_fault_dags

build_fault_dags(globals())
