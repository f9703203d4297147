"""A local emulator of the Seedance 2.0 Open API, for offline DAG development, demos and tests.

Start it with ``seedance-emulator --port 8787`` (or ``python -m airflow_provider_seedance.emulator``), or
from Python with :func:`airflow_provider_seedance.emulator.testing.run_emulator`. Importing this package
is cheap: the server (aiohttp) is imported only when one is started.
"""

from __future__ import annotations

__all__: list[str] = []
