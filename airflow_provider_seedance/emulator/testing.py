"""Run the emulator from tests and scripts: in-process (background thread) or in a subprocess.

Example::

    from airflow_provider_seedance.emulator.testing import run_emulator

    with run_emulator(time_scale=0.05) as emu:
        os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = emu.connection_json
        emu.admin.add_fault(kind="http", status=429, retry_after=1, endpoint="status", times=2)
        ...
        assert emu.admin.stats()["submits"] == 1

This module imports only the standard library at import time (the server is imported when started),
so :class:`EmulatorAdmin` works cheaply from any process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = ["DEFAULT_API_KEY", "EmulatorAdmin", "EmulatorHandle", "run_emulator", "spawn_emulator"]

#: The test key the emulator accepts by default (same value as ``state.DEFAULT_API_KEY``).
DEFAULT_API_KEY = "sd2_test_emulator_key"
ADMIN_PREFIX = "/__emulator__"


class EmulatorAdmin:
    """HTTP client of the admin API (stdlib only, usable from any process).

    :param base_url: the emulator's base URL, e.g. ``http://127.0.0.1:8787``.
    :param timeout: seconds per admin call.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"EmulatorAdmin({self.base_url!r})"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - http to a local emulator by design
            self.base_url + ADMIN_PREFIX + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ValueError(f"emulator admin {method} {path} failed: HTTP {exc.code} {detail}") from None

    def reset(self) -> None:
        """Forget jobs, faults, next-job behaviours, log and counters; restore the start settings."""
        self._call("POST", "/reset")

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The request log, oldest first: ``method, path, endpoint, body, auth, status, requestId``.

        :param endpoint: only ``submit``, ``status``, ``cancel``, ``models`` or ``files`` requests.
        """
        return self._call("GET", "/requests" + (f"?endpoint={quote(endpoint)}" if endpoint else ""))

    def jobs(self) -> list[dict[str, Any]]:
        """The job table (status computed now)."""
        return self._call("GET", "/jobs")

    def job(self, request_id: str) -> dict[str, Any]:
        """One job-table row; ``KeyError`` when unknown.

        :param request_id: the job id.
        """
        for job in self.jobs():
            if job["requestId"] == request_id:
                return job
        raise KeyError(request_id)

    def stats(self) -> dict[str, Any]:
        """Counters: submits, gets, cancels, models, files, connections, jobs by status, credits."""
        return self._call("GET", "/stats")

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        """Inject a fault (see ``faults.FaultSpec``), e.g. ``kind="http", status=429, times=2``.

        :param spec: fault fields.
        """
        return self._call("POST", "/faults", spec)

    def faults(self) -> list[dict[str, Any]]:
        """Active faults with their hit counts."""
        return self._call("GET", "/faults")

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._call("DELETE", "/faults")

    def set_next_jobs(self, **behaviour: Any) -> dict[str, Any]:
        """Queue a behaviour for the next submitted job(s) (see ``jobs.JobBehaviour``).

        :param behaviour: e.g. ``fail_with="content policy"``, ``never_finishes=True``, ``count=3``.
        """
        return self._call("POST", "/next-jobs", behaviour)

    def next_jobs(self) -> list[dict[str, Any]]:
        """Behaviours still waiting for a job (with their remaining counts)."""
        return self._call("GET", "/next-jobs")

    def clear_next_jobs(self) -> None:
        """Drop queued behaviours."""
        self._call("DELETE", "/next-jobs")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings (see ``state.EmulatorConfig``; plus ``balances={key: credits}``).

        :param settings: e.g. ``time_scale=0.01``, ``balance=100``, ``api_keys=[...]``.
        """
        return self._call("POST", "/configure", settings)

    def config(self) -> dict[str, Any]:
        """Current settings (keys masked)."""
        return self._call("GET", "/config")

    def set_limits(
        self,
        max_concurrent_jobs: int = 0,
        concurrency_mode: str = "queue",
        requests_per_second: float = 0.0,
        retry_after_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Set the account limits per API key (all of them: omitted ones go back to "no limit").

        :param max_concurrent_jobs: jobs running at once per key (0 = no limit).
        :param concurrency_mode: past it, ``queue`` (job stays queued) or ``refuse`` (429 + Retry-After).
        :param requests_per_second: keyed requests per second per key (0 = no limit).
        :param retry_after_seconds: fixed Retry-After of their 429s (None: computed, whole seconds).
        """
        return self.configure(max_concurrent_jobs=max_concurrent_jobs, concurrency_mode=concurrency_mode,
                              requests_per_second=requests_per_second, retry_after_seconds=retry_after_seconds)

    def limit_stats(self) -> dict[str, Any]:
        """The limits' figures: running, waiting_for_slot, peaks, sent_429 (by concurrency and rate)."""
        return dict(self.stats()["limits"])

    def webhooks(self) -> list[dict[str, Any]]:
        """Webhook delivery attempts: requestId, url, attempt, httpStatus/error, delivered."""
        return self._call("GET", "/webhooks")

    def add_model(self, **item: Any) -> dict[str, Any]:
        """Add (or replace) a catalogue entry, e.g. ``id="seedance-3.0", durations=[5, 10]``.

        :param item: a catalogue item as served by ``GET /api/open/v1/models``.
        """
        return self._call("POST", "/models", item)

    def remove_model(self, model_id: str) -> None:
        """Remove a model from the catalogue.

        :param model_id: the model id.
        """
        self._call("DELETE", "/models/" + quote(model_id, safe=""))


@dataclass
class EmulatorHandle:
    """A running emulator.

    :param base_url: e.g. ``http://127.0.0.1:8787``.
    :param api_key: a key it accepts.
    """

    base_url: str
    api_key: str = DEFAULT_API_KEY
    admin: EmulatorAdmin = field(init=False)
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.admin = EmulatorAdmin(self.base_url)

    def __repr__(self) -> str:  # the key stays out of reprs
        return f"EmulatorHandle(base_url={self.base_url!r})"

    @property
    def connection_json(self) -> str:
        """JSON usable as ``AIRFLOW_CONN_SEEDANCE_DEFAULT``."""
        return connection_json(self.base_url, self.api_key)

    @property
    def connection_uri(self) -> str:
        """URI form of :attr:`connection_json` (``seedance://:KEY@127.0.0.1:PORT``)."""
        hostport = self.base_url.split("://", 1)[1]
        return f"seedance://:{quote(self.api_key, safe='')}@{hostport}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for an Airflow subprocess: the default Seedance connection."""
        return {"AIRFLOW_CONN_SEEDANCE_DEFAULT": self.connection_json}


def connection_json(base_url: str, api_key: str) -> str:
    """The Airflow connection JSON of an emulator.

    :param base_url: its base URL.
    :param api_key: the key to use.
    """
    return json.dumps({"conn_type": "seedance", "host": base_url, "password": api_key})


def _config_kwargs(
    time_scale: float | None, api_keys: Sequence[str] | None, balance: int | None, settings: dict[str, Any]
) -> dict[str, Any]:
    kwargs = dict(settings)
    if time_scale is not None:
        kwargs["time_scale"] = time_scale
    if api_keys is not None:
        kwargs["api_keys"] = tuple(api_keys)
    if balance is not None:
        kwargs["balance"] = balance
    return kwargs


@contextlib.contextmanager
def run_emulator(
    *,
    time_scale: float | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    api_keys: Sequence[str] | None = None,
    balance: int | None = None,
    **settings: Any,
) -> Iterator[EmulatorHandle]:
    """Run the emulator in a background thread with its own event loop.

    :param time_scale: multiplier of the default 1 s queued + 2 s processing (None: 1.0).
    :param port: TCP port (0: a free one).
    :param host: interface to bind.
    :param api_keys: accepted keys (default: :data:`DEFAULT_API_KEY`).
    :param balance: starting credits per key.
    :param settings: other ``EmulatorConfig`` fields.
    """
    from airflow_provider_seedance.emulator.runner import start_in_thread

    config_kwargs = _config_kwargs(time_scale, api_keys, balance, settings)
    running = start_in_thread(host, port, config_kwargs)
    try:
        keys = config_kwargs.get("api_keys") or (DEFAULT_API_KEY,)
        yield EmulatorHandle(base_url=running.base_url, api_key=keys[0])
    finally:
        running.stop()


@contextlib.contextmanager
def spawn_emulator(
    *,
    time_scale: float | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    api_keys: Sequence[str] | None = None,
    balance: int | None = None,
    startup_timeout: float = 30.0,
    max_concurrent_jobs: int | None = None,
    concurrency_mode: str | None = None,
    requests_per_second: float | None = None,
    retry_after_seconds: float | None = None,
) -> Iterator[EmulatorHandle]:
    """Run the emulator in a subprocess (``python -m airflow_provider_seedance.emulator``).

    :param time_scale: multiplier of the default durations.
    :param port: TCP port (0: a free one).
    :param host: interface to bind.
    :param api_keys: accepted keys.
    :param balance: starting credits per key.
    :param startup_timeout: seconds to wait for it to listen.
    :param max_concurrent_jobs: account limit: jobs per key running at once.
    :param concurrency_mode: ``queue`` or ``refuse`` past that limit.
    :param requests_per_second: account limit: keyed requests per second per key.
    :param retry_after_seconds: fixed Retry-After of the limits' 429s.
    """
    cmd = [sys.executable, "-m", "airflow_provider_seedance.emulator", "--host", host, "--port", str(port),
           "--machine-readable"]
    for flag, value in (("--max-concurrent-jobs", max_concurrent_jobs), ("--concurrency-mode", concurrency_mode),
                        ("--requests-per-second", requests_per_second),
                        ("--retry-after-seconds", retry_after_seconds)):
        if value is not None:
            cmd += [flag, str(value)]
    if time_scale is not None:
        cmd += ["--time-scale", str(time_scale)]
    for key in api_keys or ():
        cmd += ["--api-key", key]
    if balance is not None:
        cmd += ["--balance", str(balance)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    try:
        base_url = _read_base_url(proc, startup_timeout)
        key = api_keys[0] if api_keys else DEFAULT_API_KEY
        yield EmulatorHandle(base_url=base_url, api_key=key, process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read_base_url(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    result: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("SEEDANCE_EMULATOR_URL="):
                result.append(line.split("=", 1)[1].strip())
                break
        # Keep draining so the child never blocks on a full pipe.
        for _ in proc.stdout:
            pass

    reader = threading.Thread(target=read, name="seedance-emulator-stdout", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not result:
        if proc.poll() is not None:
            raise RuntimeError(f"seedance emulator exited with code {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise TimeoutError("seedance emulator did not start in time")
        time.sleep(0.01)
    return result[0]
