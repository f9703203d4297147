"""Issue 23, the fresh-eyes review after the round-two fixes: scripted servers on 127.0.0.1, both paths.

- A lone UTF-16 surrogate (``"\\ud83d"``: valid JSON, what a JavaScript server sends when it cuts an emoji in
  two) or a NUL in any echoed field: every string kept from the answer must survive UTF-8, or Airflow's
  triggerer cannot encode the event (msgpack) and cancels the trigger instead of delivering a paid video.
- ``Retry-After: 1e12`` or a date in the year 9999 on a 429: a wait without a deadline slept that long, never
  asking again (whatever the job did meanwhile); it is honoured up to an hour.
- A redirect whose ``Location`` is not UTF-8: the sync path raised a bare ``UnicodeDecodeError`` (requests
  decodes the target even with redirects off) whose arguments held the header whole, the key included.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import msgspec
import pytest

from airflow_provider_seedance.errors import SeedanceAPIError, SeedanceRateLimitError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.polling import PollSchedule
from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger
from airflow_provider_seedance.waiting import MAX_RETRY_AFTER, JobEvent, JobWait, Verdict

from .both_paths import MODES, get_job
from .scripted_server import HOSTILE_KEY, Reply, Request, ScriptedServer, http_response, job_body
from .scripted_server import hostile as hostile  # the fixtures
from .scripted_server import scripted_server as scripted_server
from .test_hook_security_mends import every_text_of

# What a JavaScript server's JSON.stringify writes for a string cut inside an emoji, and a NUL.
ODD = {"surrogate": "a lighthouse \ud83d", "nul": "a light\x00house"}


def _answer(status: int, body: dict[str, object]) -> Callable[[Request], Reply]:
    return lambda request: Reply(http_response(status, json.dumps(body)))


def _encodable(payload: object) -> None:
    # Airflow's triggerer and task runner send events and XCom to their supervisor as msgpack (msgspec); a JSON
    # column (PostgreSQL's jsonb: XCom, next_kwargs) refuses "\u0000".
    msgspec.msgpack.encode(payload)
    assert "\\u0000" not in json.dumps(payload)


@pytest.mark.parametrize("odd", sorted(ODD))
@pytest.mark.parametrize("mode", MODES)
def test_odd_unicode_in_a_status_answer_survives_utf8(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], odd: str, mode: str,
) -> None:
    text = ODD[odd]
    hostile(_answer(200, job_body("req_1", "failed", prompt=text, model=text, aspectRatio=text,
                                  error={"code": text, "message": text})))
    result = get_job(make_hook("hostile", max_retries=0), mode, "req_1")
    _encodable(result.to_dict())
    assert result.prompt is not None
    assert result.prompt.startswith("a light")  # kept, the odd character replaced


@pytest.mark.parametrize("odd", sorted(ODD))
@pytest.mark.parametrize("status", [200, 400])
async def test_odd_unicode_never_makes_a_trigger_event_airflow_cannot_send(
    hostile: Callable[..., ScriptedServer], odd: str, status: int,
) -> None:
    text = ODD[odd]
    body = (job_body("req_1", "succeeded", prompt=text, model=text) if status == 200
            else {"success": False, "error": {"code": text, "message": text}})
    hostile(_answer(status, body))
    trigger = SeedanceJobTrigger("req_1", seedance_conn_id="hostile", poll_interval=0.05, max_poll_interval=0.1,
                                 deadline=time.time() + 1.5)
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    _encodable(events[0].payload)
    assert JobEvent.from_payload(events[0].payload).request_id == "req_1"


@pytest.mark.parametrize("mode", MODES)
def test_a_location_that_is_not_utf8_is_an_api_error_without_the_key(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], mode: str,
) -> None:
    def handler(request: Request) -> Reply:
        key = request.headers["authorization"].split()[-1].encode()
        return Reply(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\xff\xfe?k=" + key
                     + b"\r\nContent-Length: 0\r\n\r\n")

    hostile(handler)
    with pytest.raises(SeedanceAPIError) as info:
        get_job(make_hook("hostile", max_retries=0), mode, "req_1")
    assert info.value.status_code == 302
    assert HOSTILE_KEY not in every_text_of(info.value)


@pytest.mark.parametrize("retry_after", ["1e12", "Fri, 31 Dec 9999 23:59:59 GMT"])
@pytest.mark.parametrize("mode", MODES)
def test_an_absurd_retry_after_never_stops_a_wait_without_a_deadline(
    hostile: Callable[..., ScriptedServer], make_hook: Callable[..., SeedanceHook], retry_after: str, mode: str,
) -> None:
    hostile(lambda request: Reply(http_response(429, json.dumps({"success": False, "error": "slow down"}),
                                                headers={"Retry-After": retry_after})))
    with pytest.raises(SeedanceRateLimitError) as info:
        get_job(make_hook("hostile", max_retries=0), mode, "req_1")
    wait = JobWait("req_1", started_at=time.time(), deadline=None, schedule=PollSchedule())
    decision = wait.decide(None, info.value, log=logging.getLogger(__name__))
    assert decision.verdict is Verdict.WAIT
    assert decision.delay <= MAX_RETRY_AFTER
