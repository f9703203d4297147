"""Every way of waiting gives the same outcome for the same failure (issue 22 item 1, "One wait decision").

Each scenario below (a DNS failure, a refused or reset connection, 5xx, 429, 401/403, 404, a malformed answer)
states its expected outcome once, and runs through the three modes: the trigger (``SeedanceJobTrigger.run``),
the in-worker wait (``InWorkerWait.run``, used by ``SeedanceGenerateOperator(deferrable=False)``) and the
sensor's poke. The same table is in ``docs/architecture.rst`` ("The road of one status poll").
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import PokeReturnValue

import airflow_provider_seedance.hooks._retry as retry_module
from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.hooks._retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators._wait import InWorkerWait
from airflow_provider_seedance.polling import PollSchedule
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor
from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger
from airflow_provider_seedance.waiting import EVENT_COMPLETED, EVENT_ERROR, EVENT_TIMEOUT, JobEvent, JobWait

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hook"))
from scripted_server import Reply, Request, ScriptedServer, http_response
from scripted_server import scripted_server as scripted_server  # the fixture

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

LOG = logging.getLogger(__name__)
CONN_ID = "seedance_wait_modes"
POLL = 0.05
#: A transient failure that lasts for ever ends at this deadline; every other case has ample time.
SHORT_DEADLINE = 1.0
LONG_DEADLINE = 20.0
#: How many status checks a passing fault spoils: enough that the wait must sit it out more than once.
SPOILED = 3
WAITED_THROUGH = "status check failed"  # what the decision logs for every failure it waits through

DONE, DEADLINE, FAIL = "done", "deadline", "fail"
MODES = ("trigger", "in_worker_wait", "sensor_poke")


@dataclass(frozen=True)
class Scenario:
    """One failure of a status check, and the one outcome every mode must give for it.

    :param expect: ``done`` (waited through, then the job's real result is delivered), ``deadline`` (waited
        through until the deadline: a timeout event, or a poke that keeps saying "not yet"), or ``fail``
        (given up at the first failure, with an error naming it).
    :param server: what the connection points at: the ``emulator`` (with ``fault`` on its status answers), an
        ``unresolvable`` host name, a ``closed_port`` on 127.0.0.1, or a server that ``resets`` connections.
    :param fault: the emulator fault on ``GET`` of the status endpoint.
    :param error: for ``fail``: the error class and the text its message must hold (``HTTP 401``).
    """

    expect: str
    server: str = "emulator"
    fault: dict[str, Any] | None = None
    error: tuple[str, str] | None = None


def _status_fault(kind: str = "http", *, times: int = SPOILED, **spec: Any) -> dict[str, Any]:
    # A neutral body: the status named in an error must come from our code, not from the vendor's text.
    body = {"body": "refused by the test"} if kind == "http" else {}
    return {"kind": kind, "endpoint": "status", "method": "GET", "times": times, **body, **spec}


SCENARIOS: dict[str, Scenario] = {
    # The job exists and was submitted through the same host: a resolver or network blip is sat out.
    "dns_failure": Scenario(DEADLINE, server="unresolvable"),
    "connection_refused": Scenario(DEADLINE, server="closed_port"),
    "connection_reset": Scenario(DONE, server="resets"),
    "connection_closed_without_answer": Scenario(DONE, fault=_status_fault("close")),
    "answer_cut_off": Scenario(DONE, fault=_status_fault("drop")),
    "http_500": Scenario(DONE, fault=_status_fault(status=500)),
    "http_502": Scenario(DONE, fault=_status_fault(status=502)),
    "http_503": Scenario(DONE, fault=_status_fault(status=503)),
    "http_503_for_ever": Scenario(DEADLINE, fault=_status_fault(status=503, times=-1)),
    "http_429": Scenario(DONE, fault=_status_fault(status=429, retry_after="0")),
    "malformed_json": Scenario(DONE, fault=_status_fault("malformed")),
    "malformed_shape": Scenario(DONE, fault=_status_fault("malformed", body='{"success": true, "status": 7}')),
    # A rejected key or an unknown id will not fix itself: the wait fails at once, naming the status.
    "http_401": Scenario(FAIL, fault=_status_fault(status=401, times=-1), error=("SeedanceAuthError", "HTTP 401")),
    "http_403": Scenario(FAIL, fault=_status_fault(status=403, times=-1), error=("SeedanceAuthError", "HTTP 403")),
    "http_404": Scenario(FAIL, fault=_status_fault(status=404, times=-1),
                         error=("SeedanceNotFoundError", "HTTP 404")),
}


@dataclass(frozen=True)
class Outcome:
    """How one mode's wait ended, in terms all modes share.

    :param kind: ``done``, ``deadline`` or ``fail``.
    :param detail: ``done``: the output URL delivered; ``fail``: the error's class name; else empty.
    :param message: the full text (a ``fail`` must name the status).
    """

    kind: str
    detail: str = ""
    message: str = ""


# -- the environment: an unresolvable name, a refused port, a resetting server --------------------------------


@pytest.fixture(autouse=True)
def small_retry_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retry inside the hook for a poll (every failure reaches the wait decision, which is what is compared)
    and a quick cancel at the deadline."""
    tiny = RetryPolicy(max_attempts=1, max_total_seconds=1.0, initial_wait=0.01, max_wait=0.02, jitter=0.0)
    monkeypatch.setitem(retry_module.POLICIES, "poll", tiny)
    monkeypatch.setitem(retry_module.POLICIES, "cancel", RetryPolicy(
        max_attempts=2, max_total_seconds=1.0, initial_wait=0.01, max_wait=0.02, jitter=0.0))


@pytest.fixture
def resolver_refuses_invalid(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``*.invalid`` never resolves (RFC 6761), answered here so no DNS query leaves the machine (the configured
    resolver is not on loopback). Returns the names asked for: one per connection attempt.

    Both clients resolve through ``socket.getaddrinfo`` (urllib3, and aiohttp's threaded resolver).
    """
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.rstrip(".").endswith(".invalid"):
            asked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port bound but never listening: every connection is refused, and no one else can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _reset(sock: socket.socket) -> None:
    # Linger 0: close() sends a RST instead of a FIN, the client sees "connection reset by peer".
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _resetting_proxy(emu: EmulatorHandle, resets: list[int]) -> Callable[[Request], Reply]:
    """Reset the first ``SPOILED`` connections' requests, then pass every request on to the emulator."""

    def handle(request: Request) -> Reply:
        if len(resets) < SPOILED:
            resets.append(request.conn)
            return Reply(_reset)
        forwarded = urllib.request.Request(  # the emulator, on loopback
            emu.base_url + request.path, method=request.method, data=request.body or None,
            headers={k: v for k, v in request.headers.items() if k in ("authorization", "content-type")})
        try:
            with urllib.request.urlopen(forwarded, timeout=10) as answer:
                return Reply(http_response(answer.status, answer.read()))
        except urllib.error.HTTPError as exc:
            return Reply(http_response(exc.code, exc.read()))

    return handle


# -- the three modes, each read as an Outcome -----------------------------------------------------------------


def _from_event(event: JobEvent) -> Outcome:
    if event.event == EVENT_COMPLETED and event.result is not None:
        return Outcome(DONE, event.result.output_url or f"(no URL: {event.result.raw_status})", event.message)
    if event.event == EVENT_TIMEOUT:
        return Outcome(DEADLINE, message=event.message)
    assert event.event == EVENT_ERROR, event
    name = event.message.split("failed permanently: ", 1)[-1].split(":", 1)[0]
    return Outcome(FAIL, name, event.message)


def _run_trigger(rid: str, deadline: float) -> Outcome:
    trigger = SeedanceJobTrigger(rid, seedance_conn_id=CONN_ID, deadline=deadline, started_at=time.time(),
                                 poll_interval=POLL, max_poll_interval=2 * POLL, owns_job=True)

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger yielded no event")

    return _from_event(JobEvent.from_payload(asyncio.run(first_event())))


def _run_in_worker_wait(rid: str, deadline: float) -> Outcome:
    wait = JobWait(rid, time.time(), deadline, PollSchedule(initial=POLL, maximum=2 * POLL))
    return _from_event(InWorkerWait().run(SeedanceHook(seedance_conn_id=CONN_ID), wait, log=LOG))


class _TaskInstance:
    def xcom_push(self, key: str, value: object) -> None:
        pass


def _run_sensor_pokes(rid: str, deadline: float) -> Outcome:
    """Poke as the sensor's own loop does until done, failed, or the deadline (its ``timeout``) passes."""
    sensor = SeedanceJobSensor(task_id="wait", request_id=rid, seedance_conn_id=CONN_ID, poke_interval=POLL)
    context: Any = {"ti": _TaskInstance()}
    try:
        while time.time() < deadline:
            try:
                verdict = sensor.poke(context)
            except SeedanceError as exc:
                return Outcome(FAIL, type(exc).__name__, f"{type(exc).__name__}: {exc}")
            if verdict is not False:
                assert isinstance(verdict, PokeReturnValue), verdict
                assert verdict.is_done
                return Outcome(DONE, str(verdict.xcom_value))
            time.sleep(POLL)
        return Outcome(DEADLINE)
    finally:
        sensor.hook.close()


RUNNERS: dict[str, Callable[[str, float], Outcome]] = {
    "trigger": _run_trigger, "in_worker_wait": _run_in_worker_wait, "sensor_poke": _run_sensor_pokes,
}


def _submit(prompt: str) -> str:
    with SeedanceHook() as hook:  # seedance_default: the emulator, without faults yet
        return hook.submit(GenerationRequest(prompt=prompt)).request_id


# -- the test -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_mode_gives_the_scenarios_one_outcome(
    name: str, mode: str, emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    resolver_refuses_invalid: list[str], closed_port: int,
    scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer],
) -> None:
    scenario = SCENARIOS[name]
    caplog.set_level(logging.WARNING)
    resets: list[int] = []
    rid = "req_never_reached"
    if scenario.server in ("emulator", "resets"):
        rid = _submit(f"{name} / {mode}")
    base_url = {
        "emulator": emu.base_url,
        "unresolvable": "https://nonexistent.invalid",
        "closed_port": f"http://127.0.0.1:{closed_port}",
        "resets": scripted_server(_resetting_proxy(emu, resets)).base_url if scenario.server == "resets" else "",
    }[scenario.server]
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}",
                       json.dumps({"conn_type": "seedance", "host": base_url, "password": emu.api_key}))
    if scenario.fault is not None:
        emu.admin.add_fault(**scenario.fault)

    deadline = time.time() + (SHORT_DEADLINE if scenario.expect == DEADLINE else LONG_DEADLINE)
    outcome = RUNNERS[mode](rid, deadline)

    status_checks = [r for r in emu.admin.requests("status") if r["method"] == "GET"]
    fault_hits = sum(f["hits"] for f in emu.admin.faults())
    # Airflow's task loggers (trigger, sensor) print through structlog, which also renders ours (the in-worker
    # wait's) while caplog records it too: the larger count, never the sum (one line may be in both).
    printed = capsys.readouterr()
    waited_through = max((printed.out + printed.err).count(WAITED_THROUGH),
                         sum(WAITED_THROUGH in r.getMessage() for r in caplog.records))
    emu.admin.clear_faults()
    if scenario.expect == DONE:
        with SeedanceHook() as hook:
            real = hook.get_job(rid)
        assert real.output_url
        assert outcome == Outcome(DONE, real.output_url, outcome.message), f"{name} in {mode}: {outcome}"
        assert (len(resets) if scenario.server == "resets" else fault_hits) == SPOILED  # the fault was met
        # At least one failed check reached the decision and was waited through (not every one: on the async
        # path aiohttp itself sends a GET again once when its connection is reset or closed).
        assert waited_through >= 1, f"{name} in {mode}: the failure reached the wait decision"
    elif scenario.expect == DEADLINE:
        assert outcome.kind == DEADLINE, f"{name} in {mode}: {outcome}"
        assert waited_through >= 2, f"{name} in {mode}: kept asking until the deadline ({waited_through})"
        if scenario.server == "unresolvable":
            assert len(resolver_refuses_invalid) >= 2
    else:
        assert scenario.error is not None
        error_class, status_text = scenario.error
        assert (outcome.kind, outcome.detail) == (FAIL, error_class), f"{name} in {mode}: {outcome}"
        assert status_text in outcome.message
        assert len(status_checks) == 1, f"{name} in {mode}: gave up at the first answer, not after waiting"
        assert waited_through == 0
        assert emu.admin.stats()["cancels"] == 0  # a failed wait cancels nothing
