"""Submit/get/cancel against the emulator: exact bodies and headers, validation before sending, error classes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from airflow_provider_seedance import __version__
from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceConflictError,
    SeedanceInsufficientCreditsError,
    SeedanceNotFoundError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, JobStatus

from .conftest import RecordingServer, set_connection

IMG = "https://example.com/first-frame.jpg"


def i2v(**kwargs: object) -> GenerationRequest:
    fields: dict[str, object] = {"prompt": "a cat on a skateboard", "media_urls": [IMG]}
    fields.update(kwargs)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


def wait_terminal(hook: SeedanceHook, request_id: str, timeout: float = 10.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = hook.get_job(request_id).status
        if status.is_terminal or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_submit_sends_the_exact_body_with_the_key(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    request = i2v(model="seedance-2.0-fast", aspect_ratio="9:16", duration=6, resolution="1080p",
                  webhook_url="http://127.0.0.1:9/hook", metadata={"campaign": "spring", "n": 1})
    result = hook.submit(request)
    assert result.status is JobStatus.QUEUED
    assert result.request_id.startswith("req_")
    [logged] = emu.admin.requests("submit")
    assert logged["method"] == "POST"
    assert logged["path"] == "/api/open/v1/video/generations"
    assert logged["auth"] == "valid"
    assert logged["body"] == {
        "model": "seedance-2.0-fast", "prompt": "a cat on a skateboard", "mediaUrls": [IMG], "aspectRatio": "9:16",
        "duration": 6, "resolution": "1080p", "webhookUrl": "http://127.0.0.1:9/hook",
        "metadata": {"campaign": "spring", "n": 1},
    }
    assert result.credits_charged == emu.admin.job(result.request_id)["creditsCharged"]


@pytest.mark.parametrize("media", [None, []], ids=["none", "empty-list"])
def test_text_to_video_body_has_no_media_key(emu: EmulatorHandle, hook: SeedanceHook, media: object) -> None:
    result = hook.submit(GenerationRequest(prompt="a calm sea at dawn", media_urls=media, duration=5,  # type: ignore[arg-type]
                                           resolution="720p"))
    [logged] = emu.admin.requests("submit")
    assert logged["body"] == {"model": "seedance-2.0", "prompt": "a calm sea at dawn", "duration": 5,
                              "resolution": "720p"}
    assert emu.admin.job(result.request_id)["textToVideo"] is True
    assert result.credits_charged == 40


def test_sync_and_async_send_user_agent_and_bearer(
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    recording_server: Callable[..., RecordingServer],
) -> None:
    import asyncio

    server = recording_server(status=200, body={"success": True, "requestId": "req_rec", "status": "processing"})
    set_connection(monkeypatch, "recorder", host=server.base_url, password="sd2_header_key")
    hook = make_hook("recorder")
    hook.get_job("req_rec")

    async def run() -> None:
        try:
            await hook.aget_job("req_rec")
        finally:
            await hook.aclose()

    asyncio.run(run())
    assert len(server.seen) == 2
    for seen in server.seen:
        headers = {k.lower(): v for k, v in seen["headers"].items()}
        assert headers["authorization"] == "Bearer sd2_header_key"
        assert headers["user-agent"] == f"airflow-provider-seedance/{__version__}"


def test_get_and_cancel(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    submitted = hook.submit(i2v())
    status = hook.get_job(submitted.request_id)
    assert status.request_id == submitted.request_id
    assert not status.status.is_terminal
    cancelled = hook.cancel_job(submitted.request_id)
    assert cancelled.status is JobStatus.CANCELLED
    assert [r["endpoint"] for r in emu.admin.requests()] == ["submit", "status", "cancel"]


def test_full_lifecycle_to_output_url(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    submitted = hook.submit(i2v())
    assert wait_terminal(hook, submitted.request_id) is JobStatus.SUCCEEDED
    result = hook.get_job(submitted.request_id)
    assert result.succeeded
    assert result.output_url == f"{emu.base_url}/files/{submitted.request_id}.mp4"


def test_six_urls_are_rejected_with_zero_posts(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    import asyncio

    request = i2v(media_urls=[IMG] * 6)
    with pytest.raises(SeedanceValidationError, match="media_urls"):
        hook.submit(request)

    async def run() -> None:
        try:
            await hook.asubmit(request)
        finally:
            await hook.aclose()

    with pytest.raises(SeedanceValidationError, match="1 to 5"):
        asyncio.run(run())
    assert emu.admin.stats()["submits"] == 0


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(i2v(duration=3), id="duration"),
        pytest.param(i2v(model="seedance-1.5-pro", duration=7), id="duration-1.5-pro"),
        pytest.param(i2v(media_urls=["http://example.com/a.jpg"]), id="http-url"),
        pytest.param(i2v(media_urls=["https://example.com/a.pdf"]), id="media-type"),
        pytest.param(i2v(aspect_ratio="4:3"), id="ratio"),
        pytest.param(i2v(prompt=" "), id="prompt"),
    ],
)
def test_invalid_requests_never_reach_the_api(
    emu: EmulatorHandle, hook: SeedanceHook, request_: GenerationRequest
) -> None:
    with pytest.raises(SeedanceValidationError):
        hook.submit(request_)
    assert emu.admin.requests() == []


# -- one error class per status ---------------------------------------------------------------------------


def test_400_from_the_server(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.add_fault(kind="http", status=400, endpoint="submit", body="mediaUrls: not reachable")
    with pytest.raises(SeedanceAPIError) as info:
        hook.submit(i2v())
    assert type(info.value) is SeedanceAPIError
    assert info.value.status_code == 400
    assert "not reachable" in str(info.value)
    assert emu.admin.stats()["submits"] == 1  # a 4xx is not retried


def test_401_wrong_key(
    emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]
) -> None:
    set_connection(monkeypatch, "wrong_key", host=emu.base_url, password="sd2_wrong_key")
    with pytest.raises(SeedanceAuthError) as info:
        make_hook("wrong_key").submit(i2v())
    assert info.value.status_code == 401
    assert "Invalid API key" in str(info.value)
    assert emu.admin.stats()["jobs_total"] == 0
    assert emu.admin.stats()["submits"] == 1


def test_402_insufficient_credits(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.configure(balance=10)
    with pytest.raises(SeedanceInsufficientCreditsError) as info:
        hook.submit(i2v())
    assert info.value.status_code == 402
    assert emu.admin.stats()["submits"] == 1


def test_404_unknown_request_id(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    with pytest.raises(SeedanceNotFoundError) as info:
        hook.get_job("req_does_not_exist")
    assert info.value.status_code == 404
    assert info.value.request_id == "req_does_not_exist"
    assert emu.admin.stats()["gets"] == 1


def test_409_cancel_after_finish(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    submitted = hook.submit(i2v())
    assert wait_terminal(hook, submitted.request_id) is JobStatus.SUCCEEDED
    with pytest.raises(SeedanceConflictError) as info:
        hook.cancel_job(submitted.request_id)
    assert info.value.status_code == 409
    assert emu.admin.stats()["cancels"] == 1


def test_429_exhausts_bounded_retries(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.add_fault(kind="http", status=429, retry_after="0", endpoint="status", times=-1)
    with pytest.raises(SeedanceRateLimitError) as info:
        hook.get_job("req_1")
    assert info.value.retry_after == 0.0
    assert emu.admin.stats()["gets"] == hook.retry_policy.max_attempts


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_get_exhausts_bounded_retries(emu: EmulatorHandle, hook: SeedanceHook, status: int) -> None:
    emu.admin.add_fault(kind="http", status=status, endpoint="status", times=-1)
    with pytest.raises(SeedanceServerError) as info:
        hook.get_job("req_1")
    assert info.value.status_code == status
    assert emu.admin.stats()["gets"] == hook.retry_policy.max_attempts


def test_malformed_json_on_2xx_is_a_response_error(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.add_fault(kind="malformed", endpoint="status", times=-1, body="<html>oops</html>")
    with pytest.raises(SeedanceResponseError, match="not JSON"):
        hook.get_job("req_1")
    assert emu.admin.stats()["gets"] == hook.retry_policy.max_attempts


def test_success_false_on_2xx_is_an_ambiguous_submit(
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    recording_server: Callable[..., RecordingServer],
) -> None:
    server = recording_server(status=200, body={"success": False, "error": {"code": "quota", "message": "no"}})
    set_connection(monkeypatch, "soft_error", host=server.base_url, password="sd2_k")
    # The documented error shape, but with a 2xx status: a job may have been created all the same (errors.
    # created_nothing, the one rule for every submitter), so it is never re-sent, and says so.
    with pytest.raises(SeedanceAmbiguousSubmitError, match="quota: no"):
        make_hook("soft_error").submit(i2v())
    assert len(server.seen) == 1


@pytest.mark.parametrize("request_id", ["../models", "a/b", "a\\b", "..", " ", "req 1", "x" * 129])
def test_an_unsafe_request_id_is_refused_before_any_request(
    emu: EmulatorHandle, hook: SeedanceHook, request_id: str
) -> None:
    # Never sent, not even escaped: an id also names files and log lines (issue 23 #6).
    with pytest.raises(SeedanceValidationError, match="request_id"):
        hook.get_job(request_id)
    with pytest.raises(SeedanceValidationError, match="request_id"):
        hook.cancel_job(request_id)
    assert emu.admin.requests() == []


def test_async_submit_get_cancel(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    import asyncio

    emu.admin.set_next_jobs(never_finishes=True)

    async def run() -> list[JobStatus]:
        try:
            submitted = await hook.asubmit(i2v())
            polled = await hook.aget_job(submitted.request_id)
            cancelled = await hook.acancel_job(submitted.request_id)
            return [submitted.status, polled.status, cancelled.status]
        finally:
            await hook.aclose()

    submitted, polled, cancelled = asyncio.run(run())
    assert submitted is JobStatus.QUEUED
    assert not polled.is_terminal
    assert cancelled is JobStatus.CANCELLED
    assert [r["endpoint"] for r in emu.admin.requests()] == ["submit", "status", "cancel"]
    assert all(r["auth"] == "valid" for r in emu.admin.requests())


@pytest.mark.parametrize("request_id", ["", "   "])
def test_empty_request_id_is_refused_before_sending(emu: EmulatorHandle, hook: SeedanceHook, request_id: str) -> None:
    with pytest.raises(SeedanceValidationError, match="request_id"):
        hook.get_job(request_id)
    with pytest.raises(SeedanceValidationError, match="request_id"):
        hook.cancel_job(request_id)
    assert emu.admin.requests() == []


@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirects_are_not_followed(
    monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., SeedanceHook],
    recording_server: Callable[..., RecordingServer],
    status: int,
) -> None:
    """Following would turn the POST into a GET (301/302) and drop the key; the user must fix the base URL."""
    server = recording_server(status=status, body={}, headers={"Location": "https://elsewhere.example/api"})
    set_connection(monkeypatch, "redirecting", host=server.base_url, password="sd2_k")
    # Ambiguous: after a POST a redirect (a 303 usually means "created") may follow a job's creation.
    with pytest.raises(SeedanceAmbiguousSubmitError, match=r"redirect to https://elsewhere\.example/api") as info:
        make_hook("redirecting").submit(i2v())
    assert isinstance(info.value.cause, SeedanceAPIError)
    assert info.value.cause.status_code == status
    assert [r["method"] for r in server.seen] == ["POST"]
