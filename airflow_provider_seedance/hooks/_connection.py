"""An Airflow ``seedance`` connection -> the settings the hook needs (base URL, key, timeout, proxies, TLS).

Read once per hook (sync or async lookup) and checked with errors that name the connection and the field. TLS
contexts: :mod:`._tls`; the form of Airflow < 3.2: :mod:`._form`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from requests.utils import get_environ_proxies, select_proxy

from airflow_provider_seedance._addresses import UnsafeUrlError, parse_http_url
from airflow_provider_seedance._redact import url_secrets
from airflow_provider_seedance.catalogue import pricing_problem
from airflow_provider_seedance.errors import SeedanceConnectionError
from airflow_provider_seedance.hooks._tls import (
    certifi_bundle,
    connection_error,
    environment_ca_bundle,
    is_pem_bundle,
    ssl_context_for,
)
from airflow_provider_seedance.models import is_loopback_host

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ConnectionSettings",
    "SeedanceConnectionError",
    "aload_settings",
    "load_settings",
    "resolve_base_url",
    "secrets_of",
    "settings_from_connection",
    "ssl_context_for",
]

DEFAULT_BASE_URL = "https://www.seedance2.ink"
DEFAULT_TIMEOUT = 30.0

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a request needs from the connection. The key is left out of ``repr``.

    :param conn_id: the Airflow connection id (for messages).
    :param base_url: scheme://host[:port][/prefix], no trailing slash.
    :param api_key: the bearer token.
    :param timeout: seconds allowed for one HTTP request.
    :param proxies: requests-style proxy mapping (``{"https": "http://proxy:3128"}``); left out of ``repr``
        (a proxy URL may carry a password).
    :param verify_ssl: verify TLS certificates.
    :param price_table: the ``price_table`` extra: model id -> pricing object (same shape as the catalogue's
        ``pricing``), which wins over the live catalogue and the bundled table in estimates.
    :param ca_bundle: the ``ca_bundle`` extra: a PEM file of CAs to trust, on both the sync and async paths.
    :param host_was_empty: the host field was empty, so ``base_url`` is the vendor's default.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    proxies: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    verify_ssl: bool = True
    price_table: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, hash=False)
    ca_bundle: str | None = None
    host_was_empty: bool = False

    @property
    def proxy_mapping(self) -> dict[str, str]:
        """The proxies as the dict ``requests`` takes."""
        return dict(self.proxies)

    @property
    def proxy_url(self) -> str | None:
        """The one proxy aiohttp should use for the base URL, chosen the way ``requests`` chooses."""
        return select_proxy(self.base_url, self.proxy_mapping) if self.proxies else None

    def session_key(self) -> tuple[Any, ...]:
        """What distinguishes one shared async session from another (never the key itself)."""
        return (self.base_url, self.verify_ssl, self.ca_bundle, self.proxy_url)

    def ca_file(self) -> str | None:
        """The CA bundle both paths trust: the ``ca_bundle`` extra, else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
        (what requests reads), else certifi's (requests' default). None when verification is off."""
        if not self.verify_ssl:
            return None
        return self.ca_bundle or environment_ca_bundle(self.conn_id) or certifi_bundle()

    @property
    def requests_verify(self) -> bool | str:
        """``verify`` for requests: False, or the CA file (so the environment cannot override the extra)."""
        return self.ca_file() or False

    def async_proxy(self) -> str | None:
        """The proxy aiohttp uses: the connection's, else the environment's (NO_PROXY honoured) as requests
        chooses it, so both paths go the same way."""
        if self.proxies:
            return self.proxy_url
        return _environ_proxy(self.base_url)



@functools.lru_cache(maxsize=64)
def _environ_proxy(base_url: str) -> str | None:
    # Cached per process: the environment of a running worker or triggerer does not change.
    return select_proxy(base_url, get_environ_proxies(base_url))


_fail = connection_error


def resolve_base_url(
    host: str | None, port: int | None = None, *, conn_id: str = "seedance_default", allow_insecure_http: bool = False
) -> str:
    """Base URL from the connection's host (and port) field.

    A host with a scheme is used as is (the port field is added only if the URL has none). A bare host gets
    ``https://``, except loopback hosts (the local emulator) which get ``http://``. Empty -> the vendor's URL.
    An explicit ``http://`` to a host that is not loopback is refused (the key would travel in clear) unless
    ``allow_insecure_http``.

    :param host: the connection's host field.
    :param port: the connection's port field.
    :param conn_id: for error messages.
    :param allow_insecure_http: the connection's opt-in to plain http to a remote host.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        try:
            ipaddress.IPv6Address(text)
            text = f"[{text}]"  # a bare IPv6 literal must be bracketed inside a URL
        except ValueError:
            pass
        try:
            hostname = urlsplit("//" + text).hostname
        except ValueError:
            raise _fail(conn_id, f"host {host!r} is not a valid host name or URL") from None
        text = ("http://" if is_loopback_host(hostname) else "https://") + text
    try:
        # As the clients will read it: urlsplit and urllib3 disagree on "http://remote:1\\@127.0.0.1".
        parse_http_url(text)
    except UnsafeUrlError as exc:
        raise _fail(conn_id, f"field 'host' {host!r} is refused: {exc}. Allowed: scheme://host[:port][/path], "
                             f"e.g. {DEFAULT_BASE_URL}") from None
    try:
        parts = urlsplit(text)
        has_port = parts.port is not None
    except ValueError:
        raise _fail(conn_id, f"host {host!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(conn_id, f"host {host!r} must be an http(s) URL or a host name, e.g. {DEFAULT_BASE_URL}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not allow_insecure_http:
        raise _fail(
            conn_id,
            f"host {host!r} is plain http:// to a remote host, which would send the API key unencrypted. Use "
            "https://, or set the extra allow_insecure_http to true for a trusted test endpoint",
        )
    netloc = parts.netloc
    if port and not has_port:
        netloc = f"{netloc}:{int(port)}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _timeout(conn_id: str, value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIMEOUT
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise _fail(conn_id, f"extra 'timeout' must be a positive number of seconds, got {value!r}")
    return seconds


def _proxies(conn_id: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            example = '{"https": "http://proxy:3128"}'
            raise _fail(conn_id, f"extra 'proxies' must be a JSON object, e.g. {example}") from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(conn_id, f"extra 'proxies' must map scheme to proxy URL (strings), got {value!r}")
    return tuple(sorted((k, v) for k, v in value.items() if v))


def _price_table(conn_id: str, value: Any) -> dict[str, dict[str, Any]]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    example = '{"seedance-2.0": {"perSecond": {"720p": 8}, "referenceMediaSurcharge": 24}}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _fail(conn_id, f"extra 'price_table' must be a JSON object, e.g. {example}") from None
    if not isinstance(value, Mapping):
        raise _fail(conn_id, f"extra 'price_table' must map model ids to pricing objects, e.g. {example}")
    table: dict[str, dict[str, Any]] = {}
    for model, pricing in value.items():
        problem = pricing_problem(pricing)
        if not isinstance(model, str) or not model.strip() or problem is not None:
            # Refused, not skipped: a typo must not silently fall back to a lower price.
            raise _fail(conn_id, f"extra 'price_table' entry {model!r} {problem or 'needs a model id'}, e.g. {example}")
        table[model.strip()] = json.loads(json.dumps(pricing))
    return table


def _flag(conn_id: str, name: str, value: Any, default: bool) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _fail(conn_id, f"extra {name!r} must be true or false, got {value!r}")


def _ca_bundle(conn_id: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not is_pem_bundle(value.strip()):
        raise _fail(conn_id, f"extra 'ca_bundle' must be the path of a readable PEM file of CA certificates, "
                             f"got {value!r}")
    return value.strip()


def settings_from_connection(
    conn: Any, conn_id: str, *, timeout: float | None = None, extra: Mapping[str, Any] | None = None
) -> ConnectionSettings:
    """Read and check a connection object (Airflow's ``Connection``, any version).

    :param conn: the connection.
    :param conn_id: its id (for messages).
    :param timeout: the hook's own timeout, which wins over the connection's extra.
    :param extra: the extras, when already read (the async path reads them without blocking).
    """
    api_key = (conn.password or "").strip()
    if not api_key:
        raise _fail(
            conn_id,
            "no API key. Put your Seedance API key (sd2_...) in the connection's password field "
            "(labelled 'API key' in the UI).",
        )
    if any(ord(c) < 32 or ord(c) == 127 or ord(c) > 255 for c in api_key):
        # It goes into an HTTP header: a line break would inject headers, and HTTP headers are latin-1.
        raise _fail(conn_id, "the API key (password field) contains a control or non-latin-1 character")
    if extra is None:
        extra = conn.extra_dejson
    extra = extra if isinstance(extra, Mapping) else {}
    insecure = _flag(conn_id, "allow_insecure_http", extra.get("allow_insecure_http"), False)
    return ConnectionSettings(
        conn_id=conn_id,
        base_url=resolve_base_url(conn.host, conn.port, conn_id=conn_id, allow_insecure_http=insecure),
        api_key=api_key,
        timeout=_timeout(conn_id, timeout if timeout is not None else extra.get("timeout")),
        proxies=_proxies(conn_id, extra.get("proxies")),
        verify_ssl=_flag(conn_id, "verify_ssl", extra.get("verify_ssl"), True),
        price_table=_price_table(conn_id, extra.get("price_table")),
        ca_bundle=_ca_bundle(conn_id, extra.get("ca_bundle")),
        host_was_empty=not (conn.host or "").strip(),
    )


def secrets_of(settings: ConnectionSettings) -> list[str]:
    # The key, and a proxy URL's password (a client library's error message may quote it).
    return [settings.api_key, *url_secrets(settings.proxy_mapping.values())]


def load_settings(hook: Any, conn_id: str, *, timeout: float | None = None) -> ConnectionSettings:
    """Look the connection up (worker side), check it, and mask its secrets in logs.

    :param hook: the hook whose ``get_connection`` is used (a subclass may override it).
    :param conn_id: the connection id.
    :param timeout: the hook's own timeout, which wins over the connection's extra.
    """
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, mask_secret

    try:
        conn = hook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise _fail(conn_id, "not found: create it (connection type 'seedance'), e.g. with the environment "
                             "variable AIRFLOW_CONN_" + conn_id.upper()) from None
    settings = settings_from_connection(conn, conn_id, timeout=timeout)
    for secret in secrets_of(settings):
        mask_secret(secret)
    return settings


async def aload_settings(hook: Any, conn_id: str, *, timeout: float | None = None) -> ConnectionSettings:
    """:func:`load_settings` for an event loop: the http provider's non-blocking lookup and extras.

    :param hook: the hook to resolve the connection through.
    :param conn_id: the connection id.
    :param timeout: the hook's own timeout, which wins over the connection's extra.
    """
    from airflow.providers.common.compat import connection as compat
    from airflow.providers.common.compat.connection import get_async_connection
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        conn = await get_async_connection(conn_id=conn_id, hook=hook)
    except AirflowNotFoundException:
        raise _fail(conn_id, "not found: create it (connection type 'seedance'), e.g. with the environment "
                             "variable AIRFLOW_CONN_" + conn_id.upper()) from None
    aextra = getattr(compat, "get_async_extra_dejson", None)  # an older common.compat has none
    extra = await aextra(conn) if aextra is not None else conn.extra_dejson
    if isinstance(extra, Mapping) and extra.get("ca_bundle"):
        # Checking the CA file reads it: in a thread, never in the event loop.
        settings = await asyncio.to_thread(settings_from_connection, conn, conn_id, timeout=timeout, extra=extra)
    else:
        settings = settings_from_connection(conn, conn_id, timeout=timeout, extra=extra)
    try:
        from airflow.sdk.log import amask_secret  # Airflow >= 3.3: reaches the supervisor without blocking
    except ImportError:
        from airflow.providers.common.compat.sdk import mask_secret as sync_mask

        for secret in secrets_of(settings):
            sync_mask(secret)
    else:
        for secret in secrets_of(settings):
            await amask_secret(secret)
    return settings
