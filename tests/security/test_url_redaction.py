"""URLs with credentials (user:pass@, ?token=, ?X-Amz-Signature=...) are masked in every provider log line
and exception text, through the real operator, trigger, sensor and hook against the emulator.

Each test uses its own secret values: the secrets masker is process-wide, and a value registered by one
test must not make another one pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import redact

from airflow_provider_seedance.errors import SeedanceAPIError, SeedanceError, SeedanceValidationError
from airflow_provider_seedance.hooks.seedance import RetryPolicy, SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor
from airflow_provider_seedance.triggers.seedance import JobEvent, SeedanceJobTrigger

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)


def _secret(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


class _TI:
    dag_id, run_id, task_id, map_index, try_number = "sec_dag", "manual__1", "generate", -1, 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.data[key] = value


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": _TI(), "task_state_store": _Store()}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """Everything logged, however the logger is wired (stdlib records, structlog to stdout/stderr)."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        out = capfd.readouterr()
        return caplog.text + out.out + out.err

    return text


def _with_output_credentials(emu: EmulatorHandle) -> str:
    password = _secret("OUTPASS")
    port = emu.base_url.rsplit(":", 1)[1]
    emu.admin.configure(public_url=f"http://outuser:{password}@127.0.0.1:{port}")
    return password


def test_output_url_credentials_stay_out_of_the_workers_logs(
    emu: EmulatorHandle, context: dict[str, Any], logs: Any
) -> None:
    password = _with_output_credentials(emu)
    op = SeedanceGenerateOperator(task_id="generate", prompt="a lake", deferrable=False, poll_interval=0.05,
                                  max_poll_interval=0.1)
    url = op.execute(context)
    logged = logs()
    assert password in url  # the URL handed over is the real one: it is data
    assert context["ti"].pushed["output_url"] == url
    assert "http://***:***@127.0.0.1:" in logged  # the success line was logged, masked
    assert password not in logged
    assert password not in str(redact(f"the video: {url}"))  # registered with Airflow's masker too


def test_trigger_event_message_masks_the_output_url(emu: EmulatorHandle, logs: Any) -> None:
    password = _with_output_credentials(emu)
    with SeedanceHook() as hook:
        rid = hook.submit(GenerationRequest(prompt="a lake")).request_id

    async def run() -> list[dict[str, Any]]:
        trigger = SeedanceJobTrigger(rid, poll_interval=0.05, max_poll_interval=0.1)
        return [e.payload async for e in trigger.run()]

    [payload] = asyncio.run(run())
    event = JobEvent.from_payload(payload)
    assert event.result is not None
    assert password in (event.result.output_url or "")  # the worker needs the real URL
    assert password not in event.message
    assert "***" in event.message
    # The triggerer logs the whole payload: the masker it uses hides the password there.
    assert password not in str(redact(json.dumps(payload)))
    assert password not in logs()


def test_sensor_masks_the_output_url(emu: EmulatorHandle, context: dict[str, Any], logs: Any) -> None:
    password = _with_output_credentials(emu)
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0)
    with SeedanceHook() as hook:
        rid = hook.submit(GenerationRequest(prompt="a lake")).request_id
    sensor = SeedanceJobSensor(task_id="wait", request_id=rid, poke_interval=0.05, timeout=10)
    result = sensor.poke(context)
    logged = logs()
    assert password in result.xcom_value  # type: ignore[union-attr]
    assert password not in logged
    assert rid in logged


def test_media_and_webhook_credentials_never_shown(emu: EmulatorHandle, context: dict[str, Any], logs: Any) -> None:
    media_password, signature, token = _secret("MEDIAPASS"), _secret("SIG"), _secret("TOKEN")
    media = f"https://media:{media_password}@cdn.example.com/cat.jpg?X-Amz-Signature={signature}&X-Amz-Date=1"
    webhook = f"https://hooks.example.com/done?token={token}"
    op = SeedanceGenerateOperator(task_id="generate", prompt="a cat", media_urls=[media], webhook_url=webhook,
                                  deferrable=False)
    op.render_template_fields(context)
    # What Airflow stores as the rendered fields goes through redact(): the credentials are registered.
    rendered = json.dumps(redact({"media_urls": op.media_urls, "webhook_url": op.webhook_url}))
    with pytest.raises(SeedanceAPIError) as info:  # the emulator refuses URLs with credentials, quoting them
        op.execute(context)
    assert "media_urls" in str(info.value)
    texts = [logs(), str(info.value), repr(info.value), rendered]
    for text in texts:
        for secret in (media_password, signature, token):
            assert secret not in text
    assert "https://***:***@cdn.example.com/cat.jpg?X-Amz-Signature=***" in str(info.value)
    assert emu.admin.stats()["jobs_total"] == 0


def test_validation_errors_mask_url_credentials_but_keep_the_value() -> None:
    password, token = _secret("PASS"), _secret("TOKEN")
    url = f"https://user:{password}@cdn.example.com/clip.exe?token={token}"
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="x", media_urls=[url]).validate()
    assert password not in str(info.value)
    assert token not in str(info.value)
    assert "cdn.example.com/clip.exe" in str(info.value)
    assert info.value.value == url  # for code that handles the error, the value is unchanged


class _Redirect(BaseHTTPRequestHandler):
    location = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_redirect_location_with_a_token_is_masked(monkeypatch: pytest.MonkeyPatch, logs: Any) -> None:
    token = _secret("REDIRECTTOKEN")
    _Redirect.location = f"https://elsewhere.example.com/v1?access_token={token}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_REDIRECTING", json.dumps(
            {"conn_type": "seedance", "host": f"http://127.0.0.1:{server.server_port}", "password": "sd2_test_x"}))
        with SeedanceHook("redirecting", retry_policy=FAST) as hook, pytest.raises(SeedanceAPIError) as info:
            hook.get_job("req_1")
    finally:
        server.shutdown()
    assert "access_token=***" in str(info.value)
    assert token not in str(info.value) + logs()


def test_a_proxy_password_is_masked(monkeypatch: pytest.MonkeyPatch, logs: Any) -> None:
    password = _secret("PROXYPASS")
    proxy = f"http://proxyuser:{password}@127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_VIA_PROXY", json.dumps({
        "conn_type": "seedance", "host": "https://api.example.com", "password": "sd2_test_x",
        "extra": {"proxies": {"https": proxy}},
    }))
    with SeedanceHook("via_proxy", retry_policy=FAST) as hook:
        with pytest.raises(SeedanceError) as info:
            hook.get_job("req_1")
        settings = hook._get_settings()
        assert password not in repr(settings)
    assert password not in str(info.value) + logs()
    assert password not in str(redact(proxy))
