"""What one HTTP exchange means: decode the response, classify failures, map client exceptions.

Shared by the sync (requests) and async (aiohttp) paths, so both raise the same errors for the same event.
Whether the hook retries an error is :func:`~airflow_provider_seedance.errors.is_retryable`'s answer (and
whether a wait waits it through, :func:`~airflow_provider_seedance.waiting.is_transient`'s). Every
message is scrubbed of the connection's secrets, and no client exception is kept as a cause: a server may
echo the ``Authorization`` header into whatever the client library raises.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import requests
from urllib3.exceptions import ConnectTimeoutError as Urllib3ConnectTimeoutError
from urllib3.exceptions import NameResolutionError

from airflow_provider_seedance import __version__
from airflow_provider_seedance.error_answers import classify_http_error
from airflow_provider_seedance.errors import (
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceHostNotFoundError,
    SeedanceResponseError,
    SeedanceTransportError,
)
from airflow_provider_seedance.hooks._connection import ConnectionSettings, secrets_of

__all__ = [
    "BASE_HEADERS",
    "USER_AGENT",
    "interpret_response",
    "scrub",
    "transport_error_from_aiohttp",
    "transport_error_from_requests",
]

USER_AGENT = f"airflow-provider-seedance/{__version__}"
BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}

# aiohttp >= 3.10 tells a connect timeout apart; older versions raise a plain asyncio.TimeoutError.
_AIOHTTP_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if isinstance(t, type)
)
# aiohttp >= 3.10 names a DNS failure; older versions wrap a socket.gaierror.
_AIOHTTP_DNS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ClientConnectorDNSError", None),) if isinstance(t, type)
)


def scrub(text: str, secret: str | None) -> str:
    """Replace the API key wherever a server or library echoed it: as is, and percent-encoded (``sd2%5F...``,
    any mix of encoded and plain characters, either case of hex).

    :param text: any text about to be put in an exception.
    :param secret: the API key.
    """
    if not secret:
        return text
    if secret in text:
        text = text.replace(secret, "***")
    if "%" in text:
        text = _encoded_pattern(secret).sub("***", text)
    return text


@functools.lru_cache(maxsize=16)
def _encoded_pattern(secret: str) -> re.Pattern[str]:
    # Each character of the key, or its %XX form: matches every percent-encoding a client or server may apply.
    parts = [f"(?:{re.escape(c)}|%{ord(c):02x})" if ord(c) < 128 else re.escape(c) for c in secret]
    return re.compile("".join(parts), re.IGNORECASE)


def _scrub_all(text: str, settings: ConnectionSettings) -> str:
    for secret in secrets_of(settings):
        text = scrub(text, secret)
    return text


def _scrub_decoded(value: Any, secret: str) -> Any:
    """The decoded JSON with the key replaced in every string, keys included (iterative: any depth).

    :param value: a decoded JSON value.
    :param secret: the API key.
    """
    if isinstance(value, str):
        return scrub(value, secret)
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        holder, key = stack.pop()
        item = holder[key]
        if isinstance(item, str):
            holder[key] = scrub(item, secret)
        elif isinstance(item, dict):
            replaced = {scrub(k, secret) if isinstance(k, str) else k: v for k, v in item.items()}
            holder[key] = replaced
            stack.extend((replaced, k) for k in replaced)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
    return root[0]


def _snippet(text: str, limit: int = 200) -> str:
    # Only the head is split: splitting a 100 MB non-JSON answer whole took 7x its size in memory.
    head = text[: limit * 8]
    text = " ".join(head.split()) + (" ..." if len(head) < len(text) else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def interpret_response(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    settings: ConnectionSettings,
    *,
    request_id: str | None = None,
) -> Any:
    """The decoded JSON of a successful response; raise the classified error for anything else.

    :param status: HTTP status.
    :param headers: response headers (case-insensitive mapping).
    :param raw: the response body.
    :param settings: the connection (its secrets are scrubbed from every message; 401/403 name it).
    :param request_id: the generation the call was about, when known.
    """
    text = raw.decode("utf-8", errors="replace")
    secret = settings.api_key
    text = scrub(text, secret)
    try:
        body: Any = json.loads(text) if text.strip() else None
        is_json = body is not None
        if is_json and secret and "\\" in text:
            # A JSON escape (\u0073d2_...) hides an echoed key from the scrub of the raw text; decoding reveals
            # it. Only answers with an escape pay for this walk.
            body = _scrub_decoded(body, secret)
    except (ValueError, RecursionError, MemoryError):  # not JSON, or nested past what the parser can hold
        body, is_json = (None if text.lstrip()[:1] in ("[", "{") else text), False
    if 300 <= status < 400:
        # Redirects are not followed: requests would turn a POST into a GET, and both clients drop the key.
        location = headers.get("Location") or "?"
        raise SeedanceAPIError(
            f"unexpected redirect to {scrub(location, secret)}: set the connection's host to the final base URL",
            status_code=status,
            request_id=request_id,
        )
    if not 200 <= status < 300 or (is_json and isinstance(body, dict) and body.get("success") is False):
        # The documented error shape counts even when it arrives with a 2xx status.
        error = classify_http_error(status, body, headers, request_id=request_id)
        if isinstance(error, SeedanceAuthError):
            error = SeedanceAuthError(
                f"{error.message}. The API key in Airflow connection {settings.conn_id!r} (its password field, "
                f"'API key' in the UI) was refused by {settings.base_url}: put a valid Seedance API key there",
                status_code=error.status_code, request_id=error.request_id, code=error.code,
            )
        raise error
    if not is_json:
        raise SeedanceResponseError(
            f"HTTP {status} with a body that is not JSON: {_snippet(text) or '(empty)'}",
            request_id=request_id,
        )
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


def _host_not_found(settings: ConnectionSettings, what: str, kind: str) -> SeedanceHostNotFoundError:
    host = urlsplit(settings.base_url).hostname
    where = ("the connection has no host, so this is the vendor's default" if settings.host_was_empty
             else "from the connection's host field")
    return SeedanceHostNotFoundError(
        f"{what}: host name {host!r} does not resolve ({kind}); it comes from Airflow connection "
        f"{settings.conn_id!r} ({where}: {settings.base_url}). Check the host, or the machine's DNS",
        sent=False,
    )


def _where(settings: ConnectionSettings) -> str:
    # A refused or unreachable host is a connection setting more often than an outage: say which one.
    return f" (Airflow connection {settings.conn_id!r}, base URL {settings.base_url})"


def transport_error_from_requests(exc: Exception, what: str, settings: ConnectionSettings) -> SeedanceTransportError:
    """Map a requests failure; ``sent=False`` only when no connection was ever established.

    A connect timeout, refused connection, DNS failure or TLS handshake failure cannot have delivered the
    request. A read timeout, a reset or a broken response may have: the server may be acting on it.

    :param exc: the requests exception (or urllib3's, raised while the body is read).
    :param what: the call, e.g. ``POST /api/open/v1/video/generations``.
    :param settings: the connection (secrets scrubbed from the message, host named for DNS failures).
    """
    causes = _causes(exc)
    if any(isinstance(c, (NameResolutionError, socket.gaierror)) for c in causes):
        return _host_not_found(settings, what, type(exc).__name__)
    never_connected = isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)) or (
        isinstance(exc, requests.ConnectionError)
        and any(isinstance(c, Urllib3ConnectTimeoutError) for c in causes)  # NewConnectionError is one
    )
    if never_connected:
        message = f"{what}: could not connect ({type(exc).__name__}): {exc}{_where(settings)}"
    else:
        message = f"{what}: failed after the request was sent ({type(exc).__name__}): {exc}"
    return SeedanceTransportError(_scrub_all(message, settings), sent=not never_connected)


def transport_error_from_aiohttp(exc: BaseException, what: str, settings: ConnectionSettings) -> SeedanceTransportError:
    """Map an aiohttp (or asyncio timeout) failure; ``sent=False`` only when the connection never opened.

    :param exc: the exception raised by the aiohttp request.
    :param what: the call.
    :param settings: the connection (secrets scrubbed from the message, host named for DNS failures).
    """
    kind = type(exc).__name__
    if isinstance(exc, _AIOHTTP_DNS) or any(isinstance(c, socket.gaierror) for c in _causes(exc)):
        return _host_not_found(settings, what, kind)
    never_connected = isinstance(exc, (aiohttp.ClientConnectorError, *_AIOHTTP_CONNECT_TIMEOUT))
    detail = str(exc) or ("timed out" if isinstance(exc, asyncio.TimeoutError) else kind)
    if never_connected:
        message = f"{what}: could not connect ({kind}): {detail}{_where(settings)}"
    else:
        message = f"{what}: failed after the request was sent ({kind}): {detail}"
    return SeedanceTransportError(_scrub_all(message, settings), sent=not never_connected)
