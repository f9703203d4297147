"""The send of one request on each path, through the http provider's public API, and the bounded read of
its answer.

Sync: :meth:`HttpHook.run` with ``check_response`` off and redirects off, on the hook's one
``requests.Session`` (streamed, so the body is read here, bounded in bytes). Async: :meth:`HttpAsyncHook.run`
on the one shared ``aiohttp.ClientSession`` (``session=``), ``retry_limit=1`` and ``check_response`` off, so
the provider's own classifier (:mod:`._http`) and retries (:mod:`._retry`) see every answer. Why, and what the
http provider cannot do for us (a cap on the body size): ``docs/architecture.rst``, "The hook".
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import requests
from airflow.providers.http.hooks.http import HttpAsyncHook, SessionConfig
from requests.auth import AuthBase

from airflow_provider_seedance.errors import SeedanceResponseError

__all__ = ["MAX_RESPONSE_BYTES", "BearerAuth", "SeedanceAsyncHttpHook", "read_capped", "read_capped_async"]

#: The largest answer read: the API's answers are a few KB; a server streaming more is refused, not buffered.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CHUNK = 65536


def _too_large() -> SeedanceResponseError:
    return SeedanceResponseError(f"answer larger than {MAX_RESPONSE_BYTES:,} bytes: refused")


class BearerAuth(AuthBase):
    """Bearer token as a requests auth object: it also stops requests from applying ~/.netrc credentials."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def read_capped(response: requests.Response, limit: float) -> bytes:
    """The body of a streamed requests answer, at most MAX_RESPONSE_BYTES, within ``limit`` seconds.

    :param response: a response sent with ``stream=True``.
    :param limit: seconds the whole body may take (requests' own timeout bounds each read, not the answer).
    """
    deadline = time.monotonic() + limit
    body = bytearray()
    # read1: what has arrived (up to 64 KiB), decoded; iter_content would wait for a full 64 KiB.
    while chunk := response.raw.read1(_CHUNK, decode_content=True):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _too_large()
        if time.monotonic() > deadline:
            raise requests.exceptions.ReadTimeout(f"the answer took longer than {limit:g} s to arrive")
    return bytes(body)


async def read_capped_async(response: aiohttp.ClientResponse) -> bytes:
    """The body of an aiohttp answer, at most MAX_RESPONSE_BYTES (the request's total timeout bounds the time).

    :param response: the answer.
    """
    body = bytearray()
    while chunk := await response.content.read(_CHUNK):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _too_large()
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
