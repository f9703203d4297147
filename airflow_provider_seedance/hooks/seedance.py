"""SeedanceHook: the Seedance 2.0 Open API from Airflow, sync (workers) and async (triggers).

Connection -> base URL + API key (:mod:`._connection`); one ``requests.Session`` per hook; per event loop
and connection one shared ``aiohttp.ClientSession`` and one keep-alive pool for GETs (:mod:`._keepalive`: the
triggerer's status polls at a fraction of aiohttp's CPU), both shared through :mod:`._async_session`;
tenacity retries bounded in attempts and time (:mod:`._retry`); every response and client failure
interpreted in one place (:mod:`._http`) and classified by :mod:`airflow_provider_seedance.errors`; the live
model catalogue (:mod:`._catalogue`).

Why not ``HttpHook``/``HttpAsyncHook`` from apache-airflow-providers-http: ``HttpHook.run`` builds a new
``requests.Session`` per call (no keep-alive across calls), defaults a bare host to ``http://``, sends unknown
extras as headers and follows redirects (turning a POST into a GET); ``HttpAsyncHook`` opens a session per call
and does not retry 429 or connection errors. Closing those gaps would mean overriding nearly all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

import aiohttp
import requests
from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from requests.auth import AuthBase
from requests.utils import get_environ_proxies, select_proxy

from airflow_provider_seedance._logging import ClassLoggerMixin
from airflow_provider_seedance._redact import url_secrets
from airflow_provider_seedance.catalogue import CreditEstimate, ModelSpec, parse_catalogue
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAuthError,
    SeedanceError,
    SeedanceNotFoundError,
    SeedanceTransportError,
    SeedanceValidationError,
    is_retryable,
)
from airflow_provider_seedance.hooks._async_session import SessionLease, acquire_session, release_session
from airflow_provider_seedance.hooks._catalogue import (
    CatalogueCache,
    estimate_with_catalogue,
    spec_from_catalogue,
    validate_builtin,
)
from airflow_provider_seedance.hooks._connection import (
    ConnectionSettings,
    SeedanceConnectionError,
    connection_form_widgets,
    settings_from_connection,
    ui_field_behaviour,
)
from airflow_provider_seedance.hooks._http import (
    USER_AGENT,
    interpret_response,
    transport_error_from_aiohttp,
    transport_error_from_keepalive,
    transport_error_from_requests,
)
from airflow_provider_seedance.hooks._keepalive import KeepAlivePool, ResponseError
from airflow_provider_seedance.hooks._retry import RetryPolicy, build_retrying, log_before_sleep
from airflow_provider_seedance.models import GenerationRequest, JobResult

__all__ = ["GENERATIONS_PATH", "MODELS_PATH", "RetryPolicy", "SeedanceConnectionError", "SeedanceHook"]

GENERATIONS_PATH = "/api/open/v1/video/generations"
MODELS_PATH = "/api/open/v1/models"

T = TypeVar("T")


class _BearerAuth(AuthBase):
    """Bearer token as a requests auth object: it also stops requests from applying ~/.netrc credentials."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


def _is_ambiguous_submit_failure(exc: BaseException) -> bool:
    # Exactly the failures a GET may repeat but a POST may not: the request may have created a job.
    return is_retryable(exc, idempotent=True) and not is_retryable(exc, idempotent=False)


@contextlib.contextmanager
def _ambiguous_submit_guard() -> Iterator[None]:
    """Turn a submit failure that may have created a job into :class:`SeedanceAmbiguousSubmitError`."""
    try:
        yield
    except SeedanceError as exc:
        if _is_ambiguous_submit_failure(exc):
            raise SeedanceAmbiguousSubmitError(exc) from exc
        raise


_DEFAULT_POLICY = RetryPolicy()


@functools.lru_cache(maxsize=64)
def _policy(policy: RetryPolicy, max_retries: int | None) -> RetryPolicy:
    # Policies are frozen: a triggerer's thousands of hooks share one instead of holding one each.
    return policy if max_retries is None else replace(policy, max_attempts=max_retries + 1)


@functools.lru_cache(maxsize=64)
def _environ_proxy(base_url: str) -> str | None:
    # The same environment proxies (and NO_PROXY) requests would use, so both paths agree. Cached per
    # process: every trigger builds its own hook, and walking os.environ per hook was ~13% of a trigger's
    # CPU in the triggerer benchmark; the environment of a running triggerer does not change.
    return select_proxy(base_url, get_environ_proxies(base_url))


def _secrets_of(settings: ConnectionSettings) -> list[str]:
    # The key, and a proxy URL's password (a client library's error message may quote it).
    return [settings.api_key, *url_secrets(settings.proxy_mapping.values())]


def _job_path(request_id: str, suffix: str = "") -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise SeedanceValidationError("request_id", request_id, "a non-empty request id string")
    return _quoted_job_path(request_id, suffix)


@functools.lru_cache(maxsize=4096)  # a trigger asks for the same path every poll
def _quoted_job_path(request_id: str, suffix: str) -> str:
    return f"{GENERATIONS_PATH}/{quote(request_id.strip(), safe='')}{suffix}"


class SeedanceHook(ClassLoggerMixin, BaseHook):
    """Submit, poll and cancel Seedance generations; read the model catalogue.

    Every failure is a :class:`~airflow_provider_seedance.errors.SeedanceError`. Reads (``get_job``,
    ``cancel_job``, ``list_models``) are retried on 429 (honouring ``Retry-After``), 5xx, transport errors and
    malformed answers. ``submit`` is retried only when no job can exist (429, connection never opened); when a
    job may exist it raises :class:`~airflow_provider_seedance.errors.SeedanceAmbiguousSubmitError` and never
    sends the POST again.

    :param seedance_conn_id: the ``seedance`` connection: host = base URL (empty: the vendor's), password = API
        key, extras ``timeout`` (s), ``proxies`` (dict or JSON), ``verify_ssl`` (bool), ``price_table`` (JSON:
        model id -> pricing, see :meth:`estimate`).
    :param timeout: seconds per HTTP request; overrides the connection's ``timeout`` extra (default 30).
    :param max_retries: retries after the first attempt; overrides ``retry_policy.max_attempts``.
    :param retry_policy: backoff, jitter and total-time bound (:class:`RetryPolicy`).
    :param catalogue_ttl: seconds the model catalogue is cached by this hook (0: not cached).
    """

    conn_name_attr = "seedance_conn_id"
    default_conn_name = "seedance_default"
    conn_type = "seedance"
    hook_name = "Seedance"

    def __init__(
        self,
        seedance_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        catalogue_ttl: float = 300.0,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.seedance_conn_id = seedance_conn_id
        self.timeout = timeout
        self.retry_policy = _policy(retry_policy or _DEFAULT_POLICY, max_retries)
        self._settings: ConnectionSettings | None = None
        self._settings_loading: asyncio.Future[ConnectionSettings] | None = None
        self._previous_settings: ConnectionSettings | None = None  # kept by refresh_connection
        self._generation = 0  # bumped by refresh_connection
        self._session: requests.Session | None = None
        self._lease: SessionLease | None = None
        self._pool_lease: SessionLease | None = None
        self._pool_settings: ConnectionSettings | None = None  # what _pool_lease was taken for
        self._get_head: bytes | None = None  # request headers of a GET, built once (they hold the key)
        self._get_head_for: ConnectionSettings | None = None  # the settings _get_head was built from
        self._catalogue = CatalogueCache(catalogue_ttl)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seedance_conn_id={self.seedance_conn_id!r})"

    @property
    def catalogue_ttl(self) -> float:
        """Seconds a fetched model catalogue is reused."""
        return self._catalogue.ttl

    @catalogue_ttl.setter
    def catalogue_ttl(self, seconds: float) -> None:
        self._catalogue.ttl = seconds

    # -- Airflow UI (Airflow < 3.2; newer versions read conn-fields from the provider info) --------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled connection form fields (same source as the provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection form fields, built from ``CONN_FIELDS`` (needs wtforms)."""
        return connection_form_widgets()

    # -- connection ----------------------------------------------------------------------------------------

    def _load(self, conn: Any) -> ConnectionSettings:
        settings = settings_from_connection(conn, self.seedance_conn_id, timeout=self.timeout)
        for secret in _secrets_of(settings):
            mask_secret(secret)
        return settings

    async def _aload(self, conn: Any) -> ConnectionSettings:
        settings = settings_from_connection(conn, self.seedance_conn_id, timeout=self.timeout)
        amask: Callable[[str], Awaitable[None]] | None
        try:
            from airflow.sdk.log import amask_secret as amask  # recent Airflow (3.3 has it, 3.0 not)
        except ImportError:
            amask = None
        for secret in _secrets_of(settings):
            if amask is None:
                mask_secret(secret)
            else:
                # Also reaches the supervisor from a task without a greenback portal (the shared lookup's).
                await amask(secret)
        return settings

    def _get_settings(self) -> ConnectionSettings:
        if self._settings is None:
            self._settings = self._load(self.get_connection(self.seedance_conn_id))
        return self._settings

    async def _aget_settings(self, timeout: float | None = None) -> ConnectionSettings:
        if self._settings is not None:
            return self._settings
        loading = self._settings_loading
        if loading is None or loading.get_loop() is not asyncio.get_running_loop():
            # One lookup at a time: a hook shared by many waits must not look the connection up once per wait.
            loading = self._settings_loading = asyncio.ensure_future(self._alookup())
        generation = self._generation
        try:
            try:
                settings = await asyncio.wait_for(asyncio.shield(loading), timeout)
            except asyncio.TimeoutError:  # a distinct class before Python 3.11
                raise TimeoutError(f"looking up connection {self.seedance_conn_id!r} timed out") from None
        except Exception as exc:
            previous = self._previous_settings
            if previous is None:
                raise
            # A re-read (refresh_connection) that fails keeps what worked: a secrets backend's hiccup must
            # not fail every wait of a triggerer. The next refresh tries again.
            self.log.warning("Seedance: re-reading connection %r failed (%s: %s); keeping its previous settings",
                             self.seedance_conn_id, type(exc).__name__, exc)
            settings = previous
        if generation == self._generation:  # not refreshed meanwhile
            self._settings = settings
        return settings

    async def _alookup(self) -> ConnectionSettings:
        try:
            aget = getattr(type(self), "aget_connection", None)
            if aget is not None:  # Airflow >= 3.1 task SDK: no blocking lookup in the event loop
                conn = await aget(self.seedance_conn_id)
            else:
                from asgiref.sync import sync_to_async

                conn = await sync_to_async(self.get_connection)(self.seedance_conn_id)
            return await self._aload(conn)
        finally:
            self._settings_loading = None

    def refresh_connection(self) -> None:
        """Read the connection again on the next call (a rotated key, a changed host or timeout).

        A long-lived hook (the triggerer's shared status poller) calls this now and then. Should the new
        lookup fail, the async methods go on with the settings read before (with a warning).
        """
        self._previous_settings = self._settings or self._previous_settings
        self._settings = None
        self._settings_loading = None  # a lookup already under way may predate the change
        self._generation += 1
        self.close()  # the sync session's auth holds the old key

    @property
    def base_url(self) -> str:
        """The API's base URL from the connection (no trailing slash)."""
        return self._get_settings().base_url

    # -- sync transport ------------------------------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (created once, reused for keep-alive)."""
        if self._session is None:
            settings = self._get_settings()
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json"
            session.auth = _BearerAuth(settings.api_key)
            self._session = session
        return self._session

    def _send(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T]) -> T:
        settings = self._get_settings()
        session = self.get_conn()
        what = f"{method} {path}"
        try:
            response = session.request(
                method,
                settings.base_url + path,
                json=body,
                timeout=settings.timeout,
                # Per request: requests lets environment proxies override session.proxies otherwise.
                proxies=settings.proxy_mapping or None,
                verify=settings.verify_ssl,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error_from_requests(exc, what, settings.api_key) from exc
        self.log.debug("Seedance %s -> HTTP %s", what, response.status_code)
        text = response.content.decode("utf-8", errors="replace")
        return parse(
            interpret_response(response.status_code, response.headers, text, request_id=request_id,
                               secret=settings.api_key)
        )

    def _call(
        self, method: str, path: str, *, parse: Callable[[Any], T], idempotent: bool,
        body: Any = None, request_id: str | None = None,
    ) -> T:
        self._get_settings()  # a connection problem is not retried
        what = f"{method} {path}"
        retrying = build_retrying(
            self.retry_policy, idempotent=idempotent, before_sleep=log_before_sleep(self.log, what, self.retry_policy)
        )
        return cast("T", retrying(self._send, method, path, body, request_id, parse))

    # -- async transport -----------------------------------------------------------------------------------

    def _proxy_for_async(self, settings: ConnectionSettings) -> str | None:
        if settings.proxy_url:
            return settings.proxy_url
        return _environ_proxy(settings.base_url)

    async def _leased(self, attr: str, key: tuple[Any, ...], factory: Callable[[], Any]) -> SessionLease:
        """This hook's lease in ``attr`` if it still fits ``key`` in this loop, else a new one."""
        loop = asyncio.get_running_loop()
        lease: SessionLease | None = getattr(self, attr)
        if lease is not None and lease.loop is loop and not lease.session.closed and lease.key == key:
            return lease
        setattr(self, attr, None)  # before any await: a concurrent caller must not give it back twice
        if lease is not None and lease.loop is loop:
            await release_session(lease)
        new = await acquire_session(key, factory)
        current: SessionLease | None = getattr(self, attr)
        if current is not None:  # another task of this hook renewed it meanwhile: keep one reference
            await release_session(new)
            return current
        setattr(self, attr, new)
        return new

    async def _async_session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        def factory() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=settings.verify_ssl),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                trust_env=False,  # proxies are resolved like requests does; netrc must not replace the key
            )

        lease = await self._leased("_lease", settings.session_key(), factory)
        return cast("aiohttp.ClientSession", lease.session)

    async def _keepalive_pool(self, settings: ConnectionSettings) -> KeepAlivePool:
        parts = urlsplit(settings.base_url)
        tls = parts.scheme == "https"

        def factory() -> KeepAlivePool:
            return KeepAlivePool(parts.hostname or "", parts.port or (443 if tls else 80), tls=tls,
                                 verify_ssl=settings.verify_ssl)

        lease = await self._leased("_pool_lease", ("keepalive", *settings.session_key()), factory)
        return cast("KeepAlivePool", lease.session)

    @staticmethod
    def _target(settings: ConnectionSettings, path: str) -> bytes:
        # The base URL's path goes on the request line: encoded as aiohttp would (a space or non-ASCII
        # character there would otherwise break the line).
        return (quote(urlsplit(settings.base_url).path, safe="/%:@!$&'()*+,;=~") + path).encode("ascii")

    def _get_request_head(self, settings: ConnectionSettings) -> bytes:
        if self._get_head is None or self._get_head_for is not settings:
            self._get_head_for = settings
            parts = urlsplit(settings.base_url)
            host = parts.netloc.rpartition("@")[2]
            if not host.isascii():
                host = host.encode("idna").decode("ascii")
            self._get_head = (
                f"Host: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: application/json\r\n"
                f"Authorization: Bearer {settings.api_key}\r\n\r\n"
            ).encode("latin-1")
        return self._get_head

    def _current_pool(self, settings: ConnectionSettings) -> KeepAlivePool | None:
        """The leased pool, if it is this loop's and was taken for these settings (a re-read may name another
        server)."""
        lease = self._pool_lease
        if (lease is None or lease.session.closed or lease.loop is not asyncio.get_running_loop()
                or settings is not self._pool_settings):
            return None
        return cast("KeepAlivePool", lease.session)

    def _get_request(self, settings: ConnectionSettings, path: str) -> bytes:
        return b"GET " + self._target(settings, path) + b" HTTP/1.1\r\n" + self._get_request_head(settings)

    @staticmethod
    def _limit(settings: ConnectionSettings, timeout: float | None) -> float:
        return settings.timeout if timeout is None else min(settings.timeout, timeout)

    @staticmethod
    def _decode(settings: ConnectionSettings, status: int, headers: Any, raw: bytes, request_id: str | None) -> Any:
        text = raw.decode("utf-8", errors="replace")
        return interpret_response(status, headers, text, request_id=request_id, secret=settings.api_key)

    async def _aget_keepalive(self, settings: ConnectionSettings, path: str, timeout: float) -> tuple[int, Any, bytes]:
        pool = self._current_pool(settings)
        if pool is None:
            pool = await self._keepalive_pool(settings)
            self._pool_settings = settings
        try:
            response = await pool.get(self._get_request(settings, path), timeout)
        except (OSError, TimeoutError, ResponseError) as exc:  # ConnectFailed is an OSError
            raise transport_error_from_keepalive(exc, f"GET {path}", settings.api_key) from exc
        return response.status, response.headers, response.body

    async def _asend(
        self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T],
        timeout: float | None = None,
    ) -> T:
        settings = self._settings or await self._aget_settings(timeout)
        limit = self._limit(settings, timeout)
        what = f"{method} {path}"
        if method == "GET" and self._proxy_for_async(settings) is None:
            status, headers, raw = await self._aget_keepalive(settings, path, limit)
        else:
            session = await self._async_session(settings)
            try:
                async with session.request(
                    method,
                    settings.base_url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {settings.api_key}"},
                    timeout=aiohttp.ClientTimeout(total=limit),
                    proxy=self._proxy_for_async(settings),
                    allow_redirects=False,
                ) as response:
                    raw = await response.read()
                    status, headers = response.status, response.headers
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise transport_error_from_aiohttp(exc, what, settings.api_key) from exc
        self.log.debug("Seedance %s -> HTTP %s", what, status)
        return parse(self._decode(settings, status, headers, raw, request_id))

    async def _acall(
        self, method: str, path: str, *, parse: Callable[[Any], T], idempotent: bool,
        body: Any = None, request_id: str | None = None, timeout: float | None = None,
    ) -> T:
        if self._settings is None:
            await self._aget_settings(timeout)
        if self.retry_policy.max_attempts <= 1:
            # The trigger's polls: its own loop is the retry loop, and tenacity's machinery around a call
            # that is never retried was ~17% of a trigger's CPU in the triggerer benchmark.
            return await self._asend(method, path, body, request_id, parse, timeout)
        what = f"{method} {path}"
        retrying = build_retrying(
            self.retry_policy, idempotent=idempotent, asynchronous=True,
            before_sleep=log_before_sleep(self.log, what, self.retry_policy),
        )
        return cast("T", await retrying(self._asend, method, path, body, request_id, parse, timeout))

    # -- jobs ----------------------------------------------------------------------------------------------

    def _log_submit(self, request: GenerationRequest) -> None:
        if request.media_urls is not None and not request.media_urls:
            # Debug: the operator says it at info level with what it means there (a template rendered empty).
            self.log.debug("Seedance: no media URLs: text-to-video")

    def submit(self, request: GenerationRequest) -> JobResult:
        """Validate, then POST the generation. Never re-sends a POST that may have created a job.

        :param request: the generation.
        :raises SeedanceValidationError: a field breaks a rule (nothing was sent).
        :raises SeedanceAmbiguousSubmitError: the POST may have created (and charged) a job.
        """
        self.validate_request(request)
        self._log_submit(request)
        with _ambiguous_submit_guard():
            result = self._call(
                "POST", GENERATIONS_PATH, body=request.to_api_json(), idempotent=False, parse=JobResult.from_api_json
            )
        self.log.info("Seedance generation %s submitted (%s)", result.request_id, result.raw_status)
        return result

    async def asubmit(self, request: GenerationRequest) -> JobResult:
        """Async :meth:`submit`.

        :param request: the generation.
        """
        await self.avalidate_request(request)
        self._log_submit(request)
        with _ambiguous_submit_guard():
            result = await self._acall(
                "POST", GENERATIONS_PATH, body=request.to_api_json(), idempotent=False, parse=JobResult.from_api_json
            )
        self.log.info("Seedance generation %s submitted (%s)", result.request_id, result.raw_status)
        return result

    @staticmethod
    def _parser(request_id: str) -> Callable[[Any], JobResult]:
        return lambda body: JobResult.from_api_json(body, request_id=request_id)

    def get_job(self, request_id: str) -> JobResult:
        """Status of a generation (retried).

        :param request_id: the id ``submit`` returned.
        """
        return self._call("GET", _job_path(request_id), idempotent=True, request_id=request_id,
                          parse=self._parser(request_id))

    def start_get_job(
        self, request_id: str, timeout: float | None, done: Callable[[JobResult | None, BaseException | None], None]
    ) -> bool:
        """Start a status request without a task, when it can go out at once; False when it cannot.

        For the triggerer's status poller, which makes thousands of these: once the connection has been read
        and the keep-alive pool holds an idle connection, the request is written now and ``done`` is called
        from the socket's read callback with the result or the error :meth:`aget_job` would raise. Otherwise
        (first call, a proxy, no idle connection) nothing is sent and the caller uses :meth:`aget_job`.

        :param request_id: the generation.
        :param timeout: seconds for the request, when shorter than the connection's ``timeout``.
        :param done: called once with ``(result, None)`` or ``(None, error)``.
        """
        settings = self._settings
        pool = None if settings is None else self._current_pool(settings)
        if settings is None or pool is None:
            return False
        path, parse = _job_path(request_id), self._parser(request_id)

        def finish(response: Any, error: BaseException | None) -> None:
            try:
                if error is not None:
                    raise transport_error_from_keepalive(error, f"GET {path}", settings.api_key) from error
                result = parse(self._decode(settings, response.status, response.headers, response.body, request_id))
            except Exception as exc:  # classified errors, and anything else: done must hear of every outcome
                done(None, exc)
            else:
                done(result, None)

        return pool.send_nowait(self._get_request(settings, path), self._limit(settings, timeout), finish)

    async def aget_job(self, request_id: str, *, timeout: float | None = None) -> JobResult:
        """Async :meth:`get_job`.

        :param request_id: the id ``submit`` returned.
        :param timeout: seconds for each attempt, when shorter than the connection's ``timeout``; also bounds
            the first connection lookup (``TimeoutError``). A trigger passes what is left before its deadline.
        """
        return await self._acall("GET", _job_path(request_id), idempotent=True, request_id=request_id,
                                 parse=self._parser(request_id), timeout=timeout)

    def cancel_job(self, request_id: str) -> JobResult:
        """Cancel a queued or processing generation (retried: cancelling twice is harmless).

        :param request_id: the generation.
        :raises SeedanceConflictError: it had already finished (409).
        """
        return self._call("POST", _job_path(request_id, "/cancel"), idempotent=True, request_id=request_id,
                          parse=self._parser(request_id))

    async def acancel_job(self, request_id: str) -> JobResult:
        """Async :meth:`cancel_job`.

        :param request_id: the generation.
        """
        return await self._acall("POST", _job_path(request_id, "/cancel"), idempotent=True,
                                 request_id=request_id, parse=self._parser(request_id))

    # -- catalogue -----------------------------------------------------------------------------------------

    def list_models(self, *, refresh: bool = False) -> list[ModelSpec]:
        """The vendor's live model catalogue (``GET /api/open/v1/models``), cached for ``catalogue_ttl``.

        :param refresh: ignore the cache.
        """
        cached = self._catalogue.get(refresh=refresh)
        if cached is not None:
            return cached
        return self._catalogue.put(self._call("GET", MODELS_PATH, idempotent=True, parse=parse_catalogue))

    async def alist_models(self, *, refresh: bool = False) -> list[ModelSpec]:
        """Async :meth:`list_models`.

        :param refresh: ignore the cache.
        """
        cached = self._catalogue.get(refresh=refresh)
        if cached is not None:
            return cached
        return self._catalogue.put(await self._acall("GET", MODELS_PATH, idempotent=True, parse=parse_catalogue))

    def _catalogue_or_error(self) -> list[ModelSpec] | SeedanceError:
        try:
            return self.list_models()
        except SeedanceError as exc:
            self.log.warning("Seedance model catalogue unavailable: %s", exc)
            return exc

    async def _acatalogue_or_error(self) -> list[ModelSpec] | SeedanceError:
        try:
            return await self.alist_models()
        except SeedanceError as exc:
            self.log.warning("Seedance model catalogue unavailable: %s", exc)
            return exc

    def validate_request(self, request: GenerationRequest) -> ModelSpec:
        """Check every rule: built-in models offline, other models against the live catalogue's entry.

        :param request: the generation.
        :return: the model spec the request was validated against.
        :raises SeedanceValidationError: a field breaks a rule.
        :raises SeedanceUnknownModelError: the model is neither built in nor listed (the message lists the
            available models, or says the catalogue was unreachable).
        """
        spec = validate_builtin(request)
        if spec is None:
            spec = spec_from_catalogue(request.model, self._catalogue_or_error())
            request.validate(spec)
        return spec

    async def avalidate_request(self, request: GenerationRequest) -> ModelSpec:
        """Async :meth:`validate_request`.

        :param request: the generation.
        """
        spec = validate_builtin(request)
        if spec is None:
            spec = spec_from_catalogue(request.model, await self._acatalogue_or_error())
            request.validate(spec)
        return spec

    def estimate(self, request: GenerationRequest) -> CreditEstimate:
        """Expected charge, and where its price came from.

        Precedence: the connection's ``price_table`` extra for the model (no request is made when it prices the
        request) > the live catalogue's pricing > the bundled (estimated) price table. See
        :func:`~airflow_provider_seedance.catalogue.estimate`, the one place this is decided.

        :param request: the generation.
        """
        override = self._get_settings().price_table.get(request.model)
        if override is not None:
            first = request.estimate(override=override, bundled=False)
            if first.credits is not None:
                return first
        catalogue = self._catalogue_or_error()
        return estimate_with_catalogue(request, None if isinstance(catalogue, SeedanceError) else catalogue, override)

    async def aestimate(self, request: GenerationRequest) -> CreditEstimate:
        """Async :meth:`estimate`.

        :param request: the generation.
        """
        override = (await self._aget_settings()).price_table.get(request.model)
        if override is not None:
            first = request.estimate(override=override, bundled=False)
            if first.credits is not None:
                return first
        catalogue = await self._acatalogue_or_error()
        return estimate_with_catalogue(request, None if isinstance(catalogue, SeedanceError) else catalogue, override)

    def estimate_credits(self, request: GenerationRequest) -> int | None:
        """Expected charge in credits (see :meth:`estimate` for where the price comes from).

        :param request: the generation.
        :return: credits, or None when no price is known for the model.
        """
        return self.estimate(request).credits

    async def aestimate_credits(self, request: GenerationRequest) -> int | None:
        """Async :meth:`estimate_credits`.

        :param request: the generation.
        """
        return (await self.aestimate(request)).credits

    # -- connection test -----------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and API key without creating a job or spending credits.

        How it decides: it asks for the status of a made-up request id (one GET, no retries). The API checks
        the key before it looks the id up, so **404** means the key was accepted (success), **401/403** means
        the key was rejected, a connection failure means the host cannot be reached, and anything else
        (including a 2xx for an id that cannot exist, typical of a wrong host) is reported with its details.
        """
        try:
            settings = self._get_settings()
        except Exception as exc:
            return False, str(exc)
        probe = f"airflow-connection-test-{uuid.uuid4().hex}"
        base = settings.base_url
        try:
            self._send("GET", _job_path(probe), None, probe, parse=lambda body: body)
        except SeedanceNotFoundError:
            return True, (
                f"Connected to {base}: API key accepted (a made-up request id returned 404; "
                "no job was created, no credits were spent)."
            )
        except SeedanceAuthError as exc:
            return False, f"API key rejected by {base} (HTTP {exc.status_code}): {exc.message}"
        except SeedanceTransportError as exc:
            return False, f"cannot reach {base}: {exc}"
        except SeedanceError as exc:
            return False, f"Unexpected answer from {base}: {exc}"
        return False, (
            f"Unexpected answer from {base}: a made-up request id was found (HTTP 2xx). "
            "Is the host the Seedance API?"
        )

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync session. In async code use :meth:`aclose` (it releases the shared session)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    async def aclose(self) -> None:
        """Release this hook's references to the shared async session and pool (the last ones close them), close()."""
        leases = (self._lease, self._pool_lease)
        self._lease = self._pool_lease = None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for lease in leases:
            if lease is not None and lease.loop is running:
                await release_session(lease)
        self.close()

    def __enter__(self) -> SeedanceHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> SeedanceHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

