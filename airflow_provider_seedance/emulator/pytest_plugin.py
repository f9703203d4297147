"""pytest fixtures for the Seedance emulator (register with ``pytest_plugins = [...]``).

``seedance_emulator``: a running emulator, reset before each test. One server is shared per session
(time scale 0.1: a job is queued 0.1 s and processing 0.2 s), so a test that changes settings through
``seedance_emulator.admin.configure(...)`` affects only itself.

Account limits for one test: the ``seedance_limits`` marker (same arguments as
:meth:`~airflow_provider_seedance.emulator.testing.EmulatorAdmin.set_limits`)::

    @pytest.mark.seedance_limits(max_concurrent_jobs=2, concurrency_mode="refuse", requests_per_second=50)
    def test_my_dag_waits_out_the_vendor(seedance_emulator): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

__all__ = ["SESSION_TIME_SCALE", "seedance_emulator", "seedance_emulator_session"]

#: Time scale of the shared session emulator.
SESSION_TIME_SCALE = 0.1


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``seedance_limits`` marker.

    :param config: pytest's configuration.
    """
    config.addinivalue_line(
        "markers",
        "seedance_limits(max_concurrent_jobs=0, concurrency_mode='queue', requests_per_second=0, "
        "retry_after_seconds=None): account limits of the seedance_emulator for this test",
    )


@pytest.fixture(scope="session")
def seedance_emulator_session() -> Iterator[EmulatorHandle]:
    """One emulator for the whole session (in a background thread)."""
    from airflow_provider_seedance.emulator.testing import run_emulator

    with run_emulator(time_scale=SESSION_TIME_SCALE) as emu:
        yield emu


@pytest.fixture
def seedance_emulator(seedance_emulator_session: EmulatorHandle, request: pytest.FixtureRequest) -> EmulatorHandle:
    """The session emulator, reset to its start state (no jobs, faults, log; default settings, no limits).

    With a ``seedance_limits`` marker, those account limits are set for the test.
    """
    seedance_emulator_session.admin.reset()
    marker = request.node.get_closest_marker("seedance_limits")
    if marker is not None:
        seedance_emulator_session.admin.set_limits(*marker.args, **marker.kwargs)
    return seedance_emulator_session


@pytest.fixture
def seedance_default_connection(
    seedance_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> EmulatorHandle:
    """The reset session emulator, set as the ``seedance_default`` connection for this test.

    Hooks, operators, sensors and triggers built in the test (and ``airflow`` subprocesses that
    inherit the environment) then talk to the emulator.
    """
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", seedance_emulator.connection_json)
    return seedance_emulator
