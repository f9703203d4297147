"""SeedanceHook: the Seedance 2.0 Open API from Airflow, sync (workers) and async (triggers), on the http provider.

The hook is the connection (read once), thin endpoint methods and one retried request helper per path; how
each path sends is in :mod:`._transport`, what an answer means in :mod:`._http`, retries in :mod:`._retry`.
Design: ``docs/architecture.rst``, "The hook".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiohttp
import requests
import urllib3
from airflow.providers.http.exceptions import HttpErrorException
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAuthError,
    SeedanceError,
    SeedanceNotFoundError,
    SeedanceRequestTimeoutError,
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
    ssl_context_for,
    ui_field_behaviour,
)
from airflow_provider_seedance.hooks._http import (
    BASE_HEADERS,
    interpret_response,
    transport_error_from_aiohttp,
    transport_error_from_requests,
)
from airflow_provider_seedance.hooks._retry import RetryPolicy, build_retrying, log_before_sleep, policy_for
from airflow_provider_seedance.hooks._transport import (
    MAX_RESPONSE_BYTES,
    BearerAuth,
    SeedanceAsyncHttpHook,
    async_session_config,
    read_capped,
    read_capped_async,
)
from airflow_provider_seedance.lineage.hook_lineage import report_submit
from airflow_provider_seedance.models import GenerationRequest, JobResult

__all__ = [
    "GENERATIONS_PATH",
    "MAX_RESPONSE_BYTES",
    "MODELS_PATH",
    "RetryPolicy",
    "SeedanceAsyncHttpHook",
    "SeedanceConnectionError",
    "SeedanceHook",
]

GENERATIONS_PATH = "/api/open/v1/video/generations"
MODELS_PATH = "/api/open/v1/models"

T = TypeVar("T")


def _job_path(request_id: str, suffix: str = "") -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise SeedanceValidationError("request_id", request_id, "a non-empty request id string")
    return f"{GENERATIONS_PATH}/{quote(request_id.strip(), safe='')}{suffix}"


#: Answers larger than this are decoded in a thread on the async path: a triggerer's event loop serves every
#: other wait meanwhile (a 4 MiB answer takes tens of milliseconds to decode; the API's answers are a few KB).
OFF_LOOP_BYTES = 64 * 1024


def _answer(status: int, headers: Any, raw: bytes, settings: ConnectionSettings, request_id: str | None,
            parse: Callable[[Any], T]) -> T:
    body = interpret_response(status, headers, raw, settings, request_id=request_id)
    # Every failure to read an answer is a response error (after a POST: an ambiguous submit), whatever a hostile
    # body made the parser raise (huge numbers, deep nesting, odd types).
    try:
        return parse(body)
    except SeedanceError:
        raise
    except Exception as exc:
        raise SeedanceResponseError(f"unreadable answer ({type(exc).__name__})", request_id=request_id) from None


def _new_session() -> aiohttp.ClientSession:
    # trust_env=False: proxies are resolved as requests does (async_proxy), and ~/.netrc must not replace the key.
    # No cookie jar: the session is shared by every connection of the event loop, tenants included.
    return aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())


class SeedanceHook(CatalogueMixin, HttpHook):
    """Submit, poll and cancel Seedance generations; read the model catalogue.

    Every failure is a :class:`~airflow_provider_seedance.errors.SeedanceError`. Each kind of call has its retry
    policy (:data:`~airflow_provider_seedance.hooks._retry.POLICIES`); ``submit`` is retried only when no job
    can exist, and raises :class:`~airflow_provider_seedance.errors.SeedanceAmbiguousSubmitError` when one may.

    :param seedance_conn_id: the ``seedance`` connection: host = base URL (empty: the vendor's), password = API
        key; extras in :doc:`/connection`.
    :param timeout: seconds per HTTP request; overrides the connection's ``timeout`` extra (default 30).
    :param max_retries: retries after the first attempt, for every kind of call.
    :param retry_policy: one policy for every kind of call, instead of each kind's own.
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
        if max_retries is not None:
            retry_policy = (retry_policy or RetryPolicy()).with_retries(max_retries)
        self._retry_override = retry_policy
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._async_hooks: dict[str, SeedanceAsyncHttpHook] = {}
        self._lease: SessionLease | None = None
        self._init_catalogue(catalogue_ttl)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seedance_conn_id={self.seedance_conn_id!r})"

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy set for every call (``retry_policy``/``max_retries``), else the status polls' own."""
        return policy_for("poll", self._retry_override)

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy | None) -> None:
        self._retry_override = policy

    # -- Airflow UI (Airflow < 3.2; newer versions read conn-fields from the provider info) --------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled connection form fields (same source as the provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection form fields, built from ``CONN_FIELDS`` (needs wtforms)."""
        return connection_form_widgets()

    # -- the connection, read once ---------------------------------------------------------------------------

    def _get_settings(self) -> ConnectionSettings:
        if self._settings is None:
            self._settings = load_settings(self, self.seedance_conn_id, timeout=self.timeout)
            self._log_settings(self._settings, logging.INFO)
        return self._settings

    async def _aget_settings(self, timeout: float | None = None) -> ConnectionSettings:
        if self._settings is None:
            try:
                # Bounded like the call itself: a trigger must reach its deadline even if a secrets backend hangs.
                settings = await asyncio.wait_for(aload_settings(self, self.seedance_conn_id, timeout=self.timeout),
                                                  timeout)
            except asyncio.TimeoutError:  # a distinct class before Python 3.11
                raise TimeoutError(f"looking up connection {self.seedance_conn_id!r} timed out") from None
            if self._settings is None:
                self._settings = settings
                # Debug in the event loop: a triggerer starts a hook per wait, and the worker has said it at info.
                self._log_settings(settings, logging.DEBUG)
        return self._settings

    def _log_settings(self, settings: ConnectionSettings, level: int) -> None:
        # An empty host silently meaning the vendor's API cost users a long DNS-retry hunt.
        if settings.host_was_empty:
            self.log.log(level, "Seedance connection %r has no host: using the vendor's API at %s",
                         settings.conn_id, settings.base_url)
        else:
            self.log.log(level, "Seedance connection %r: API at %s", settings.conn_id, redact_url(settings.base_url))
        if not settings.verify_ssl:
            self.log.warning("Seedance connection %r: TLS certificate verification is OFF (extra verify_ssl=false)",
                             settings.conn_id)

    @property
    def base_url(self) -> str:  # type: ignore[override]
        """The API's base URL from the connection (no trailing slash); HttpHook.run joins endpoints to it."""
        return self._get_settings().base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        pass  # HttpHook.__init__ assigns it; the connection decides it here.

    # -- sync path: HttpHook.run on one session ---------------------------------------------------------------

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
                 ) -> requests.Session:
        """The hook's one ``requests.Session`` (keep-alive across calls), configured from the connection.

        :param headers: extra headers (only when the session is first created).
        :param extra_options: the send options HttpHook.run hands to ``run_and_check`` (``merged_extra``).
        """
        self.merged_extra = dict(extra_options or {})
        if self._session is None:
            settings = self._get_settings()
            session = requests.Session()
            session.headers.update({**BASE_HEADERS, **(headers or {})})
            session.auth = BearerAuth(settings.api_key)
            session.verify = settings.requests_verify
            session.proxies = settings.proxy_mapping
            session.stream = True  # the body is read here, capped (read_capped)
            for scheme in ("http://", "https://"):
                session.mount(scheme, self.adapter or requests.adapters.HTTPAdapter())
            self._session = session
        return self._session

    def run_and_check(self, session: requests.Session, prepped_request: requests.PreparedRequest,
                      extra_options: dict[Any, Any]) -> Any:
        """HttpHook's send (environment proxies and CA bundle merged as requests does), without its warning of a
        failed connection: that line quotes the client's exception, which can hold what a server echoed (the key
        in a status line). The caller reports the failure, scrubbed.

        :param session: the hook's session.
        :param prepped_request: the prepared request.
        :param extra_options: ``timeout`` and ``allow_redirects``.
        """
        merged = session.merge_environment_settings(
            prepped_request.url, proxies=session.proxies, stream=session.stream, verify=session.verify,
            cert=session.cert)
        return session.send(prepped_request, timeout=extra_options.get("timeout"),
                            allow_redirects=extra_options.get("allow_redirects", True), **merged)

    def _send(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T]) -> T:
        settings = self._get_settings()
        self.method = method  # HttpHook.run sends with the hook's method (as dbt-cloud's hook does)
        error: SeedanceError | None = None
        try:
            response = self.run(path, json=body, extra_options={
                "timeout": settings.timeout, "allow_redirects": False, "check_response": False})
            with response:
                status, headers = response.status_code, response.headers
                # A 408's connection is being dropped by the server: closed unread, so it is not pooled again.
                raw = b"" if status == 408 else read_capped(response, settings.timeout)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # read1 raises urllib3's own
            # Raised outside the except block: the client's exception (which may quote what a server echoed,
            # the Authorization header included) must not ride along as __context__ or __cause__.
            error = transport_error_from_requests(exc, f"{method} {path}", settings)
        if error is not None:
            raise error
        self.log.debug("Seedance %s %s -> HTTP %s", method, path, status)
        return _answer(status, headers, raw, settings, request_id, parse)

    def _call(self, method: str, path: str, *, kind: str, parse: Callable[[Any], T], body: Any = None,
              request_id: str | None = None) -> T:
        self._get_settings()  # a connection problem is not retried
        policy = policy_for(kind, self._retry_override)
        retrying = build_retrying(policy, idempotent=kind != "submit",
                                  before_sleep=log_before_sleep(self.log, f"{method} {path}", policy))
        return cast("T", retrying(self._send, method, path, body, request_id, parse))

    # -- async path: HttpAsyncHook.run on one shared aiohttp session -------------------------------------------

    async def _async_hook(self, method: str, settings: ConnectionSettings) -> SeedanceAsyncHttpHook:
        hook = self._async_hooks.get(method)
        if hook is None:
            config = async_session_config(settings.base_url, dict(BASE_HEADERS), ssl=await ssl_context_for(settings),
                                          proxy=settings.async_proxy())
            hook = self._async_hooks.setdefault(method, SeedanceAsyncHttpHook(method, settings.conn_id, config))
        return hook

    async def _shared_session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        lease = self._lease
        if lease is not None and lease.loop is asyncio.get_running_loop() and not lease.session.closed:
            return cast("aiohttp.ClientSession", lease.session)
        self._lease = await acquire_session(settings.session_key(), _new_session)
        return cast("aiohttp.ClientSession", self._lease.session)

    async def _asend(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T],
                     timeout: float | None, fresh: bool = False) -> T:
        settings = await self._aget_settings(timeout)
        http = await self._async_hook(method, settings)
        # After a 408 the server is dropping a connection aiohttp may already have pooled again: the next attempt
        # goes through a one-off session, so it cannot be handed that connection.
        session = _new_session() if fresh else await self._shared_session(settings)
        limit = settings.timeout if timeout is None else min(settings.timeout, timeout)
        error: SeedanceError | None = None
        try:
            response = await http.run(session=session, endpoint=path, json=body,
                                      headers={"Authorization": f"Bearer {settings.api_key}"},
                                      extra_options={"timeout": aiohttp.ClientTimeout(total=limit)})
            try:
                status, headers = response.status, response.headers
                raw = b"" if status == 408 else await read_capped_async(response)
            finally:
                if response.status == 408:  # the server drops this connection: closed unread, never pooled again
                    response.close()
                else:
                    response.release()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, HttpErrorException) as exc:
            error = transport_error_from_aiohttp(exc, f"{method} {path}", settings)  # raised below: see _send
        finally:
            if fresh:
                await session.close()
        if error is not None:
            raise error
        self.log.debug("Seedance %s %s -> HTTP %s", method, path, status)
        if len(raw) > OFF_LOOP_BYTES:
            return await asyncio.to_thread(_answer, status, headers, raw, settings, request_id, parse)
        return _answer(status, headers, raw, settings, request_id, parse)

    async def _acall(self, method: str, path: str, *, kind: str, parse: Callable[[Any], T], body: Any = None,
                     request_id: str | None = None, timeout: float | None = None) -> T:
        await self._aget_settings(timeout)  # a connection problem is not retried
        policy = policy_for(kind, self._retry_override)
        retrying = build_retrying(policy, idempotent=kind != "submit", asynchronous=True,
                                  before_sleep=log_before_sleep(self.log, f"{method} {path}", policy))
        fresh = False  # the next attempt must not reuse a pooled connection (after a 408)

        async def attempt() -> T:
            nonlocal fresh
            try:
                return await self._asend(method, path, body, request_id, parse, timeout, fresh)
            except SeedanceRequestTimeoutError:
                fresh = True
                raise

        return cast("T", await retrying(attempt))

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

    def submit(self, request: GenerationRequest, *, validate: bool = True) -> JobResult:
        """POST the generation (validated first, unless the caller already did). Never re-sends a POST that may
        have created a job.

        :param request: the generation.
        :param validate: check every rule first (:meth:`validate_request`); False when the caller just did.
        :raises SeedanceValidationError: a field breaks a rule (nothing was sent).
        :raises SeedanceAmbiguousSubmitError: the POST may have created (and charged) a job.
        """
        if validate:
            self.validate_request(request)
        with self._submitting(request):
            result = self._call("POST", GENERATIONS_PATH, kind="submit", body=request.to_api_json(),
                                parse=JobResult.from_api_json)
        return self._submitted(request, result)

    async def asubmit(self, request: GenerationRequest, *, validate: bool = True) -> JobResult:
        """Async :meth:`submit`.

        :param request: the generation.
        :param validate: check every rule first; False when the caller just did (the batch validates every row
            once, before its loop).
        """
        if validate:
            await self.avalidate_request(request)
        with self._submitting(request):
            result = await self._acall("POST", GENERATIONS_PATH, kind="submit", body=request.to_api_json(),
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
        return self._call("GET", _job_path(request_id), kind="poll", request_id=request_id,
                          parse=self._parser(request_id))

    async def aget_job(self, request_id: str, *, timeout: float | None = None) -> JobResult:
        """Async :meth:`get_job`.

        :param request_id: the id ``submit`` returned.
        :param timeout: seconds for each attempt, when shorter than the connection's ``timeout``. A trigger
            passes what is left before its deadline.
        """
        return await self._acall("GET", _job_path(request_id), kind="poll", request_id=request_id,
                                 parse=self._parser(request_id), timeout=timeout)

    def cancel_job(self, request_id: str) -> JobResult:
        """Cancel a queued or processing generation (retried: cancelling twice is harmless).

        :param request_id: the generation.
        :raises SeedanceConflictError: it had already finished (409).
        """
        return self._call("POST", _job_path(request_id, "/cancel"), kind="cancel", request_id=request_id,
                          parse=self._parser(request_id))

    async def acancel_job(self, request_id: str) -> JobResult:
        """Async :meth:`cancel_job`.

        :param request_id: the generation.
        """
        return await self._acall("POST", _job_path(request_id, "/cancel"), kind="cancel",
                                 request_id=request_id, parse=self._parser(request_id))

    def _fetch_models(self, parse: Callable[[Any], T]) -> T:
        return self._call("GET", MODELS_PATH, kind="catalogue", parse=parse)

    async def _afetch_models(self, parse: Callable[[Any], T]) -> T:
        return await self._acall("GET", MODELS_PATH, kind="catalogue", parse=parse)

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
        base = redact_url(settings.base_url)
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
        """Release this hook's reference to the shared async session (the last one closes it)."""
        lease, self._lease = self._lease, None
        if lease is not None and lease.loop is asyncio.get_running_loop():
            await release_session(lease)

    def __enter__(self) -> SeedanceHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> SeedanceHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        self.close()

