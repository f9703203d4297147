"""TLS for both paths: the CA file a connection trusts, checked without blocking an event loop, and one shared
``ssl.SSLContext`` per CA file per process (``docs/architecture.rst``, "The hook and its retries").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import ssl
import stat
import threading
from typing import TYPE_CHECKING

from airflow_provider_seedance._redact import redact_text
from airflow_provider_seedance.errors import SeedanceConnectionError

if TYPE_CHECKING:
    from airflow_provider_seedance.hooks._connection import ConnectionSettings

__all__ = ["certifi_bundle", "connection_error", "environment_ca_bundle", "is_pem_bundle", "ssl_context_for"]


def connection_error(conn_id: str, what: str) -> SeedanceConnectionError:
    """A connection problem, naming the connection (redacted: messages quote values, maybe a proxy password).

    :param conn_id: the connection.
    :param what: what is wrong.
    """
    return SeedanceConnectionError(redact_text(f"Seedance connection {conn_id!r}: {what}"))


#: One TLS context per CA file per process, built once in a thread even when a thousand waits ask at once
#: (a triggerer restart): the first asker starts the build, the others await the same future.
_SSL_CONTEXTS: dict[tuple[str | None, str], concurrent.futures.Future[ssl.SSLContext | None]] = {}
_SSL_LOCK = threading.Lock()


def _build_ssl_context(settings: ConnectionSettings) -> ssl.SSLContext | None:
    cafile = settings.ca_file()  # may read the CA file (its check): here, in a thread, never in the event loop
    if cafile is None:
        return None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:  # the file changed since it was checked
        raise connection_error(settings.conn_id, f"cannot load the CA bundle {cafile!r}: {exc}") from None


async def ssl_context_for(settings: ConnectionSettings) -> ssl.SSLContext | bool | None:
    """aiohttp's ``ssl`` option for a connection: None for plain http (no context is built), False when
    verification is off, else the shared context trusting :meth:`ConnectionSettings.ca_file`.

    :param settings: the connection.
    """
    if not settings.base_url.startswith("https:"):
        return None
    if not settings.verify_ssl:
        return False
    key = (settings.ca_bundle, os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or "")
    with _SSL_LOCK:
        future = _SSL_CONTEXTS.get(key)
        if future is None:
            future = _SSL_CONTEXTS[key] = concurrent.futures.Future()
            threading.Thread(target=_fill, args=(future, key, settings), name="seedance-ssl", daemon=True).start()
    return await asyncio.wrap_future(future)


def _fill(future: concurrent.futures.Future[ssl.SSLContext | None], key: tuple[str | None, str],
          settings: ConnectionSettings) -> None:
    try:
        future.set_result(_build_ssl_context(settings))
    except BaseException as exc:
        with _SSL_LOCK:
            _SSL_CONTEXTS.pop(key, None)  # a later wait tries again (the file may be fixed by then)
        future.set_exception(exc)


def certifi_bundle() -> str:
    """certifi's CA file (requests' default)."""
    import certifi  # requests' own dependency

    return str(certifi.where())


@functools.lru_cache(maxsize=32)  # a triggerer reads its connection once per wait: read each file once
def is_pem_bundle(path: str) -> bool:
    """Whether ``path`` is a regular file holding PEM certificates (a FIFO is refused unread: it would block)."""
    # Checked when the connection is read, so a wrong path fails with its name instead of as a TLS error
    # (retried as "could not connect") on the first request. Regular files only: a FIFO would block the read.
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return b"-----BEGIN CERTIFICATE-----" in handle.read(4 * 1024 * 1024)
    except OSError:
        return False


def environment_ca_bundle(conn_id: str) -> str | None:
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (what requests reads), checked; None when neither is set."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(name)
        if path:
            if not is_pem_bundle(path):
                raise connection_error(conn_id, f"the environment variable {name}={path!r} (the CA bundle "
                                                "requests and this provider trust) is not a readable PEM file of CA "
                                                "certificates")
            return path
    return None
