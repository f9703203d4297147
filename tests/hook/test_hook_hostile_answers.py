"""Hostile answers through the hook, both paths (issue 23): a scripted server on 127.0.0.1 answers a submit or a
status check with a 400-digit charge, a list nested 200,000 deep, a negative charge, an unsafe request id, a
``file://`` output URL or no request id.

The deep list fails inside ``json.loads`` (the hook's ``interpret_response``), the others in the pure core.
A status check gets a :class:`SeedanceResponseError` (after its retries); a submit gets
:class:`SeedanceAmbiguousSubmitError` after exactly one POST: the job may exist and be charged, so it is never
re-sent. The same answers read by the pure core alone: tests/unit/test_hostile_answers.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_seedance.errors import SeedanceAmbiguousSubmitError, SeedanceResponseError
from airflow_provider_seedance.hooks.seedance import SeedanceHook

from .both_paths import MODES, get_job, submit
from .conftest import FAST
from .scripted_server import Reply, ScriptedServer, http_response
from .scripted_server import hostile as hostile  # the fixtures
from .scripted_server import scripted_server as scripted_server

HUGE_NUMBER = "1" + "0" * 399
DEEP = "[" * 200_000 + "]" * 200_000


def _answer(request_id: str, **fields: str) -> bytes:
    """A JSON answer with ``fields`` inserted as raw JSON text (a 400-digit number is valid JSON)."""
    parts = [f'"success": true, "requestId": {json.dumps(request_id)}']
    parts += [f'"{name}": {raw}' for name, raw in fields.items()]
    return ("{" + ", ".join(parts) + "}").encode()


#: name -> (answer to a submit, answer to a status check of req_1)
HOSTILE: dict[str, tuple[bytes, bytes]] = {
    "huge-charge": (_answer("req_1", status='"queued"', creditsCharged=HUGE_NUMBER),
                    _answer("req_1", status='"succeeded"', creditsCharged=HUGE_NUMBER)),
    "deep-list-charge": (_answer("req_1", status='"queued"', creditsCharged=DEEP),
                         _answer("req_1", status='"processing"', creditsCharged=DEEP)),
    "negative-charge": (_answer("req_1", status='"queued"', creditsCharged="-1000"),
                        _answer("req_1", status='"processing"', creditsCharged="-1000")),
    "path-id": (_answer("../../../../tmp/x/owned", status='"queued"', creditsCharged="64"),
                _answer("../../../../tmp/x/owned", status='"processing"')),
    "no-id": (b'{"success": true, "status": "queued", "creditsCharged": 64}',
              b'{"success": true, "status": "succeeded", "output": {"url": "https://cdn.example.com/v.mp4"}}'),
}


def _serve(hostile: Callable[..., ScriptedServer], body: bytes) -> ScriptedServer:
    return hostile(lambda r: Reply(http_response(200, body)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_answer_to_a_submit_is_ambiguous_and_never_resent(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, name: str,
) -> None:
    server = _serve(hostile, HOSTILE[name][0])
    hook = make_hook("hostile")
    with pytest.raises(SeedanceAmbiguousSubmitError) as info:
        submit(hook, mode)
    assert isinstance(info.value.cause, SeedanceResponseError)
    assert [r.method for r in server.requests] == ["POST"]  # one paid job at most, never three


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_answer_to_a_status_check_is_a_response_error(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, name: str,
) -> None:
    server = _serve(hostile, HOSTILE[name][1])
    hook = make_hook("hostile")
    with pytest.raises(SeedanceResponseError):
        get_job(hook, mode, "req_1")
    assert len(server.requests) == FAST.max_attempts  # a malformed answer to a read is asked again, boundedly


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "s3://bucket/req_1.mp4"])
def test_a_succeeded_status_with_an_output_url_that_is_not_http_is_no_success(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str, url: str,
) -> None:
    body: dict[str, Any] = {"success": True, "requestId": "req_1", "status": "succeeded",
                            "output": {"type": "video", "url": url}}
    server = _serve(hostile, json.dumps(body).encode())
    hook = make_hook("hostile")
    result = get_job(hook, mode, "req_1")
    # Final, so the wait ends at once; no URL, so the operator and the sensor fail naming req_1 and the reason.
    assert result.status.is_terminal
    assert not result.succeeded
    assert result.output_url is None
    assert "refused" in (result.error or "")
    assert len(server.requests) == 1
