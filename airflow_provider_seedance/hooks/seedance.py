"""SeedanceHook: the Seedance 2.0 Open API from Airflow, sync (workers) and async (triggers).

Built on apache-airflow-providers-http: the worker side is an ``HttpHook`` (its keep-alive adapter and its
``run_and_check`` send path, on one ``requests.Session`` reused across calls); the triggerer side resolves the
connection through an ``HttpAsyncHook`` (:class:`SeedanceAsyncHttpHook`) and sends through one
``aiohttp.ClientSession`` shared per event loop and connection (:mod:`._async_session`). Where the http provider
does not fit the API it is overridden in one small place: the base URL rules and connection extras
(:mod:`._connection`), bearer auth, redirects never followed, and retries (tenacity, :mod:`._retry`, which
also retries 429 and connection errors). What a response means is decided in :mod:`._http`, whether a failure
is retried in :func:`airflow_provider_seedance.errors.is_retryable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiohttp
import requests
import urllib3
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook, SessionConfig
from requests.auth import AuthBase
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAuthError,
    SeedanceError,
    SeedanceNotFoundError,
    SeedanceResponseError,
    SeedanceTransportError,
    SeedanceValidationError,
    is_retryable,
)
from airflow_provider_seedance.hooks._async_session import SessionLease, acquire_session, release_session
from airflow_provider_seedance.hooks._catalogue import CatalogueMixin
from airflow_provider_seedance.hooks._connection import (
    ConnectionSettings,
    SeedanceConnectionError,
    aload_settings,
    connection_form_widgets,
    load_settings,
    ui_field_behaviour,
)
from airflow_provider_seedance.hooks._http import (
    BASE_HEADERS,
    interpret_response,
    transport_error_from_aiohttp,
    transport_error_from_requests,
)
from airflow_provider_seedance.hooks._retry import RetryPolicy, build_retrying, log_before_sleep
from airflow_provider_seedance.lineage.hook_lineage import report_submit
from airflow_provider_seedance.models import GenerationRequest, JobResult

__all__ = [
    "GENERATIONS_PATH",
    "MODELS_PATH",
    "RetryPolicy",
    "SeedanceAsyncHttpHook",
    "SeedanceConnectionError",
    "SeedanceHook",
]

GENERATIONS_PATH = "/api/open/v1/video/generations"
#: The largest answer read: the API's answers are a few KB; a server streaming more is refused, not buffered.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
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


def _job_path(request_id: str, suffix: str = "") -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise SeedanceValidationError("request_id", request_id, "a non-empty request id string")
    return f"{GENERATIONS_PATH}/{quote(request_id.strip(), safe='')}{suffix}"


async def _read_capped_async(response: aiohttp.ClientResponse) -> bytes:
    # The session's total timeout bounds the time; this bounds the bytes buffered.
    body = bytearray()
    while chunk := await response.content.read(65536):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise SeedanceResponseError(f"answer larger than {MAX_RESPONSE_BYTES:,} bytes: refused")
    return bytes(body)


class SeedanceAsyncHttpHook(HttpAsyncHook):
    """The http provider's async hook, reading a ``seedance`` connection.

    ``config()`` resolves the connection once (through the http provider's ``get_async_connection``, so no
    blocking lookup runs in the event loop) into a ``SessionConfig``: our base URL rules, the aiohttp options
    for TLS, proxy and redirects. The API key is kept out of the config (a pydantic model shows its fields in
    ``repr``) and added per request.

    :param conn_id: the ``seedance`` connection.
    :param timeout: seconds per request; overrides the connection's ``timeout`` extra.
    :param resolver: the hook whose ``aget_connection``/``get_connection`` look the connection up (default this
        one); :class:`SeedanceHook` passes itself, so a subclass's override is honoured.
    """

    conn_type = "seedance"

    def __init__(self, conn_id: str, *, timeout: float | None = None, resolver: Any = None) -> None:
        super().__init__(method="GET", http_conn_id=conn_id, retry_limit=1)
        self.timeout = timeout
        self.settings: ConnectionSettings | None = None
        self._resolver = resolver

    def __repr__(self) -> str:
        return f"{type(self).__name__}(http_conn_id={self.http_conn_id!r})"

    async def config(self) -> SessionConfig:
        """Resolve the connection once: base URL, headers (without the key) and aiohttp request options."""
        if self._config is None:
            settings = self.settings = await aload_settings(self._resolver or self, self.http_conn_id,
                                                            timeout=self.timeout)
            self._config = SessionConfig(
                base_url=settings.base_url,
                headers=dict(BASE_HEADERS),
                extra_options={"allow_redirects": False, "proxy": settings.async_proxy(),
                               "ssl": await settings.async_ssl()},
            )
        return self._config


class SeedanceHook(CatalogueMixin, HttpHook):
    """Submit, poll and cancel Seedance generations; read the model catalogue.

    Every failure is a :class:`~airflow_provider_seedance.errors.SeedanceError`. Reads (``get_job``,
    ``cancel_job``, ``list_models``) are retried on 408, 429 (honouring ``Retry-After``), 5xx, transport errors
    and malformed answers. ``submit`` is retried only when no job can exist (408, 429, connection never opened);
    when a job may exist it raises :class:`~airflow_provider_seedance.errors.SeedanceAmbiguousSubmitError` and
    never sends the POST again. A host name that does not resolve fails at once, naming the host.

    :param seedance_conn_id: the ``seedance`` connection: host = base URL (empty: the vendor's), password = API
        key, extras ``timeout`` (s), ``proxies`` (dict or JSON), ``verify_ssl`` (bool), ``ca_bundle`` (path),
        ``allow_insecure_http`` (bool), ``price_table`` (JSON: model id -> pricing, see
        ``estimate``).
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
    ) -> None:
        # tcp_keep_alive=False: HttpHook would build its keep-alive adapter (a urllib3 pool manager) now, in
        # every hook; a triggerer holds one hook per wait and never sends through it. get_conn() mounts one.
        super().__init__(method="GET", http_conn_id=seedance_conn_id, tcp_keep_alive=False)
        self.seedance_conn_id = seedance_conn_id
        self.timeout = timeout
        self.retry_policy = (retry_policy or RetryPolicy()).with_retries(max_retries)
        self.async_http = SeedanceAsyncHttpHook(seedance_conn_id, timeout=timeout, resolver=self)
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._lease: SessionLease | None = None
        self._fresh_connection = False  # the next async attempt must not reuse a pooled connection
        self._init_catalogue(catalogue_ttl)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seedance_conn_id={self.seedance_conn_id!r})"

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

    def _get_settings(self) -> ConnectionSettings:
        if self._settings is None:
            self._settings = load_settings(self, self.seedance_conn_id, timeout=self.timeout)
            self._log_base_url(self._settings, logging.INFO)
        return self._settings

    async def _aget_settings(self, timeout: float | None = None) -> ConnectionSettings:
        if self._settings is None:
            try:
                # Bounded like the call itself: a trigger must reach its deadline even if a secrets backend hangs.
                await asyncio.wait_for(self.async_http.config(), timeout)
            except asyncio.TimeoutError:  # a distinct class before Python 3.11
                raise TimeoutError(f"looking up connection {self.seedance_conn_id!r} timed out") from None
            self._settings = cast("ConnectionSettings", self.async_http.settings)
            # Debug in the event loop: a triggerer starts a hook per wait, and the task's worker side (which
            # submitted, or deferred the sensor) has already said it at info.
            self._log_base_url(self._settings, logging.DEBUG)
        return self._settings

    def _log_base_url(self, settings: ConnectionSettings, level: int) -> None:
        # Once per hook: an empty host silently meaning the vendor's API cost users a long DNS-retry hunt.
        if settings.host_was_empty:
            self.log.log(level, "Seedance connection %r has no host: using the vendor's API at %s",
                         settings.conn_id, settings.base_url)
        else:
            self.log.log(level, "Seedance connection %r: API at %s", settings.conn_id, settings.base_url)

    @property
    def base_url(self) -> str:  # type: ignore[override]
        """The API's base URL from the connection (no trailing slash)."""
        return self._get_settings().base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        # HttpHook.__init__ assigns it; the connection decides it here.
        pass

    # -- sync transport: HttpHook ----------------------------------------------------------------------------

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
                 ) -> requests.Session:
        """The hook's ``requests.Session``: created once (keep-alive across calls), configured from the
        connection, with HttpHook's TCP keep-alive adapter mounted.

        :param headers: extra headers for this session (only when it is first created).
        :param extra_options: not used (the connection's extras are read by :mod:`._connection`).
        """
        if self._session is None:
            settings = self._get_settings()
            session = requests.Session()
            session.headers.update(BASE_HEADERS)
            session.headers.update(headers or {})
            session.auth = _BearerAuth(settings.api_key)
            session.verify = settings.requests_verify
            session.proxies = settings.proxy_mapping
            self._session = self._configure_session_from_mount_adapters(session)
        return self._session

    def _configure_session_from_mount_adapters(self, session: requests.Session) -> requests.Session:
        adapter = self.adapter or TCPKeepAliveAdapter(idle=120, count=20, interval=30)  # HttpHook's defaults
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def run_and_check(self, session: requests.Session, prepped_request: requests.PreparedRequest,
                      extra_options: dict[Any, Any]) -> Any:
        """HttpHook's send, with the environment's proxies, NO_PROXY and CA bundle merged as requests does,
        minus its raw log line of a failed request (the error is logged scrubbed by the caller) and streamed,
        so the body is bounded in bytes and in time.

        :param session: the hook's session.
        :param prepped_request: the prepared request.
        :param extra_options: ``timeout`` and ``allow_redirects``.
        """
        merged = session.merge_environment_settings(
            prepped_request.url, proxies=session.proxies, stream=True, verify=session.verify, cert=session.cert,
        )
        return session.send(prepped_request, timeout=extra_options.get("timeout"),
                            allow_redirects=extra_options.get("allow_redirects", True), **merged)

    @staticmethod
    def _read_capped(response: requests.Response, limit: float) -> bytes:
        # requests' timeout bounds each socket read, not the answer: a server dripping a byte at a time
        # would hold a worker for ever. One deadline for the whole body, and a size cap.
        deadline = time.monotonic() + limit
        body = bytearray()
        # read1: what has arrived (up to 64 KiB), decoded; iter_content would wait for a full 64 KiB.
        while chunk := response.raw.read1(65536, decode_content=True):
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise SeedanceResponseError(f"answer larger than {MAX_RESPONSE_BYTES:,} bytes: refused")
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout(f"the answer took longer than {limit:g} s to arrive")
        return bytes(body)

    def _send(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T]) -> T:
        settings = self._get_settings()
        session = self.get_conn()
        prepared = session.prepare_request(requests.Request(method, settings.base_url + path, json=body))
        error: SeedanceError | None = None
        try:
            response = self.run_and_check(session, prepared, {"timeout": settings.timeout, "allow_redirects": False})
            with response:
                raw = b"" if response.status_code == 408 else self._read_capped(response, settings.timeout)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # read1 raises urllib3's own
            # Raised outside the except block: the client's exception (which may quote what a server echoed,
            # the Authorization header included) must not ride along as __context__ or __cause__.
            error = transport_error_from_requests(exc, f"{method} {path}", settings)
        if error is not None:
            raise error
        self.log.debug("Seedance %s %s -> HTTP %s", method, path, response.status_code)
        if response.status_code == 408:
            # The server is dropping this connection, which requests may already have pooled again: close
            # the session and its pools so the retry opens a fresh one.
            self.close()
        return parse(interpret_response(response.status_code, response.headers, raw, settings,
                                        request_id=request_id))

    def _call(
        self, method: str, path: str, *, parse: Callable[[Any], T], idempotent: bool,
        body: Any = None, request_id: str | None = None,
    ) -> T:
        self._get_settings()  # a connection problem is not retried
        retrying = build_retrying(self.retry_policy, idempotent=idempotent,
                                  before_sleep=log_before_sleep(self.log, f"{method} {path}", self.retry_policy))
        return cast("T", retrying(self._send, method, path, body, request_id, parse))

    # -- async transport: HttpAsyncHook's connection, one shared aiohttp session ------------------------------

    async def _shared_session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        lease = self._lease
        if lease is not None and lease.loop is loop and not lease.session.closed:
            return cast("aiohttp.ClientSession", lease.session)
        self._lease = None
        config = await self.async_http.config()

        def factory() -> aiohttp.ClientSession:
            # trust_env=False: proxies are resolved like requests does (async_proxy), and ~/.netrc must not
            # replace the key.
            return aiohttp.ClientSession(headers=config.headers, trust_env=False)

        self._lease = await acquire_session(settings.session_key(), factory)
        return cast("aiohttp.ClientSession", self._lease.session)

    async def _asend(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T],
                     timeout: float | None = None) -> T:
        settings = await self._aget_settings()
        shared = await self._shared_session(settings)
        # After a 408 the server is dropping a connection aiohttp may already have pooled again: the next
        # attempt goes through a one-off session, so it cannot be handed that connection.
        fresh, self._fresh_connection = self._fresh_connection, False
        session = aiohttp.ClientSession(headers=shared.headers, trust_env=False) if fresh else shared
        options = cast("SessionConfig", self.async_http._config).extra_options or {}
        limit = settings.timeout if timeout is None else min(settings.timeout, timeout)
        error: SeedanceError | None = None
        try:
            async with session.request(
                method, settings.base_url + path, json=body, headers={"Authorization": f"Bearer {settings.api_key}"},
                timeout=aiohttp.ClientTimeout(total=limit), **options,
            ) as response:
                status, headers = response.status, response.headers
                raw = b"" if status == 408 else await _read_capped_async(response)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = transport_error_from_aiohttp(exc, f"{method} {path}", settings)  # raised below: see _send
        finally:
            if fresh:
                await session.close()
        if error is not None:
            raise error
        self.log.debug("Seedance %s %s -> HTTP %s", method, path, status)
        self._fresh_connection = status == 408
        return parse(interpret_response(status, headers, raw, settings, request_id=request_id))

    async def _acall(
        self, method: str, path: str, *, parse: Callable[[Any], T], idempotent: bool,
        body: Any = None, request_id: str | None = None, timeout: float | None = None,
    ) -> T:
        await self._aget_settings(timeout)  # a connection problem is not retried
        try:
            # The first attempt outside tenacity: building its controller for every status poll was a fifth
            # of a trigger's CPU (tenacity inspects each callback on each call). Retries are tenacity's.
            return await self._asend(method, path, body, request_id, parse, timeout)
        except SeedanceError as exc:
            if self.retry_policy.max_attempts <= 1 or not is_retryable(exc, idempotent=idempotent):
                raise
            first_failure: SeedanceError | None = exc
        replayed = False

        async def attempt() -> T:
            nonlocal replayed
            if not replayed:  # tenacity sees the first failure as its attempt 1: same waits, same bounds
                replayed = True
                raise cast("SeedanceError", first_failure)
            return await self._asend(method, path, body, request_id, parse, timeout)

        retrying = build_retrying(self.retry_policy, idempotent=idempotent, asynchronous=True,
                                  before_sleep=log_before_sleep(self.log, f"{method} {path}", self.retry_policy))
        try:
            return cast("T", await retrying(attempt))
        finally:
            first_failure = None  # no reference cycle through the traceback

    # -- jobs ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _submitting(self, request: GenerationRequest) -> Iterator[None]:
        """Around a submit's POST: a failure that may have created a job becomes
        :class:`~airflow_provider_seedance.errors.SeedanceAmbiguousSubmitError` (never re-sent)."""
        if request.media_urls is not None and not request.media_urls:
            # Debug: the operator says it at info level with what it means there (a template rendered empty).
            self.log.debug("Seedance: no media URLs: text-to-video")
        try:
            yield
        except SeedanceError as exc:
            # Exactly the failures a GET may repeat but a POST may not: the request may have created a job.
            if is_retryable(exc, idempotent=True) and not is_retryable(exc, idempotent=False):
                raise SeedanceAmbiguousSubmitError(exc) from exc
            raise

    def _submitted(self, request: GenerationRequest, result: JobResult) -> JobResult:
        self.log.info("Seedance generation %s submitted (%s)", result.request_id, result.raw_status)
        report_submit(self, request)  # Airflow's hook lineage: the media this generation read
        return result

    def submit(self, request: GenerationRequest) -> JobResult:
        """Validate, then POST the generation. Never re-sends a POST that may have created a job.

        :param request: the generation.
        :raises SeedanceValidationError: a field breaks a rule (nothing was sent).
        :raises SeedanceAmbiguousSubmitError: the POST may have created (and charged) a job.
        """
        self.validate_request(request)
        with self._submitting(request):
            result = self._call("POST", GENERATIONS_PATH, body=request.to_api_json(), idempotent=False,
                                parse=JobResult.from_api_json)
        return self._submitted(request, result)

    async def asubmit(self, request: GenerationRequest) -> JobResult:
        """Async :meth:`submit`.

        :param request: the generation.
        """
        await self.avalidate_request(request)
        with self._submitting(request):
            result = await self._acall("POST", GENERATIONS_PATH, body=request.to_api_json(), idempotent=False,
                                       parse=JobResult.from_api_json)
        return self._submitted(request, result)

    @staticmethod
    def _parser(request_id: str) -> Callable[[Any], JobResult]:
        # The body must be about the job asked for: another job's "succeeded" must never deliver its video.
        return lambda body: JobResult.from_api_json(body, request_id=request_id)

    def get_job(self, request_id: str) -> JobResult:
        """Status of a generation (retried).

        :param request_id: the id ``submit`` returned.
        """
        return self._call("GET", _job_path(request_id), idempotent=True, request_id=request_id,
                          parse=self._parser(request_id))

    async def aget_job(self, request_id: str, *, timeout: float | None = None) -> JobResult:
        """Async :meth:`get_job`.

        :param request_id: the id ``submit`` returned.
        :param timeout: seconds for each attempt, when shorter than the connection's ``timeout``. A trigger
            passes what is left before its deadline.
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

    def _fetch_models(self, parse: Callable[[Any], T]) -> T:
        return self._call("GET", MODELS_PATH, idempotent=True, parse=parse)

    async def _afetch_models(self, parse: Callable[[Any], T]) -> T:
        return await self._acall("GET", MODELS_PATH, idempotent=True, parse=parse)

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
        """Release this hook's reference to the shared async session (the last one closes it), then close()."""
        lease, self._lease = self._lease, None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
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

