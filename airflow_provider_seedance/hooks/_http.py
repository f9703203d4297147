"""What one HTTP exchange means: decode the response, classify failures, map client exceptions.

Shared by the sync (requests) and async (aiohttp) paths, so both raise the same errors for the same event.
Whether an error is retried is decided by :func:`~airflow_provider_seedance.errors.is_retryable`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import requests
from urllib3.exceptions import ConnectTimeoutError as Urllib3ConnectTimeoutError

from airflow_provider_seedance import __version__
from airflow_provider_seedance.errors import (
    SeedanceAPIError,
    SeedanceResponseError,
    SeedanceTransportError,
    classify_http_error,
)
from airflow_provider_seedance.hooks._keepalive import ConnectFailed

__all__ = [
    "USER_AGENT",
    "interpret_response",
    "scrub",
    "transport_error_from_aiohttp",
    "transport_error_from_keepalive",
    "transport_error_from_requests",
]

USER_AGENT = f"airflow-provider-seedance/{__version__}"

# aiohttp >= 3.10 tells a connect timeout apart; older versions raise a plain asyncio.TimeoutError.
_AIOHTTP_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if isinstance(t, type)
)


def scrub(text: str, secret: str | None) -> str:
    """Replace the API key wherever a server or library echoed it.

    :param text: any text about to be put in an exception.
    :param secret: the API key.
    """
    return text.replace(secret, "***") if secret and secret in text else text


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def interpret_response(
    status: int,
    headers: Mapping[str, str],
    text: str,
    *,
    request_id: str | None = None,
    secret: str | None = None,
) -> Any:
    """The decoded JSON of a successful response; raise the classified error for anything else.

    :param status: HTTP status.
    :param headers: response headers (case-insensitive mapping).
    :param text: the response body as text.
    :param request_id: the generation the call was about, when known.
    :param secret: the API key, scrubbed from every message.
    """
    text = scrub(text, secret)
    try:
        body: Any = json.loads(text) if text.strip() else None
        is_json = body is not None
    except ValueError:
        body, is_json = text, False
    if 300 <= status < 400:
        # Redirects are not followed: requests would turn a POST into a GET, and both clients drop the key.
        location = headers.get("Location") or "?"
        raise SeedanceAPIError(
            f"unexpected redirect to {scrub(location, secret)}: set the connection's host to the final base URL",
            status_code=status,
            request_id=request_id,
        )
    if not 200 <= status < 300:
        raise classify_http_error(status, body, headers, request_id=request_id)
    if not is_json:
        raise SeedanceResponseError(
            f"HTTP {status} with a body that is not JSON: {_snippet(text) or '(empty)'}", request_id=request_id
        )
    if isinstance(body, (dict, Mapping)) and body.get("success") is False:
        # The documented error shape, even when it arrives with a 2xx status.
        raise classify_http_error(status, body, headers, request_id=request_id)
    return body


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (args, .reason, cause, context)."""
    seen: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__, *item.args])
    return seen


def transport_error_from_requests(
    exc: requests.RequestException, what: str, secret: str | None
) -> SeedanceTransportError:
    """Map a requests failure; ``sent=False`` only when no connection was ever established.

    A connect timeout, refused connection, DNS failure or TLS handshake failure cannot have delivered the
    request. A read timeout, a reset or a broken response may have: the server may be acting on it.

    :param exc: the requests exception.
    :param what: the call, e.g. ``POST /api/open/v1/video/generations``.
    :param secret: the API key, scrubbed from the message.
    """
    never_connected = isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)) or (
        isinstance(exc, requests.ConnectionError)
        and any(isinstance(c, Urllib3ConnectTimeoutError) for c in _causes(exc))  # NewConnectionError is one
    )
    if never_connected:
        message = f"{what}: could not connect ({type(exc).__name__}): {exc}"
    else:
        message = f"{what}: failed after the request was sent ({type(exc).__name__}): {exc}"
    return SeedanceTransportError(scrub(message, secret), sent=not never_connected)


def transport_error_from_aiohttp(exc: BaseException, what: str, secret: str | None) -> SeedanceTransportError:
    """Map an aiohttp (or asyncio timeout) failure; ``sent=False`` only when the connection never opened.

    :param exc: the exception raised by the aiohttp request.
    :param what: the call.
    :param secret: the API key, scrubbed from the message.
    """
    never_connected = isinstance(exc, (aiohttp.ClientConnectorError, *_AIOHTTP_CONNECT_TIMEOUT))
    kind = type(exc).__name__
    detail = str(exc) or ("timed out" if isinstance(exc, asyncio.TimeoutError) else kind)
    if never_connected:
        message = f"{what}: could not connect ({kind}): {detail}"
    else:
        message = f"{what}: failed after the request was sent ({kind}): {detail}"
    return SeedanceTransportError(scrub(message, secret), sent=not never_connected)


def transport_error_from_keepalive(exc: BaseException, what: str, secret: str | None) -> SeedanceTransportError:
    """Map a :mod:`._keepalive` failure; ``sent=False`` only when no connection could be opened.

    :param exc: ``ConnectFailed``, ``ResponseError``, ``TimeoutError`` or another ``OSError``.
    :param what: the call.
    :param secret: the API key, scrubbed from the message.
    """
    kind = type(exc).__name__
    detail = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else kind)
    if isinstance(exc, ConnectFailed):
        return SeedanceTransportError(scrub(f"{what}: could not connect ({kind}): {detail}", secret), sent=False)
    message = f"{what}: failed after the request was sent ({kind}): {detail}"
    return SeedanceTransportError(scrub(message, secret), sent=True)
