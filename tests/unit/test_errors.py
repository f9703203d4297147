"""The exception hierarchy, the one classifier, the retry decision and Retry-After parsing."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest

from airflow_provider_seedance.error_answers import classify_http_error, error_message_from_body, parse_retry_after
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceConflictError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceJobFailedError,
    SeedanceNotFoundError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceTransportError,
    SeedanceUnknownModelError,
    SeedanceValidationError,
    is_retryable,
)

UNAUTHORIZED = {"success": False, "error": {"code": "unauthorized", "message": "Invalid API key"}}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, SeedanceAPIError),
        (401, SeedanceAuthError),
        (403, SeedanceAuthError),
        (402, SeedanceInsufficientCreditsError),
        (404, SeedanceNotFoundError),
        (409, SeedanceConflictError),
        (422, SeedanceAPIError),
        (429, SeedanceRateLimitError),
        (500, SeedanceServerError),
        (502, SeedanceServerError),
        (503, SeedanceServerError),
        (599, SeedanceServerError),
    ],
)
def test_classify_by_status(status: int, cls: type[SeedanceAPIError]) -> None:
    err = classify_http_error(status, {"success": False, "error": {"code": "c", "message": "m"}}, request_id="req_1")
    assert type(err) is cls
    assert err.status_code == status
    assert err.code == "c"
    assert err.request_id == "req_1"
    assert err.message == "c: m"
    assert f"HTTP {status}" in str(err)
    assert "req_1" in str(err)


def test_documented_unauthorized_body() -> None:
    err = classify_http_error(401, UNAUTHORIZED)
    assert isinstance(err, SeedanceAuthError)
    assert err.message == "unauthorized: Invalid API key"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"success": False, "error": "plain text"}, "plain text", id="error-string"),
        pytest.param("<html>Bad gateway</html>", "<html>Bad gateway</html>", id="raw-text"),
        pytest.param("   ", "Seedance API error (HTTP 502)", id="blank-text"),
        pytest.param(None, "Seedance API error (HTTP 502)", id="no-body"),
        pytest.param([1, 2], "Seedance API error (HTTP 502)", id="list-body"),
        pytest.param({"message": "top"}, "top", id="top-level-message"),
    ],
)
def test_classify_message_from_any_body(body: Any, message: str) -> None:
    assert classify_http_error(502, body).message == message


def test_long_text_bodies_are_truncated() -> None:
    assert len(classify_http_error(500, "x" * 5000).message) == 300


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({}, None),
        (None, None),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_rate_limit_carries_retry_after(headers: dict[str, str] | None, expected: float | None) -> None:
    err = classify_http_error(429, {"error": "slow down"}, headers)
    assert isinstance(err, SeedanceRateLimitError)
    assert err.retry_after == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("120", 120.0), (" 3 ", 3.0), ("1.5", 1.5), ("-1", None), ("nan", None), ("", None), (None, None),
     ("soon", None), ("Mon, 99 Foo", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    # A date in the past means "now", never a negative wait.
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 60) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (SeedanceRateLimitError("slow", status_code=429), True, True),
        (SeedanceRateLimitError("slow", status_code=429), False, True),
        (SeedanceServerError("boom", status_code=500), True, True),
        (SeedanceServerError("boom", status_code=500), False, False),
        (SeedanceResponseError("bad json"), True, True),
        (SeedanceResponseError("bad json"), False, False),
        (SeedanceTransportError("refused", sent=False), True, True),
        (SeedanceTransportError("refused", sent=False), False, True),
        (SeedanceTransportError("read timeout", sent=True), True, True),
        (SeedanceTransportError("read timeout", sent=True), False, False),
        (SeedanceAuthError("no", status_code=401), True, False),
        (SeedanceInsufficientCreditsError("no", status_code=402), False, False),
        (SeedanceNotFoundError("no", status_code=404), True, False),
        (SeedanceConflictError("no", status_code=409), True, False),
        (SeedanceAPIError("bad request", status_code=400), True, False),
        (SeedanceValidationError("duration", 3, "4 to 15"), True, False),
        (ValueError("not ours"), True, False),
        (ConnectionError("builtin, unmapped"), True, False),
    ],
)
def test_is_retryable(exc: BaseException, idempotent: bool, expected: bool) -> None:
    assert is_retryable(exc, idempotent=idempotent) is expected


def test_hierarchy_lets_users_catch_broadly() -> None:
    for cls in (SeedanceAuthError, SeedanceInsufficientCreditsError, SeedanceNotFoundError, SeedanceConflictError,
                SeedanceRateLimitError, SeedanceServerError, SeedanceResponseError):
        assert issubclass(cls, SeedanceAPIError)
    for cls in (SeedanceAPIError, SeedanceTransportError, SeedanceAmbiguousSubmitError, SeedanceValidationError,
                SeedanceJobFailedError):
        assert issubclass(cls, SeedanceError)
    assert issubclass(SeedanceValidationError, ValueError)
    assert issubclass(SeedanceUnknownModelError, SeedanceValidationError)


def test_ambiguous_submit_error_says_a_job_may_exist() -> None:
    cause = SeedanceServerError("boom", status_code=500)
    err = SeedanceAmbiguousSubmitError(cause)
    assert err.cause is cause
    assert "may exist" in str(err)
    assert "not re-sent" in str(err)
    assert "boom" in str(err)


def test_job_failed_error_message() -> None:
    err = SeedanceJobFailedError("req_1", "failed", None)
    assert "req_1" in str(err)
    assert "failed" in str(err)
    assert "no error message" in str(err)


def test_validation_error_value_is_shortened() -> None:
    err = SeedanceValidationError("prompt", "x" * 1000, "short")
    assert len(str(err)) < 300
    assert "..." in str(err)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (UNAUTHORIZED, ("unauthorized: Invalid API key", "unauthorized")),
        ({"error": {"code": "", "message": "m"}}, ("m", None)),
        ({"error": {}}, (None, None)),
        ({"error": None, "message": ""}, (None, None)),
        ({"error": 5}, ("5", None)),
        ("not a mapping", (None, None)),
    ],
)
def test_error_message_from_body(body: Any, expected: tuple[str | None, str | None]) -> None:
    assert error_message_from_body(body) == expected
