"""The send of one request on each path, through the http provider's public API, and the bounded read of
its answer.

Sync: :meth:`HttpHook.run` with ``check_response`` off and redirects off, on the hook's one
``requests.Session`` (streamed, so the body is read here, bounded in bytes). Async: :meth:`HttpAsyncHook.run`
on the one shared ``aiohttp.ClientSession`` (``session=``), ``retry_limit=1`` and ``check_response`` off, so
this provider's classifier (:mod:`._http`) and retries (:mod:`._retry`) see every answer. Why, and what the
http provider does not do for us (a cap on the body size): ``docs/architecture.rst``, "The hook and its retries".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import requests
import urllib3
from airflow.providers.http.exceptions import HttpErrorException
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook, SessionConfig
from requests.auth import AuthBase

from airflow_provider_seedance._sync_deadline import CallDeadlineExceeded, call_deadline
from airflow_provider_seedance.errors import SeedanceError, SeedanceResponseError
from airflow_provider_seedance.hooks._connection import ConnectionSettings
from airflow_provider_seedance.hooks._http import (
    interpret_response,
    transport_error_from_aiohttp,
    transport_error_from_requests,
)

__all__ = [
    "MAX_JOB_ANSWER_BYTES",
    "MAX_RESPONSE_BYTES",
    "OFF_LOOP_BYTES",
    "ApiSession",
    "BearerAuth",
    "SeedanceAsyncHttpHook",
    "aexchange",
    "answer",
    "answer_cap",
    "async_session_config",
    "exchange",
    "new_session",
]

T = TypeVar("T")

#: The largest answer read: the API's answers are a few KB; a server streaming more is refused, not buffered.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: Answers larger than this are decoded in a thread on the async path: a triggerer's event loop serves every
#: other wait meanwhile (a 4 MiB answer takes tens of milliseconds to decode; the API's answers are a few KB).
OFF_LOOP_BYTES = 64 * 1024
_CHUNK = 65536


#: The largest answer about one job (submit, status, cancel): those are a few KB; a bigger one is refused
#: unread, so no answer makes a triggerer's event loop decode or scrub more than this (a 4 MiB answer of
#: 250,000 small objects held the loop for most of a second, in a thread or not: the GIL).
MAX_JOB_ANSWER_BYTES = 128 * 1024


def answer_cap(kind: str) -> int:
    """The largest answer read for a kind of call: the catalogue may list many models; an answer about one job
    is a few KB (:data:`MAX_JOB_ANSWER_BYTES`).

    :param kind: ``submit``, ``poll``, ``cancel`` or ``catalogue``.
    """
    return MAX_RESPONSE_BYTES if kind == "catalogue" else MAX_JOB_ANSWER_BYTES


def _too_large(limit: int) -> SeedanceResponseError:
    return SeedanceResponseError(f"answer larger than {limit:,} bytes: refused")


class BearerAuth(AuthBase):
    """Bearer token as a requests auth object: it also stops requests from applying ~/.netrc credentials."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class ApiSession(requests.Session):
    """The sync path's ``requests.Session``: it never follows a redirect, so it never reads one's target.

    ``Session.send`` works out a redirect's next request even with redirects off, decoding ``Location`` as
    UTF-8: a Location of other bytes raised a ``UnicodeDecodeError`` (no Seedance error) whose arguments held
    the header whole. A 3xx is reported by :func:`._http.interpret_response`, its Location scrubbed.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """None: no redirect is ever followed (requests' documented hook).

        :param resp: the answer.
        """
        return None


def read_capped(response: requests.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body of a streamed requests answer, at most ``limit`` bytes (the call's deadline bounds the time).

    :param response: a response sent with ``stream=True``.
    :param limit: the most bytes read (more is refused).
    """
    body = bytearray()
    # read1: what has arrived (up to 64 KiB), decoded; iter_content would wait for a full 64 KiB.
    while chunk := response.raw.read1(_CHUNK, decode_content=True):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def read_capped_async(response: aiohttp.ClientResponse, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body of an aiohttp answer, at most ``limit`` bytes (the request's total timeout bounds the time).

    :param response: the answer.
    :param limit: the most bytes read (more is refused).
    """
    body = bytearray()
    while chunk := await response.content.read(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


class SeedanceAsyncHttpHook(HttpAsyncHook):
    """The http provider's async hook for one HTTP method, configured from the Seedance hook's settings.

    ``config()`` is the http provider's public extension point: it returns the settings the Seedance hook
    resolved once (base URL, headers without the key, TLS, proxy, no redirects), so the connection is not
    looked up again per method. The key travels per request.

    :param method: the HTTP method this hook sends.
    :param conn_id: the ``seedance`` connection (for messages).
    :param config: the resolved session settings.
    """

    conn_type = "seedance"

    def __init__(self, method: str, conn_id: str, config: SessionConfig) -> None:
        super().__init__(method=method, http_conn_id=conn_id, retry_limit=1)
        self.session_config = config

    async def config(self) -> SessionConfig:
        """The resolved settings (no connection lookup: the Seedance hook did it once)."""
        return self.session_config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r}, http_conn_id={self.http_conn_id!r})"


def async_session_config(base_url: str, headers: dict[str, str], *, ssl: Any, proxy: str | None) -> SessionConfig:
    """The http provider's ``SessionConfig`` for a Seedance connection: no redirects, answers never raised on.

    :param base_url: the API's base URL.
    :param headers: headers for every request (never the key: a pydantic model shows its fields in ``repr``).
    :param ssl: aiohttp's ``ssl`` option, or None for aiohttp's default (a plain-http URL needs none).
    :param proxy: the proxy URL, or None.
    """
    options: dict[str, Any] = {"allow_redirects": False, "check_response": False}
    if ssl is not None:
        options["ssl"] = ssl
    if proxy:
        options["proxy"] = proxy
    return SessionConfig(base_url=base_url, headers=headers, extra_options=options)


def new_session() -> aiohttp.ClientSession:
    """An aiohttp session for the API: ``trust_env=False`` (proxies are resolved as requests does, and ~/.netrc
    must not replace the key) and no cookie jar (one session serves every connection of a loop, tenants
    included)."""
    return aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())


def exchange(hook: HttpHook, settings: ConnectionSettings, method: str, path: str, body: Any,
             max_bytes: int = MAX_JOB_ANSWER_BYTES) -> tuple[int, Mapping[str, str], bytes]:
    """One sync request through ``HttpHook.run``: status, headers and the capped body.

    :param hook: the Seedance hook (an ``HttpHook`` whose session is configured from the connection).
    :param settings: its connection.
    :param method: HTTP method.
    :param path: endpoint path.
    :param body: the JSON body, or None.
    :param max_bytes: the largest answer read.
    """
    hook.method = method  # HttpHook.run sends with the hook's method (as dbt-cloud's hook does)
    error: SeedanceError | None = None
    # One deadline for the whole call: requests' timeout bounds each socket read, so a server dripping its
    # headers or body would otherwise hold the worker past any timeout (the hook's session mounts a
    # DeadlineAdapter, whose connections this deadline shuts down).
    with call_deadline(settings.timeout) as deadline:
        try:
            response = hook.run(path, json=body, extra_options={
                "timeout": settings.timeout, "allow_redirects": False, "check_response": False})
            with response:
                status, headers = response.status_code, response.headers
                # A 408's connection is being dropped by the server: closed unread, so it is not pooled again.
                raw = b"" if status == 408 else read_capped(response, max_bytes)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # read1 raises urllib3's own
            late = CallDeadlineExceeded(f"no whole answer within {settings.timeout:g} s") if deadline.expired else None
            # Raised outside the except block: the client's exception (which may quote what a server echoed,
            # the Authorization header included) must not ride along as __context__ or __cause__.
            error = transport_error_from_requests(late or exc, f"{method} {path}", settings)
    if error is not None:
        raise error
    return status, headers, raw


async def aexchange(http: SeedanceAsyncHttpHook, session: aiohttp.ClientSession, settings: ConnectionSettings,
                    method: str, path: str, body: Any, limit: float, max_bytes: int = MAX_JOB_ANSWER_BYTES
                    ) -> tuple[int, Mapping[str, str], bytes]:
    """One async request through ``HttpAsyncHook.run(session=...)``: status, headers and the capped body.

    :param http: the http provider's async hook for ``method``.
    :param session: the shared session (or a one-off one after a 408).
    :param settings: the connection.
    :param method: HTTP method.
    :param path: endpoint path.
    :param body: the JSON body, or None.
    :param limit: seconds for the whole request, body included.
    :param max_bytes: the largest answer read.
    """
    error: SeedanceError | None = None
    try:
        response = await http.run(session=session, endpoint=path, json=body,
                                  headers={"Authorization": f"Bearer {settings.api_key}"},
                                  extra_options={"timeout": aiohttp.ClientTimeout(total=limit)})
        try:
            status, headers = response.status, response.headers
            raw = b"" if status == 408 else await read_capped_async(response, max_bytes)
        finally:
            if response.status == 408:  # the server drops this connection: closed unread, never pooled again
                response.close()
            else:
                response.release()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, HttpErrorException) as exc:
        error = transport_error_from_aiohttp(exc, f"{method} {path}", settings)  # raised below: see exchange
    if error is not None:
        raise error
    return status, headers, raw


def answer(status: int, headers: Mapping[str, str], raw: bytes, settings: ConnectionSettings,
           request_id: str | None, parse: Callable[[Any], T]) -> T:
    """What an answer says, parsed; every failure to read it is a response error (after a POST: an ambiguous
    submit), whatever a hostile body made the parser raise (huge numbers, deep nesting, odd types).

    :param status: HTTP status.
    :param headers: its headers.
    :param raw: its body.
    :param settings: the connection (its secrets are scrubbed from messages).
    :param request_id: the job asked about, if any.
    :param parse: turns the decoded JSON into the result.
    """
    body = interpret_response(status, headers, raw, settings, request_id=request_id)
    try:
        return parse(body)
    except SeedanceError:
        raise
    except Exception as exc:
        raise SeedanceResponseError(f"unreadable answer ({type(exc).__name__})", request_id=request_id) from None
