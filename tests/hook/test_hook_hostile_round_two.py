"""Issue 23, the hook's findings against scripted servers on 127.0.0.1, both paths where both exist.

#7 tenants apart on the shared async session (no cookie jar); #9 the key echoed percent-encoded is scrubbed
from exceptions and trigger events; #13 TLS verification off is warned on both paths, and a CA bundle that is
not a regular file (a FIFO) never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_seedance.errors import SeedanceConnectionError, SeedanceError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

from .both_paths import MODES, get_job, submit
from .conftest import set_connection
from .scripted_server import HOSTILE_KEY, Reply, Request, ScriptedServer, http_response, job_body
from .scripted_server import hostile as hostile  # the fixtures
from .scripted_server import scripted_server as scripted_server
from .test_hook_security_mends import every_text_of

KEY = HOSTILE_KEY
ENCODINGS: dict[str, Callable[[str], str]] = {
    "underscores": lambda k: k.replace("_", "%5F"),
    "every-char-lower": lambda k: "".join(f"%{ord(c):02x}" for c in k),
    "every-other-char": lambda k: "".join(f"%{ord(c):02X}" if i % 2 else c for i, c in enumerate(k)),
}


def _echo_encoded(encode: Callable[[str], str], status: int) -> Callable[[Request], Reply]:
    def handler(request: Request) -> Reply:
        key = request.headers.get("authorization", "").split()[-1]
        body = {"success": False, "error": {"code": "bad", "message": f"key {encode(key)} is not valid here"}}
        return Reply(http_response(status, json.dumps(body)))

    return handler


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["get_job", "submit"])
def test_a_percent_encoded_key_echo_is_scrubbed(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook],
    encoding: str, status: int, mode: str, operation: str,
) -> None:
    encoded = ENCODINGS[encoding](KEY)
    hostile(_echo_encoded(ENCODINGS[encoding], status))
    hook = make_hook("hostile", max_retries=0)
    with pytest.raises(SeedanceError) as info:
        get_job(hook, mode, "req_1") if operation == "get_job" else submit(hook, mode)
    text = every_text_of(info.value)
    assert encoded not in text
    assert encoded.lower() not in text.lower()
    assert "***" in str(info.value)  # the echo reached the message, scrubbed


async def test_a_percent_encoded_key_echo_never_reaches_a_trigger_event(
    hostile: Callable[..., ScriptedServer],
) -> None:
    hostile(_echo_encoded(ENCODINGS["underscores"], 401))
    trigger = SeedanceJobTrigger("req_1", seedance_conn_id="hostile", poll_interval=0.05, max_poll_interval=0.1)
    events = [event.payload async for event in trigger.run()]
    assert [e["event"] for e in events] == ["error"]
    payload = json.dumps(events[0])
    assert ENCODINGS["underscores"](KEY) not in payload
    assert KEY not in payload
    assert "***" in payload


# -- #7: tenants apart ---------------------------------------------------------------------------------------


def test_two_keys_on_one_host_share_no_cookie(
    scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def handler(request: Request) -> Reply:
        # The server hands tenant A a session cookie; tenant B must never send it.
        headers = {"Set-Cookie": "tenant=A-secret; Path=/"} if "sd2_tenant_a" in request.headers.get(
            "authorization", "") else {}
        return Reply(http_response(200, json.dumps(job_body("req_1")), headers=headers))

    server = scripted_server(handler)
    # A host name, not an IP: aiohttp's cookie jar keeps no cookie of an IP address anyway.
    base_url = server.base_url.replace("127.0.0.1", "localhost")
    set_connection(monkeypatch, "tenant_a", host=base_url, password="sd2_tenant_a")
    set_connection(monkeypatch, "tenant_b", host=base_url, password="sd2_tenant_b")

    async def both() -> None:
        a, b = SeedanceHook("tenant_a", max_retries=0), SeedanceHook("tenant_b", max_retries=0)
        try:
            await a.aget_job("req_1")
            await a.aget_job("req_1")
            await b.aget_job("req_1")
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(both())
    assert len(server.requests) == 3
    for request in server.requests:
        assert "A-secret" not in request.headers.get("cookie", "")


# -- #13: TLS off is said; a CA bundle that is a FIFO does not block ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_tls_verification_off_is_warned(
    hostile: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook],
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], mode: str,
) -> None:
    server = hostile(lambda r: Reply(http_response(200, json.dumps(job_body("req_1")))))
    set_connection(monkeypatch, "lax", host=server.base_url, password="sd2_lax", extra={"verify_ssl": False})
    caplog.set_level(logging.WARNING)
    get_job(make_hook("lax"), mode, "req_1")
    out = capsys.readouterr()
    assert "TLS certificate verification is OFF" in caplog.text + out.out + out.err


def test_a_ca_bundle_that_is_a_fifo_is_refused_without_blocking(
    monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook], tmp_path: Path,
) -> None:
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)  # no writer: opening it for reading would block for ever
    set_connection(monkeypatch, "fifo", host="https://127.0.0.1:9", password="sd2_fifo",
                   extra={"ca_bundle": str(fifo)})
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            asyncio.run(make_hook("fifo").aget_job("req_1"))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=30)  # a guard against a hang, not a timing assertion
    assert not worker.is_alive(), "reading the CA bundle blocked"
    assert len(outcome) == 1
    assert isinstance(outcome[0], SeedanceConnectionError)
    assert "ca_bundle" in str(outcome[0])


# -- #2: no answer about a job makes the event loop decode more than MAX_JOB_ANSWER_BYTES ------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [200, 400, 500])
def test_an_oversized_answer_about_a_job_is_refused_unread(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, status: int,
) -> None:
    from airflow_provider_seedance.errors import SeedanceResponseError
    from airflow_provider_seedance.hooks._transport import MAX_JOB_ANSWER_BYTES

    # Many small objects: the shape that costs json.loads (and the key scrub) most per byte.
    filler = [{"a": i} for i in range(MAX_JOB_ANSWER_BYTES // 8)]
    body = json.dumps({**job_body("req_1"), "status": "processing", "junk": filler})
    assert MAX_JOB_ANSWER_BYTES < len(body) < 4 * 1024 * 1024  # within the old 4 MiB cap, past the new one
    hostile(lambda r: Reply(http_response(status, body)))
    with pytest.raises(SeedanceResponseError, match="larger than"):
        get_job(make_hook("hostile", max_retries=0), mode, "req_1")
