"""Exceptions users can catch, what an HTTP failure means (``classify_http_error``) and whether the hook sends a
failed call again (``is_retryable``).

Pure Python: no Airflow, no HTTP client. The hook, the trigger, the emulator and the tests share it.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from airflow_provider_seedance._bounds import MAX_VENDOR_TEXT, cap_text
from airflow_provider_seedance._redact import redact_text

__all__ = [
    "SeedanceAPIError",
    "SeedanceAmbiguousSubmitError",
    "SeedanceAuthError",
    "SeedanceConflictError",
    "SeedanceConnectionError",
    "SeedanceError",
    "SeedanceHostNotFoundError",
    "SeedanceInsufficientCreditsError",
    "SeedanceJobFailedError",
    "SeedanceJobTimeoutError",
    "SeedanceNotFoundError",
    "SeedanceRateLimitError",
    "SeedanceRequestTimeoutError",
    "SeedanceResponseError",
    "SeedanceServerError",
    "SeedanceTransportError",
    "SeedanceUnknownModelError",
    "SeedanceValidationError",
    "ambiguous_if_sent",
    "classify_http_error",
    "error_message_from_body",
    "is_retryable",
    "parse_retry_after",
]


class SeedanceError(Exception):
    """Base class of every error this provider raises."""


class SeedanceValidationError(SeedanceError, ValueError):
    """A request field breaks a vendor rule. Raised before any request is sent.

    :param field: Python (snake_case) name of the offending field.
    :param value: the rejected value, kept as given; the message shows it with URL credentials masked
        (the API key is never a field).
    :param allowed: human-readable description of what is allowed.
    :param api_field: the camelCase name of the field in the API body, when it differs.
    """

    def __init__(self, field: str, value: Any, allowed: str, *, api_field: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.api_field = api_field or field
        shown = _short_repr(value)
        name = field if self.api_field == field else f"{field} ({self.api_field})"
        super().__init__(f"Invalid {name}: {shown}. Allowed: {allowed}.")


class SeedanceUnknownModelError(SeedanceValidationError):
    """The model is neither a built-in model nor listed in the vendor's catalogue.

    :param value: the model name asked for.
    :param available: model ids known (built in or from the live catalogue).
    :param note: where the list comes from, e.g. "catalogue unreachable: built-in models only".
    """

    def __init__(self, value: Any, available: Sequence[str], *, note: str | None = None) -> None:
        self.available = list(available)
        self.note = note
        allowed = "one of " + ", ".join(self.available)
        super().__init__("model", value, f"{allowed} ({note})" if note else allowed)


class SeedanceConnectionError(SeedanceError, ValueError):
    """The Airflow connection cannot be used as it is (no API key, a bad base URL or extra)."""


class SeedanceAPIError(SeedanceError):
    """The API answered with an error.

    :param message: readable message (the vendor's, when it gave one).
    :param status_code: HTTP status, when there was a response.
    :param request_id: the generation this call was about, when known.
    :param code: the vendor's machine-readable error code, when given.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        # A vendor message may echo a signed URL back: what we show and log carries no credential. Cut first:
        # redacting a 4 MiB message blocked a triggerer's event loop for seconds.
        message = redact_text(cap_text(message, _MAX_MESSAGE))
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.code = code
        parts = [message]
        if status_code is not None:
            parts.append(f"HTTP {status_code}")
        if request_id:
            parts.append(f"request id {request_id}")
        super().__init__(" | ".join(parts))


class SeedanceAuthError(SeedanceAPIError):
    """401/403: the API key is missing, wrong, revoked or expired."""


class SeedanceInsufficientCreditsError(SeedanceAPIError):
    """402: the account has not enough credits for this generation."""


class SeedanceNotFoundError(SeedanceAPIError):
    """404: unknown request id (or wrong base URL)."""


class SeedanceConflictError(SeedanceAPIError):
    """409: e.g. cancelling a job that already finished."""


class SeedanceRateLimitError(SeedanceAPIError):
    """429: too many requests. ``retry_after`` is in seconds when the server said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class SeedanceRequestTimeoutError(SeedanceAPIError):
    """408: the server gave up waiting for the request (typically a load balancer closing an idle kept-alive
    connection). It did not act on it, so it is sent again, on a fresh connection, even a POST."""


class SeedanceServerError(SeedanceAPIError):
    """5xx: the service failed. A POST that got this may still have created a job."""


class SeedanceResponseError(SeedanceAPIError):
    """The response could not be understood (not JSON, wrong shape)."""


class SeedanceTransportError(SeedanceError):
    """No usable HTTP response: connection refused/reset, DNS failure, timeout.

    :param message: what happened.
    :param sent: False only when the request certainly never reached the server (connect failed),
        which is what makes a POST safe to retry.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        self.sent = sent
        super().__init__(redact_text(cap_text(message, _MAX_MESSAGE)))


class SeedanceHostNotFoundError(SeedanceTransportError):
    """The API's host name does not resolve: a wrong host field, or no DNS. Not retried by the hook (it is
    rarely a blip, and waiting it out hid the cause for 47 s); a trigger waiting on a job already submitted
    treats it as transient until its deadline."""


class SeedanceAmbiguousSubmitError(SeedanceError):
    """A submit failed in a way that may have created (and charged) a job. Never retried blindly.

    :param cause: the underlying failure.
    """

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(
            "Submitting the generation failed after the request may have reached Seedance, so a job "
            f"may exist and may have been charged ({cause}). It was not re-sent, to avoid paying twice. "
            "Check your Seedance dashboard before retrying; set the task's retries knowing this."
        )


class SeedanceJobFailedError(SeedanceError):
    """The generation ended failed or cancelled, or succeeded without an output URL.

    :param request_id: the generation.
    :param status: its final status string.
    :param message: the vendor's error message, or ours.
    """

    def __init__(self, request_id: str, status: str, message: str | None) -> None:
        self.request_id = request_id
        self.status = status
        self.vendor_message = redact_text(cap_text(message)) if message else message
        shown = self.vendor_message or "no error message given"
        super().__init__(f"Seedance generation {request_id} ended {status}: {shown}")


class SeedanceJobTimeoutError(SeedanceError):
    """The generation did not finish before the deadline (it was cancelled when possible)."""


# Our own words around a vendor message (itself at most MAX_VENDOR_TEXT) fit in this.
_MAX_MESSAGE = 4 * MAX_VENDOR_TEXT
_MAX_CODE = 100


def _short_repr(value: Any, limit: int = 200) -> str:
    # Masked before it is cut: a cut could otherwise split "user:password@" and leave half of it visible.
    text = redact_text(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _preview(value: Any, limit: int, depth: int = 0) -> Any:
    """The head of a decoded JSON value: a few levels, items and characters (json.dumps of a 4 MiB one took 30 ms)."""
    if isinstance(value, str):
        return cap_text(value, limit)
    if isinstance(value, (dict, list)):
        if depth >= 4:
            return "..."
        items = list(islice(value.items(), 20)) if isinstance(value, dict) else list(enumerate(value[:20]))
        kept = [(k, _preview(v, limit, depth + 1)) for k, v in items]
        return dict(kept) if isinstance(value, dict) else [v for _k, v in kept]
    return value


def _vendor_text(value: Any, limit: int = MAX_VENDOR_TEXT, *, sort_keys: bool = False) -> str:
    """A vendor value as message text, cut to ``limit`` (before any redaction); never raises."""
    if isinstance(value, str):
        return cap_text(value, limit)
    try:
        shown = _preview(value, limit)
        text = json.dumps(shown, default=str, sort_keys=sort_keys) if isinstance(shown, (dict, list)) else str(shown)
    except (RecursionError, TypeError, ValueError):  # an int of 5000 digits, keys of mixed types
        text = f"(an unreadable {type(value).__name__})"
    return cap_text(text, limit)


def error_message_from_body(body: Any) -> tuple[str | None, str | None]:
    """Return ``(message, code)`` from an API body whose ``error`` may be a string, object or absent.

    Never raises, whatever the body holds; the message is at most about 1 KB (cut before it is redacted
    or put in an exception) and the code 100 characters.

    :param body: decoded JSON body (any shape).
    """
    if not isinstance(body, (dict, Mapping)):
        return None, None
    err = body.get("error")
    if err is None:
        msg = body.get("message")
        return (_vendor_text(msg) if msg not in (None, "") else None), None
    if isinstance(err, str):
        return (cap_text(err) or None), None
    if isinstance(err, Mapping):
        code = err.get("code")
        msg = err.get("message") or err.get("detail") or err.get("msg")
        code_s = _vendor_text(code, _MAX_CODE) if code not in (None, "") else None
        if msg in (None, ""):
            return (_vendor_text(err, sort_keys=True) if err else code_s), code_s
        return (f"{code_s}: {_vendor_text(msg)}" if code_s else _vendor_text(msg)), code_s
    return _vendor_text(err), None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad.

    :param value: the header value.
    :param now: current epoch seconds (for tests).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, overflow: ignore
        return None
    return seconds


def classify_http_error(
    status_code: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    request_id: str | None = None,
) -> SeedanceAPIError:
    """Turn an HTTP error response into the matching exception (the one classifier). Never raises.

    :param status_code: HTTP status (>= 400).
    :param body: decoded JSON body, or raw text when it was not JSON.
    :param headers: response headers (case-insensitive mapping preferred).
    :param request_id: the generation the call was about, when known.
    """
    try:
        return _classify(status_code, body, headers, request_id)
    except Exception as exc:  # a last guard (the readers above never raise): no answer may crash its reader
        return SeedanceResponseError(f"HTTP {status_code}: the error answer could not be read ({type(exc).__name__})",
                                     status_code=status_code, request_id=request_id)


def _classify(
    status_code: int, body: Any, headers: Mapping[str, str] | None, request_id: str | None
) -> SeedanceAPIError:
    message, code = error_message_from_body(body)
    if message is None:
        # Only the head is stripped: a 4 MiB text answer is not copied whole for a 300-character message.
        text = body[: 4 * MAX_VENDOR_TEXT].strip() if isinstance(body, str) else ""
        message = cap_text(text, 300) if text else f"Seedance API error (HTTP {status_code})"
    kwargs: dict[str, Any] = {"status_code": status_code, "request_id": request_id, "code": code}
    if status_code in (401, 403):
        return SeedanceAuthError(message, **kwargs)
    if status_code == 402:
        return SeedanceInsufficientCreditsError(message, **kwargs)
    if status_code == 404:
        return SeedanceNotFoundError(message, **kwargs)
    if status_code == 408:
        return SeedanceRequestTimeoutError(message, **kwargs)
    if status_code == 409:
        return SeedanceConflictError(message, **kwargs)
    if status_code == 429:
        retry_after = None
        if headers is not None:
            raw = _header(headers, "Retry-After")
            retry_after = parse_retry_after(raw)
        return SeedanceRateLimitError(message, retry_after=retry_after, **kwargs)
    if status_code >= 500:
        return SeedanceServerError(message, **kwargs)
    return SeedanceAPIError(message, **kwargs)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, val in headers.items():
            if key.lower() == lowered:
                return val
    return value


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether a failed call may be sent again.

    GET and cancel are idempotent: 408, 429, 5xx, malformed bodies and transport failures are retried.
    A submit (POST) is not: only a 408 or 429 (the service did not take it) or a connection that never
    opened is retried, because anything else may already have created and charged a job. A host name
    that does not resolve is never retried here (see :class:`SeedanceHostNotFoundError`).

    :param exc: the failure.
    :param idempotent: whether repeating the call cannot create a second job.
    """
    if isinstance(exc, (SeedanceRateLimitError, SeedanceRequestTimeoutError)):
        return True
    if isinstance(exc, SeedanceHostNotFoundError):
        return False
    if isinstance(exc, SeedanceTransportError):
        return idempotent or not exc.sent
    if isinstance(exc, (SeedanceServerError, SeedanceResponseError)):
        return idempotent
    return False


@contextlib.contextmanager
def ambiguous_if_sent() -> Iterator[None]:
    """Around a submit's POST: a failure that may have created a job becomes
    :class:`SeedanceAmbiguousSubmitError`, which is never re-sent; a refusal that created nothing passes as is."""
    try:
        yield
    except SeedanceError as exc:
        # Exactly the failures a GET may repeat but a POST may not: the request may have created a job.
        if is_retryable(exc, idempotent=True) and not is_retryable(exc, idempotent=False):
            raise SeedanceAmbiguousSubmitError(exc) from exc
        raise
