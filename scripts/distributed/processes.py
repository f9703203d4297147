"""Every process the run starts: recorded by pid, sampled for memory, stopped by pid and process group.

Each service is started in its own session (``start_new_session``), so its process group id is its
pid. Children that leave that group (Airflow puts each task runner in a group of its own) are found
by walking the process tree: a sampler thread records every descendant it ever sees (pid + start
time, so a recycled pid is never signalled) and the stop path signals all of them. Nothing is ever
looked up or killed by name. ``pids.json`` in the run directory lists the live services at all
times, for a human to clean up should the driver itself be killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["MEASURED", "ProcessRegistry", "Service"]

#: Name prefixes of the services whose memory the run reports in detail.
MEASURED = ("triggerer-", "worker-")


@dataclass
class Service:
    """One started service (a process and everything it spawns).

    :param name: unique name, e.g. ``triggerer-1``.
    :param popen: the process.
    :param log_path: where its stdout/stderr go.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)
    #: pid -> create_time of every process of its tree the sampler has seen.
    seen: dict[int, float] = field(default_factory=dict)
    peak_rss: int = 0
    #: Proportional set size: shared pages split between the processes sharing them. Forked
    #: children (Celery pool, task runners) share most of their pages, which RSS counts once per process.
    peak_pss: int = 0
    killed_at: float | None = None

    @property
    def pid(self) -> int:
        """Pid of the main process (also its process group id)."""
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        """The main process and its living descendants."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log.

        :param lines: how many lines.
        """
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcessRegistry:
    """Start, sample and stop services.

    :param run_dir: the run directory (``pids.json`` and ``logs/`` live there).
    :param sample_interval: seconds between memory samples / descendant scans.
    """

    def __init__(self, run_dir: Path, sample_interval: float = 0.5) -> None:
        self.run_dir = run_dir
        self.log_dir = run_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.services: dict[str, Service] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, args=(sample_interval,), daemon=True,
                                         name="rss-sampler")
        self._sampler.start()

    # -- starting ------------------------------------------------------------------------------

    def start(self, name: str, cmd: Sequence[str], *, env: dict[str, str], user: str | None = None,
              cwd: Path | None = None) -> Service:
        """Start ``cmd`` in a new session, output to ``logs/<name>.log``.

        :param name: unique service name.
        :param cmd: the command.
        :param env: its full environment.
        :param user: run as this OS user (PostgreSQL refuses to run as root).
        :param cwd: working directory.
        """
        if name in self.services and self.services[name].popen.poll() is None:
            raise RuntimeError(f"{name} is already running")
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            popen = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, user=user, cwd=cwd)
        service = Service(name, popen, log_path)
        with self._lock:
            self.services[name] = service
            self._remember(service)
        self._write_pids()
        return service

    def adopt(self, name: str, popen: subprocess.Popen[bytes] | subprocess.Popen[str], log_path: Path) -> Service:
        """Record a process started elsewhere (e.g. by ``spawn_emulator``), for sampling and the final check.

        :param name: unique service name.
        :param popen: the process.
        :param log_path: its log (may not exist).
        """
        service = Service(name, popen, log_path)  # type: ignore[arg-type]
        with self._lock:
            self.services[name] = service
            self._remember(service)
        self._write_pids()
        return service

    # -- sampling ------------------------------------------------------------------------------

    def _remember(self, service: Service) -> None:
        rss = pss = 0
        # PSS reads /proc/<pid>/smaps_rollup: only for the services whose memory is reported.
        detailed = service.name.startswith(MEASURED)
        for proc in service.tree():
            try:
                service.seen.setdefault(proc.pid, proc.create_time())
                if detailed:
                    info = proc.memory_full_info()
                    rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
                else:
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        service.peak_rss = max(service.peak_rss, rss)
        service.peak_pss = max(service.peak_pss, pss)

    def _sample_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                for service in list(self.services.values()):
                    if service.killed_at is None:
                        self._remember(service)

    def _write_pids(self) -> None:
        data = {name: {"pid": s.pid, "pgid": s.pid, "log": str(s.log_path)}
                for name, s in self.services.items() if s.popen.poll() is None}
        tmp = self.run_dir / "pids.json.tmp"
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(self.run_dir / "pids.json")

    # -- stopping ------------------------------------------------------------------------------

    def kill(self, name: str) -> float:
        """SIGKILL a service's whole tree at once (its group, and descendants in other groups).

        :param name: the service.
        :return: ``time.monotonic()`` of the kill.
        """
        service = self.services[name]
        with self._lock:
            self._remember(service)
            service.killed_at = time.monotonic()
            _signal_all(service, signal.SIGKILL)
        service.popen.wait(timeout=30)
        self._write_pids()
        return service.killed_at

    def stop(self, name: str, *, sig: signal.Signals = signal.SIGTERM, grace: float = 20.0) -> None:
        """Graceful stop: ``sig`` to the main pid, then SIGKILL to whatever of its tree is left.

        :param name: the service.
        :param sig: the polite signal (PostgreSQL's fast shutdown is SIGINT).
        :param grace: seconds to wait for the main process.
        """
        service = self.services[name]
        with self._lock:
            self._remember(service)
        if service.popen.poll() is None:
            try:
                service.popen.send_signal(sig)
                service.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        with self._lock:
            self._remember(service)
            _signal_all(service, signal.SIGKILL)
            if service.killed_at is None:
                service.killed_at = time.monotonic()
        if service.popen.poll() is None:
            service.popen.wait(timeout=10)
        self._write_pids()

    def stop_all(self, order: Sequence[str] = ()) -> list[str]:
        """Stop every service (``order`` first, then the rest, newest first); never raises.

        :param order: names to stop first, in this order.
        :return: problems met (empty when all went well).
        """
        problems: list[str] = []
        names = [n for n in order if n in self.services]
        names += [n for n in reversed(list(self.services)) if n not in names]
        for name in names:
            try:
                self.stop(name, sig=signal.SIGINT if name == "postgres" else signal.SIGTERM)
            except Exception as exc:  # cleanup goes on for the others
                problems.append(f"stopping {name}: {exc}")
        self._stop.set()
        return problems

    def survivors(self) -> list[str]:
        """Processes recorded during the run that still exist (same pid and start time)."""
        alive = []
        for service in self.services.values():
            for pid, created in service.seen.items():
                if _same_process_alive(pid, created):
                    alive.append(f"{service.name}: pid {pid}")
        return alive

    def recorded_count(self) -> int:
        """How many distinct processes were recorded."""
        return sum(len(s.seen) for s in self.services.values())


def _same_process_alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_all(service: Service, sig: signal.Signals) -> None:
    """``sig`` to the service's process group and to every recorded descendant still alive."""
    # The group is signalled only while one of our processes is in it: a group id is the pid of its
    # leader, and once all members are gone the number may belong to somebody else.
    if any(_same_process_alive(pid, created) and _pgid(pid) == service.pid for pid, created in service.seen.items()):
        try:
            os.killpg(service.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid, created in service.seen.items():
        if _same_process_alive(pid, created):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
