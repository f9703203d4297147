"""The core's mends, proved against real loopback servers on both paths (requests and aiohttp).

- an answer about another request id is refused (malformed, retried), never delivered as ours;
- the API key is in no exception the hook raises, however a hostile server echoes it (cause/context walked);
- the ``ca_bundle`` extra and ``REQUESTS_CA_BUNDLE`` are trusted by both paths;
- ``allow_insecure_http``: plain http to a remote host is refused at connection load unless opted in;
- a 408 on a kept-alive connection is retried on a fresh connection, a POST included (408 = not processed).
"""

from __future__ import annotations

import json
import logging
import ssl
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceResponseError,
    SeedanceTransportError,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import JobStatus

from .both_paths import MODES, REQUEST, call, get_job, submit
from .conftest import FAST, RecordingServer, set_connection
from .scripted_server import HOSTILE_KEY, Reply, Request, ScriptedServer, http_response, job_body
from .scripted_server import hostile as hostile  # the fixtures
from .scripted_server import scripted_server as scripted_server

KEY = HOSTILE_KEY


# -- 1. an answer about another request is refused --------------------------------------------------------


def other_jobs_answer(wrong_times: int) -> Callable[[Request], Reply]:
    """Answers job B's 'succeeded' body for whatever was asked, ``wrong_times`` times; then the truth."""
    served = {"wrong": 0}

    def handler(request: Request) -> Reply:
        asked = request.path.rsplit("/", 1)[-1]
        if served["wrong"] < wrong_times:
            served["wrong"] += 1
            return Reply(http_response(200, json.dumps(job_body("req_B", "succeeded"))))
        return Reply(http_response(200, json.dumps(job_body(asked, "processing"))))

    return handler


@pytest.mark.parametrize("mode", MODES)
def test_another_jobs_answer_is_refused_and_retried_never_delivered(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str
) -> None:
    server = hostile(other_jobs_answer(wrong_times=10**6))
    hook = make_hook("hostile")
    with pytest.raises(SeedanceResponseError) as info:
        get_job(hook, mode, "req_A")
    assert "'req_B'" in str(info.value)
    assert info.value.request_id == "req_A"
    # A malformed answer is transient: every attempt of the policy was made, none was taken as the answer.
    assert len(server.requests) == FAST.max_attempts
    assert all(r.path.endswith("/req_A") for r in server.requests)


@pytest.mark.parametrize("mode", MODES)
def test_after_another_jobs_answers_the_right_one_is_delivered(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str
) -> None:
    server = hostile(other_jobs_answer(wrong_times=2))
    result = get_job(make_hook("hostile"), mode, "req_A")
    assert result.request_id == "req_A"
    assert result.status is JobStatus.PROCESSING  # not B's "succeeded"
    assert result.output_url is None  # and certainly not B's video
    assert len(server.requests) == 3


@pytest.mark.parametrize("mode", MODES)
def test_a_cancel_answered_about_another_job_is_refused(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str
) -> None:
    hostile(other_jobs_answer(wrong_times=10**6))
    hook = make_hook("hostile", max_retries=0)
    with pytest.raises(SeedanceResponseError, match="'req_B'"):
        call(hook, mode, lambda: hook.cancel_job("req_A"), lambda: hook.acancel_job("req_A"))


# -- 2. the API key is in no exception, whatever a server echoes ------------------------------------------


def _auth(request: Request) -> str:
    return request.headers.get("authorization", "")


ECHOES: dict[str, Callable[[Request], Reply]] = {
    # A 200 whose body is not JSON and quotes the header.
    "non-json-body": lambda r: Reply(http_response(200, f"<html>you sent {_auth(r)}</html>",
                                                   content_type="text/html")),
    # An invalid status line carrying the header: both clients raise, quoting the line.
    "invalid-status-line": lambda r: Reply(f"HTTP/1.1 2OO {_auth(r)}\r\nContent-Length: 0\r\n\r\n".encode(),
                                           close=True),
    "not-http-at-all": lambda r: Reply(f"{_auth(r)} garbage\r\n\r\n".encode(), close=True),
    # A header line without a colon (aiohttp raises quoting it; requests tolerates it).
    "broken-header-line": lambda r: Reply(f"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{_auth(r)}\r\n\r\nxx".encode(),
                                          close=True),
    # Broken chunked framing: the chunk size is the header.
    "broken-chunk-size": lambda r: Reply(
        f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{_auth(r)}\r\n".encode(), close=True),
    # A body shorter than its Content-Length, the header in the part that came.
    "short-body": lambda r: Reply(
        f"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{{\"token\": \"{_auth(r)}".encode(), close=True),
    "500-echo": lambda r: Reply(http_response(500, f"internal error, your header was {_auth(r)}",
                                              content_type="text/plain")),
    "500-json-echo": lambda r: Reply(http_response(500, json.dumps(
        {"success": False, "error": {"code": "boom", "message": f"bad {_auth(r)}"}}))),
    "401-json-echo": lambda r: Reply(http_response(401, json.dumps(
        {"success": False, "error": {"code": "unauthorized", "message": f"key {_auth(r)} refused"}}))),
    "redirect-location": lambda r: Reply(http_response(
        302, "", headers={"Location": f"https://evil.example/{_auth(r).split()[-1]}/login"})),
    # The key JSON-escaped (every character as \uXXXX): only the decoded answer holds it in clear.
    "429-json-escaped-echo": lambda r: Reply(http_response(429, json.dumps(
        {"success": False, "error": {"code": "rate_limited", "message": f"key {_auth(r)} is over its limit"}},
        ensure_ascii=False).replace(_auth(r), "".join(f"\\u{ord(c):04x}" for c in _auth(r))),
        headers={"Retry-After": "0"})),
}
#: Cases whose echo must show, scrubbed, in the message (proof the echo reached the text and was replaced).
SCRUBBED_IN_MESSAGE = {"non-json-body", "500-echo", "500-json-echo", "401-json-echo", "redirect-location",
                       "429-json-escaped-echo"}


def every_text_of(exc: BaseException) -> str:
    """Everything an exception could show: str, repr, args, attributes, cause and context (suppressed or
    not), recursively, and the full formatted traceback."""
    texts: list[str] = ["".join(traceback.format_exception(exc))]
    seen: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
            continue
        if isinstance(item, str):
            texts.append(item)
            continue
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        texts += [str(item), repr(item), repr(item.args)]
        stack += [item.__cause__, item.__context__, list(item.args), *vars(item).values()]
    return "\n".join(texts)


@pytest.mark.parametrize("case", sorted(ECHOES))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["get_job", "submit"])
def test_api_key_echoed_by_a_server_is_in_no_exception(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook],
    mode: str, case: str, operation: str,
) -> None:
    server = hostile(ECHOES[case])
    hook = make_hook("hostile", timeout=5.0)
    with pytest.raises(SeedanceError) as info:
        get_job(hook, mode, "req_1") if operation == "get_job" else submit(hook, mode)
    assert server.requests
    assert _auth(server.requests[0]) == f"Bearer {KEY}"  # the key really was echoed
    text = every_text_of(info.value)
    assert KEY not in text
    assert KEY[4:20] not in text  # not even a truncated piece of it
    if case in SCRUBBED_IN_MESSAGE:
        assert "***" in str(info.value)


# -- 3. ca_bundle / REQUESTS_CA_BUNDLE trusted by both paths ----------------------------------------------


@pytest.fixture
def tls_server(
    recording_server: Callable[..., RecordingServer], self_signed_tls: ssl.SSLContext, tmp_path: Path
) -> tuple[RecordingServer, str]:
    """An https server on 127.0.0.1 with a self-signed certificate, and the PEM file of that certificate."""
    server = recording_server(tls_context=self_signed_tls, status=200, body=job_body("req_tls"))
    cert = tmp_path / "cert.pem"  # written by self_signed_tls
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    return server, str(cert)


@pytest.mark.parametrize("mode", MODES)
def test_self_signed_server_is_refused_without_a_ca_bundle(
    tls_server: tuple[RecordingServer, str], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    server, _cert = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    set_connection(monkeypatch, "tls", host=server.base_url, password="sd2_tls")
    with pytest.raises(SeedanceTransportError) as info:
        get_job(make_hook("tls", max_retries=0), mode, "req_tls")
    assert info.value.sent is False
    assert "certificate" in str(info.value).lower()
    assert server.seen == []


@pytest.mark.parametrize("mode", MODES)
def test_ca_bundle_extra_is_trusted(
    tls_server: tuple[RecordingServer, str], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    server, cert = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    set_connection(monkeypatch, "tls", host=server.base_url, password="sd2_tls", extra={"ca_bundle": cert})
    result = get_job(make_hook("tls", max_retries=0), mode, "req_tls")
    assert result.request_id == "req_tls"
    assert [r["headers"]["Authorization"] for r in server.seen] == ["Bearer sd2_tls"]


@pytest.mark.parametrize("mode", MODES)
def test_requests_ca_bundle_environment_is_trusted(
    tls_server: tuple[RecordingServer, str], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    set_connection(monkeypatch, "tls", host=server.base_url, password="sd2_tls")
    assert get_job(make_hook("tls", max_retries=0), mode, "req_tls").request_id == "req_tls"
    assert len(server.seen) == 1


@pytest.mark.parametrize("mode", MODES)
def test_the_ca_bundle_extra_wins_over_the_environment(
    tls_server: tuple[RecordingServer, str], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], tmp_path: Path, mode: str,
) -> None:
    import certifi

    server, cert = tls_server
    # The environment trusts the server, the connection's extra does not (public CAs only): the extra wins.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    set_connection(monkeypatch, "tls", host=server.base_url, password="sd2_tls",
                   extra={"ca_bundle": certifi.where()})
    with pytest.raises(SeedanceTransportError):
        get_job(make_hook("tls", max_retries=0), mode, "req_tls")
    assert server.seen == []


# -- 4. allow_insecure_http ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_plain_http_to_a_remote_host_is_refused_naming_the_extra(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    # A proxy on loopback would carry the request anywhere: it must see nothing.
    proxy = recording_server(status=200, body=job_body("req_1"))
    set_connection(monkeypatch, "insecure", host="http://api.seedance.example", password="sd2_clear",
                   extra={"proxies": {"http": proxy.base_url}})
    hook = make_hook("insecure")
    with pytest.raises(SeedanceConnectionError) as info:
        get_job(hook, mode, "req_1")
    message = str(info.value)
    assert "allow_insecure_http" in message
    assert "'insecure'" in message
    assert "sd2_clear" not in message
    assert proxy.seen == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flag", [True, "true"])
def test_plain_http_to_a_remote_host_with_the_opt_in_is_sent(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], mode: str, flag: Any,
) -> None:
    proxy = recording_server(status=200, body=job_body("req_1"))
    set_connection(monkeypatch, "insecure", host="http://api.seedance.example", password="sd2_clear",
                   extra={"proxies": {"http": proxy.base_url}, "allow_insecure_http": flag})
    assert get_job(make_hook("insecure"), mode, "req_1").request_id == "req_1"
    assert [r["path"] for r in proxy.seen] == ["http://api.seedance.example/api/open/v1/video/generations/req_1"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loopback", ["127.0.0.1", "localhost"])
def test_plain_http_to_loopback_needs_no_opt_in(
    recording_server: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], mode: str, loopback: str,
) -> None:
    server = recording_server(status=200, body=job_body("req_1"))
    port = server.base_url.rsplit(":", 1)[1]
    set_connection(monkeypatch, "local", host=f"http://{loopback}:{port}", password="sd2_local")
    assert get_job(make_hook("local"), mode, "req_1").request_id == "req_1"
    assert len(server.seen) == 1


# -- 5. a 408 on a kept-alive connection ------------------------------------------------------------------

TIMEOUT_408 = json.dumps({"success": False, "error": {"code": "request_timeout", "message": "idle too long"}})


def keep_alive_then_408(*, close_header: bool) -> tuple[Callable[[Request], Reply], list[str]]:
    """First request of a connection: answered (kept alive). Second: 408, the server then drops the connection.

    ``close_header``: the 408 says ``Connection: close`` and the socket is closed at once (RFC 9110's SHOULD).
    Without it, the socket stays open and a request sent on it anyway is dropped unanswered (the server is
    done with it), so reusing it costs a failed attempt, and for a POST an ambiguous one.
    Returns the handler and the list of jobs it created.
    """
    created: list[str] = []

    def handler(request: Request) -> Reply:
        if request.index_on_conn == 1:
            return Reply(http_response(408, TIMEOUT_408, keep_alive=not close_header), close=close_header)
        if request.index_on_conn >= 2:
            return Reply(b"", close=True)
        if request.method == "POST":
            created.append(f"req_{len(created) + 1}")
            return Reply(http_response(200, json.dumps(job_body(created[-1], "queued"))))
        return Reply(http_response(200, json.dumps(job_body(request.path.rsplit("/", 1)[-1]))))

    return handler, created


@pytest.mark.parametrize("mode", MODES)
def test_408_on_a_reused_connection_is_retried_on_a_fresh_one(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    handler, _created = keep_alive_then_408(close_header=True)
    server = hostile(handler)
    hook = make_hook("hostile")

    async def both() -> list[Any]:
        return [await hook.aget_job("req_1"), await hook.aget_job("req_2")]

    first, second = call(hook, mode, lambda: [hook.get_job("req_1"), hook.get_job("req_2")], both)
    assert (first.request_id, second.request_id) == ("req_1", "req_2")
    # req_2 went on the kept-alive connection, got the 408, and was sent again on a new one.
    assert [(r.conn, r.index_on_conn, r.path.rsplit("/", 1)[-1]) for r in server.requests] == [
        (0, 0, "req_1"), (0, 1, "req_2"), (1, 0, "req_2")
    ]
    assert server.connections == 2


@pytest.mark.parametrize("mode", MODES)
def test_a_post_answered_408_is_sent_again_and_creates_one_job(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    handler, created = keep_alive_then_408(close_header=True)
    server = hostile(handler)
    hook = make_hook("hostile")

    async def both() -> list[Any]:
        return [await hook.aget_job("req_0"), await hook.asubmit(REQUEST)]

    _status, job = call(hook, mode, lambda: [hook.get_job("req_0"), hook.submit(REQUEST)], both)
    assert created == [job.request_id]  # exactly one job: the 408'd POST was not processed, the re-send was
    assert [(r.conn, r.method) for r in server.requests] == [(0, "GET"), (0, "POST"), (1, "POST")]


@pytest.mark.parametrize(
    "mode",
    [
        "sync",
        "async",
    ],
)
def test_a_408_without_connection_close_is_not_retried_on_the_same_connection(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    handler, created = keep_alive_then_408(close_header=False)
    server = hostile(handler)
    hook = make_hook("hostile")

    async def both() -> list[Any]:
        return [await hook.aget_job("req_0"), await hook.asubmit(REQUEST)]

    try:
        _status, job = call(hook, mode, lambda: [hook.get_job("req_0"), hook.submit(REQUEST)], both)
    except SeedanceAmbiguousSubmitError as exc:
        pytest.fail(f"the POST was re-sent on the connection that answered 408: {exc}")
    assert created == [job.request_id]
    assert [(r.conn, r.index_on_conn, r.method) for r in server.requests] == [
        (0, 0, "GET"), (0, 1, "POST"), (1, 0, "POST")
    ]


# -- careless configuration of the CA bundle ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_ca_bundle_that_is_not_pem_is_a_connection_error_naming_the_extra(
    tls_server: tuple[RecordingServer, str], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], tmp_path: Path, mode: str,
) -> None:
    server, _cert = tls_server
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate\n")
    set_connection(monkeypatch, "tls", host=server.base_url, password="sd2_tls", extra={"ca_bundle": str(not_pem)})
    with pytest.raises(SeedanceConnectionError, match="ca_bundle"):
        get_job(make_hook("tls"), mode, "req_tls")
    assert server.seen == []


@pytest.mark.parametrize("mode", MODES)
def test_a_missing_requests_ca_bundle_is_a_seedance_error_naming_the_variable(
    tls_server: tuple[RecordingServer, str], monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook], tmp_path: Path, mode: str,
) -> None:
    server, _cert = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    set_connection(monkeypatch, "tls", host=server.base_url, password="sd2_tls")
    with pytest.raises(SeedanceError, match="REQUESTS_CA_BUNDLE"):
        get_job(make_hook("tls"), mode, "req_tls")


# -- the key in logs, when a server echoes it ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [
        "sync",
        "async",
    ],
)
def test_api_key_echoed_in_a_status_line_is_not_logged(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, mode: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    hostile(ECHOES["invalid-status-line"])
    with pytest.raises(SeedanceTransportError):
        get_job(make_hook("hostile", max_retries=1), mode, "req_1")
    out = capsys.readouterr()
    logged = out.out + out.err + caplog.text
    assert RETRY_LOG_LINE in logged  # the logs were captured
    assert KEY not in logged


RETRY_LOG_LINE = "retrying in"
