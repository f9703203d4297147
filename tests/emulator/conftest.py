"""Fixtures for the emulator's own tests (clients are plain HTTP, never the provider's hook)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emu_client import Api, Receiver

from airflow_provider_seedance.emulator.testing import EmulatorHandle


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes several seconds (contract fuzzing, 10k jobs)")


@pytest.fixture
def emu(seedance_emulator: EmulatorHandle) -> EmulatorHandle:
    """The shared emulator, reset."""
    return seedance_emulator


@pytest.fixture
def api(emu: EmulatorHandle) -> Iterator[Api]:
    client = Api(emu)
    yield client
    client.session.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
