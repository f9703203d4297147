"""A connection host is read as the HTTP clients read it (hostile review, round two), on both paths.

``http://<remote>:PORT\\@127.0.0.1`` looked like loopback to urlsplit (host ``127.0.0.1``: plain http
allowed) while urllib3 connected to ``<remote>``, sending ``Authorization: Bearer sd2_...`` in clear. Here
``remote.test`` is a stand-in for a remote host: a test-only resolver maps it to the hostile loopback
server, so nothing leaves this machine. User info in the host (``http://user:pass@host``) put the password
in the "API at ..." log line and in test_connection()'s message: such hosts are refused, redacted.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_seedance.errors import SeedanceConnectionError
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .both_paths import MODES, get_job
from .conftest import set_connection
from .scripted_server import HOSTILE_KEY, Reply, Request, ScriptedServer, http_response, job_body
from .scripted_server import scripted_server as scripted_server  # the fixture


@pytest.fixture
def remote_test_resolves_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "remote.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _answers(request: Request) -> Reply:
    return Reply(http_response(200, json.dumps(job_body(request.path.rsplit("/", 1)[-1]))))


@pytest.mark.usefixtures("remote_test_resolves_to_loopback")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", ["http://remote.test:{port}\\@127.0.0.1", "remote.test:{port}\\@127.0.0.1",
                                  "http://remote.test:{port}\\@localhost/"])
def test_a_backslash_host_is_refused_and_the_key_never_sent(
    scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer],
    make_hook: Callable[..., SeedanceHook], monkeypatch: pytest.MonkeyPatch, mode: str, form: str,
) -> None:
    server = scripted_server(_answers)
    set_connection(monkeypatch, "sneaky", host=form.format(port=server.port), password=HOSTILE_KEY)

    with pytest.raises(SeedanceConnectionError) as info:
        get_job(make_hook("sneaky"), mode, "req_1")

    assert "'sneaky'" in str(info.value)
    assert "field 'host'" in str(info.value)
    assert "backslash" in str(info.value)
    assert server.requests == []  # nothing sent, so no key in clear


@pytest.mark.parametrize("mode", MODES)
def test_user_info_in_the_host_is_refused_and_never_shown(
    scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer],
    make_hook: Callable[..., SeedanceHook], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    server = scripted_server(_answers)
    password = "HostPassw0rdInTheUrl"
    set_connection(monkeypatch, "userinfo", host=f"http://admin:{password}@127.0.0.1:{server.port}",
                   password=HOSTILE_KEY)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SeedanceConnectionError) as info:
        get_job(make_hook("userinfo"), mode, "req_1")
    ok, message = make_hook("userinfo").test_connection()

    assert not ok
    assert "user info" in message
    assert "user info" in str(info.value)
    assert password not in str(info.value) + message + caplog.text
    assert server.requests == []
