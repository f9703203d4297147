"""Session-wide test settings: an isolated AIRFLOW_HOME, migrated Airflow homes and the emulator fixture."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _needs_no_dns(host: object) -> bool:
    """A loopback name, or an address literal in any form the C library reads without asking DNS."""
    if host is None or host in ("", b""):
        return True
    name = (host.decode() if isinstance(host, bytes) else str(host)).strip("[]").rstrip(".").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%")[0])
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(name)  # legacy numeric forms: 127.1, 2130706433, 0x7f.0.0.1
        return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def no_dns_query_leaves_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test traffic stays on loopback: a host name that is not loopback (``seedance.invalid``,
    ``api.example.com``) fails to resolve here, as it would offline, instead of sending a DNS query to the
    machine's resolver. Address literals resolve as usual (no query). Tests that need a name to resolve install
    their own resolver on top of this one."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _needs_no_dns(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{host!r} not resolved: the test suite sends no DNS query")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite metadata DB migrated once per test run (shared by xdist workers): copy it, never write it.

    ``airflow db migrate`` costs 10-20 s; every Airflow home of the suite starts from a copy of this one.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # every worker's base temp dir sits in the run's own
    db = root / "migrated-airflow-home" / "airflow.db"
    with (root / "migrated-airflow-home.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker migrates, the others wait for it
        if not db.exists():
            building = Path(tempfile.mkdtemp(prefix="migrating-", dir=root))
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
            env.update(AIRFLOW_HOME=str(building), AIRFLOW__CORE__LOAD_EXAMPLES="False")
            proc = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                                  capture_output=True, text=True, timeout=600, check=False)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            db.parent.mkdir()
            shutil.copyfile(building / "airflow.db", db)
    return db


@pytest.fixture(scope="session")
def airflow_home_factory(
    migrated_airflow_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """Make a fresh AIRFLOW_HOME holding a copy of the migrated metadata DB (for session/module fixtures)."""

    def make(name: str = "airflow-home") -> Path:
        home = tmp_path_factory.mktemp(name)
        shutil.copyfile(migrated_airflow_db, home / "airflow.db")
        return home

    return make


@pytest.fixture
def airflow_home(airflow_home_factory: Callable[[str], Path]) -> Path:
    """A fresh AIRFLOW_HOME with a migrated metadata DB, for this test only."""
    return airflow_home_factory("airflow-home")


# The suite is a gate: property tests run the same examples on every machine (derandomize), so a red
# run is reproducible. `HYPOTHESIS_PROFILE=explore make test` draws new examples to hunt for bugs.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("gate", derandomize=True, print_blob=True)
_hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))
