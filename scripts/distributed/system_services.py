"""PostgreSQL and Redis from the OS packages, each with a throwaway data directory, on 127.0.0.1 only.

When a server binary is missing and this is a Debian/Ubuntu machine where we are root, the package is
installed with ``apt-get`` (services are not started by the package: ``RUNLEVEL=1``). Anywhere else
the run stops with a message saying what to install. Nothing is skipped silently.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from processes import ProcessRegistry

__all__ = ["MissingDependencyError", "ensure_os_packages", "free_port", "start_postgres", "start_redis"]

#: binary -> Debian package providing it
PACKAGES = {"postgres": "postgresql", "redis-server": "redis-server"}
#: Debian package -> Homebrew formula
BREW = {"postgresql": "postgresql", "redis-server": "redis"}


class MissingDependencyError(RuntimeError):
    """A server the run needs is not installed and could not be installed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin_dir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres`` (Debian keeps them off PATH, per major version)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _missing() -> list[str]:
    missing = []
    if _postgres_bin_dir() is None:
        missing.append(PACKAGES["postgres"])
    if shutil.which("redis-server") is None:
        missing.append(PACKAGES["redis-server"])
    return missing


def ensure_os_packages() -> None:
    """Install PostgreSQL / Redis with apt-get when missing (root on Debian), else fail clearly."""
    missing = _missing()
    if not missing:
        return
    hint = (f"Missing OS packages: {' '.join(missing)}. Install them (Debian/Ubuntu: "
            f"`apt-get install -y {' '.join(missing)}`; macOS: `brew install {' '.join(BREW[m] for m in missing)}`) "
            "and run again.")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingDependencyError(hint)
    print(f"==> installing {' '.join(missing)} with apt-get", flush=True)
    # RUNLEVEL=1: the packages' scripts do not start the system-wide services we do not want.
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        if subprocess.run(install, env=env, check=False).returncode != 0:
            raise MissingDependencyError(f"apt-get could not install {' '.join(missing)}. {hint}")
    still = _missing()
    if still:
        raise MissingDependencyError(f"still missing after apt-get: {' '.join(still)}. {hint}")


def _wait_port(port: int, timeout: float, what: str, registry: ProcessRegistry, name: str) -> None:
    deadline = time.monotonic() + timeout
    service = registry.services[name]
    while True:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if service.popen.poll() is not None:
            raise RuntimeError(f"{what} exited with code {service.popen.returncode}:\n{service.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f} s:\n{service.log_tail()}")
        time.sleep(0.2)


def start_postgres(registry: ProcessRegistry, base: Path, password: str) -> int:
    """initdb a fresh cluster under ``base``, start it on a free port, create role/database ``airflow``.

    :param registry: where the server is recorded.
    :param base: its directory (created).
    :param password: the ``airflow`` role's password.
    :return: the port.
    """
    import psycopg2  # installed by `make e2e-distributed` (apache-airflow[postgres])

    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise MissingDependencyError("PostgreSQL server binaries (initdb, postgres) not found")
    # PostgreSQL refuses to run as root: use the package's system user then.
    user = "postgres" if os.geteuid() == 0 else None
    data, sockets = base / "data", base / "sockets"
    for path in (base, data, sockets):
        path.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(path, user, user)
    data.chmod(0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    initdb = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
                            env=env, user=user, capture_output=True, text=True, check=False)
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
    port = free_port()
    registry.start("postgres", [
        str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={sockets}", "-c", "max_connections=200",
        # Throwaway data: durability buys nothing here and costs disk syncs on a shared CI machine.
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
    ], env=env, user=user)
    _wait_port(port, 60, "PostgreSQL", registry, "postgres")
    # Superuser over the Unix socket (trust), only to create the application role and database.
    deadline = time.monotonic() + 30
    while True:
        try:
            admin = psycopg2.connect(host=str(sockets), port=port, user="postgres", dbname="postgres")
            break
        except psycopg2.OperationalError:  # accepting TCP before it finished starting up
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE airflow LOGIN PASSWORD %s", (password,))
        cur.execute("CREATE DATABASE airflow OWNER airflow")
    admin.close()
    return port


def start_redis(registry: ProcessRegistry, base: Path, password: str) -> int:
    """Start a Redis server with no persistence on a free port, password protected.

    :param registry: where the server is recorded.
    :param base: its working directory (created).
    :param password: the ``requirepass`` password.
    :return: the port.
    """
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise MissingDependencyError("redis-server not found")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # The password goes in a config file, not the command line (visible to every local user via ps).
    conf = base / "redis.conf"
    conf.write_text("\n".join([
        "bind 127.0.0.1", f"port {port}", f"dir {base}", 'save ""', "appendonly no", "daemonize no",
        "protected-mode yes", f"requirepass {password}", "",
    ]), encoding="utf-8")
    conf.chmod(0o600)
    registry.start("redis", [redis_server, str(conf)], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    _wait_port(port, 30, "Redis", registry, "redis")
    return port
