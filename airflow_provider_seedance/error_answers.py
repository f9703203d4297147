"""Reading an error answer: the vendor's message and code from any body shape, ``Retry-After``, and which
:class:`~airflow_provider_seedance.errors.SeedanceAPIError` an HTTP failure is. Pure Python, never raises on a
hostile body (its text is capped before it is redacted); ``docs/architecture.rst``.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from itertools import islice
from typing import Any

from airflow_provider_seedance._bounds import MAX_VENDOR_TEXT, cap_text
from airflow_provider_seedance.errors import (
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceConflictError,
    SeedanceInsufficientCreditsError,
    SeedanceNotFoundError,
    SeedanceRateLimitError,
    SeedanceRequestTimeoutError,
    SeedanceResponseError,
    SeedanceServerError,
)

__all__ = ["MAX_RETRY_AFTER", "classify_http_error", "error_message_from_body", "parse_retry_after"]

_MAX_CODE = 100


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


#: The longest ``Retry-After`` honoured, by every reader of it (the hook's retries, every wait, the batch): a
#: server answering ``Retry-After: 1e12`` (or a date in the year 9999) would otherwise never be asked again.
MAX_RETRY_AFTER = 3600.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date, at most
    :data:`MAX_RETRY_AFTER`; None if absent/bad.

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
        return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - current))
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, overflow: ignore
        return None
    return min(seconds, MAX_RETRY_AFTER)


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
