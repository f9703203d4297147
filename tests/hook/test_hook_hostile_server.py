"""A hostile or broken server against both paths: huge and slow answers, redirect loops, garbage status lines.

Figures measured while writing these (loopback, one attempt; RSS growth of a fresh client process):

- a 100 MB JSON status answer: both paths buffer all of it, +300 MB (bytes, decoded text, parsed JSON);
- a 100 MB answer that is not JSON: +700 MB before the message snippet stopped splitting the whole text, +300 MB now;
- an endless chunked answer: +500 MB in under 2 s on loopback before the stream ended; nothing caps the size;
- a body dripped a byte every 0.25 s with a 2 s timeout: aiohttp stops at 2.07 s, requests read on for 14.8 s
  (its timeout is per socket read, not per request); headers dripped: 2.09 s vs 21.5 s.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAPIError,
    SeedanceResponseError,
    SeedanceTransportError,
)
from airflow_provider_seedance.hooks._connection import ConnectionSettings
from airflow_provider_seedance.hooks._http import interpret_response
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .both_paths import MODES, REQUEST, call
from .conftest import FAST
from .scripted_server import Reply, Request, ScriptedServer, http_response, job_body
from .scripted_server import hostile as hostile  # the fixtures
from .scripted_server import scripted_server as scripted_server

# -- huge answers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["a ", "ab cd ", "<p>x</p>\n    "])
def test_a_huge_answer_that_is_not_json_costs_no_more_than_its_text(unit: str) -> None:
    settings = ConnectionSettings(conn_id="c", base_url="http://127.0.0.1", api_key="sd2_k")
    body = (unit * (8 * 1024 * 1024 // len(unit))).encode()
    tracemalloc.start()
    try:
        with pytest.raises(SeedanceResponseError, match="not JSON") as info:
            interpret_response(200, {}, body, settings, request_id="req_1")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The decoded text (and one stripped copy) is unavoidable once the body is read; splitting it whole into
    # words for a 200-character snippet cost 5 to 20 times the body.
    assert peak < 3 * len(body)
    message = str(info.value)
    assert len(message) < 300
    assert "..." in message


def test_a_short_answer_that_is_not_json_is_quoted_whole() -> None:
    settings = ConnectionSettings(conn_id="c", base_url="http://127.0.0.1", api_key="sd2_k")
    with pytest.raises(SeedanceResponseError) as info:
        interpret_response(200, {}, b"<html>\n  <b>Bad   gateway</b>\n</html>", settings)
    assert "<html> <b>Bad gateway</b> </html>" in str(info.value)
    with pytest.raises(SeedanceResponseError) as info:
        interpret_response(200, {}, b"not json " + b" " * 5000 + b"tail", settings)
    assert str(info.value).startswith("HTTP 200 with a body that is not JSON: not json ...")


# -- slow answers -------------------------------------------------------------------------------------------


def _counted_drip(prefix: bytes, dripped: bytes, every: float, sent: list[int], stop: threading.Event
                  ) -> Callable[[Request], Reply]:
    """A handler sending ``prefix`` at once, then ``dripped`` a byte every ``every`` seconds, each byte counted
    in ``sent`` (so a test judges where the client hung up by bytes, never by the clock)."""

    def handler(request: Request) -> Reply:
        def write(sock: socket.socket) -> None:
            sock.sendall(prefix)
            for byte in dripped:
                if stop.is_set():
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return
                sent.append(1)
                time.sleep(every)

        return Reply(write, close=True)

    return handler


def _dripped_status(stop: threading.Event, sent: list[int]) -> Callable[[Request], Reply]:
    body = json.dumps(job_body("req_1")).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    return _counted_drip(head, body, 0.1, sent, stop)


@pytest.mark.parametrize(
    "mode",
    [
        "sync",
        "async",
    ],
)
def test_a_dripped_body_is_cut_off_by_the_timeout(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    stop, sent = threading.Event(), []
    server = hostile(_dripped_status(stop, sent))
    total = len(json.dumps(job_body("req_1")))  # ~7 s to send it all
    hook = make_hook("hostile", timeout=0.5, max_retries=0)
    try:
        with pytest.raises(SeedanceTransportError) as info:
            call(hook, mode, lambda: hook.get_job("req_1"), lambda: hook.aget_job("req_1"))
        cut_at = len(sent)
    finally:
        stop.set()
    assert info.value.sent is True
    assert cut_at < total / 2  # cut off by the timeout long before the drip ended: judged by bytes, not the clock
    assert len(server.requests) == 1


def _dripped_headers(sent: list[int], stop: threading.Event) -> tuple[Callable[[Request], Reply], int]:
    """A server answering with its status line and headers dripped a byte every 50 ms (a slow loris before the
    body): requests' timeout bounds each read, so only a deadline for the whole call ends it."""
    head = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 400 + b"\r\nContent-Type: application/json\r\n"
    return _counted_drip(b"", head, 0.05, sent, stop), len(head)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("call_kind", ["status", "submit"])
def test_dripped_headers_cannot_outlive_the_timeout(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, call_kind: str,
) -> None:
    # Issue 23 #3: the sync hook was still blocked after 20 s with a 2 s timeout. The call now ends at its
    # deadline, long before the drip would: judged by how much of the drip was sent, not by the clock.
    sent: list[int] = []
    stop = threading.Event()
    handler, total = _dripped_headers(sent, stop)
    server = hostile(handler)
    hook = make_hook("hostile", timeout=0.5, max_retries=0)
    expected = SeedanceAmbiguousSubmitError if call_kind == "submit" else SeedanceTransportError
    if call_kind == "submit":
        sync, asynchronous = (lambda: hook.submit(REQUEST)), (lambda: hook.asubmit(REQUEST))
    else:
        sync, asynchronous = (lambda: hook.get_job("req_1")), (lambda: hook.aget_job("req_1"))
    try:
        with pytest.raises(expected):
            call(hook, mode, sync, asynchronous)
        cut_at = len(sent)
    finally:
        stop.set()
    assert cut_at < total / 2  # the drip was cut off early
    assert len(server.requests) == 1  # one attempt; a submit never re-sent


# -- redirects and garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_loop_is_never_followed(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, status: int,
) -> None:
    server = hostile(lambda r: Reply(http_response(status, "", headers={"Location": r.path})))
    hook = make_hook("hostile")
    with pytest.raises(SeedanceAPIError, match="unexpected redirect") as info:
        call(hook, mode, lambda: hook.get_job("req_1"), lambda: hook.aget_job("req_1"))
    assert info.value.status_code == status
    assert len(server.requests) == 1  # not followed, and not retried either


@pytest.mark.parametrize("mode", MODES)
def test_a_redirected_post_is_not_followed_nor_resent(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    server = hostile(lambda r: Reply(http_response(307, "", headers={"Location": "http://127.0.0.1:9/x"})))
    hook = make_hook("hostile")
    # A redirect after a POST (a 303 "See Other" usually means "created") may have created a job: ambiguous.
    with pytest.raises(SeedanceAmbiguousSubmitError, match="unexpected redirect"):
        call(hook, mode, lambda: hook.submit(REQUEST), lambda: hook.asubmit(REQUEST))
    assert [r.method for r in server.requests] == ["POST"]


GARBAGE_STATUS_LINES = [
    b"HTTP/1.1 2OO OK\r\n\r\n",
    b"HTTP/1.1 999999999999 OK\r\nContent-Length: 0\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"\x00\x01\x02\x03 binary\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nxx",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("raw", GARBAGE_STATUS_LINES, ids=["letter-o", "huge-status", "ssh", "binary", "neg-length"])
def test_garbage_answers_to_a_status_check_are_retried_then_fail_cleanly(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, raw: bytes,
) -> None:
    server = hostile(lambda r: Reply(raw, close=True))
    hook = make_hook("hostile")
    with pytest.raises((SeedanceTransportError, SeedanceResponseError)):
        call(hook, mode, lambda: hook.get_job("req_1"), lambda: hook.aget_job("req_1"))
    assert len(server.requests) == FAST.max_attempts  # transient for a read: every attempt made


@pytest.mark.parametrize("mode", MODES)
def test_garbage_answer_to_a_submit_is_ambiguous_and_never_resent(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    server = hostile(lambda r: Reply(b"HTTP/1.1 2OO OK\r\n\r\n", close=True))
    hook = make_hook("hostile")
    with pytest.raises(SeedanceAmbiguousSubmitError):
        call(hook, mode, lambda: hook.submit(REQUEST), lambda: hook.asubmit(REQUEST))
    assert [r.method for r in server.requests] == ["POST"]


# -- wrong ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "answer",
    [
        {"success": True, "requestId": "REQ_1", "status": "succeeded"},  # case differs
        {"success": True, "requestId": "req_1 ", "status": "succeeded"},  # trailing space
        {"success": True, "requestId": "", "status": "succeeded"},
        {"success": True, "requestId": 1, "status": "succeeded"},
        {"success": True, "requestId": None, "status": "succeeded"},
        [{"success": True, "requestId": "req_1", "status": "succeeded"}],
    ],
    ids=["case", "space", "empty", "number", "null", "array"],
)
def test_answers_with_a_wrong_or_broken_id_are_refused(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, answer: Any,
) -> None:
    hostile(lambda r: Reply(http_response(200, json.dumps(answer))))
    hook = make_hook("hostile", max_retries=0)
    with pytest.raises(SeedanceResponseError):
        call(hook, mode, lambda: hook.get_job("req_1"), lambda: hook.aget_job("req_1"))
