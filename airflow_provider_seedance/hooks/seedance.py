"""SeedanceHook: the Seedance 2.0 Open API from Airflow, sync (workers) and async (triggers), on the http provider.

The hook is the connection (read once), thin endpoint methods and one retried request helper per path; how
each path sends is in :mod:`._transport`, what an answer means in :mod:`._http`, retries in :mod:`._retry`.
Design: ``docs/architecture.rst``, "The hook and its retries".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiohttp
import requests
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance._sync_deadline import DeadlineAdapter
from airflow_provider_seedance.errors import (
    SeedanceRequestTimeoutError,
    ambiguous_if_sent,
)
from airflow_provider_seedance.hooks._async_session import SessionLease, acquire_session, release_session
from airflow_provider_seedance.hooks._catalogue import CatalogueMixin
from airflow_provider_seedance.hooks._connection import (
    ConnectionSettings,
    SeedanceConnectionError,
    aload_settings,
    load_settings,
    ssl_context_for,
)
from airflow_provider_seedance.hooks._form import connection_form_widgets, ui_field_behaviour
from airflow_provider_seedance.hooks._http import (
    BASE_HEADERS,
)
from airflow_provider_seedance.hooks._retry import RetryPolicy, build_retrying, log_before_sleep, policy_for
from airflow_provider_seedance.hooks._transport import (
    MAX_JOB_ANSWER_BYTES,
    MAX_RESPONSE_BYTES,
    OFF_LOOP_BYTES,
    ApiSession,
    BearerAuth,
    SeedanceAsyncHttpHook,
    aexchange,
    answer,
    answer_cap,
    async_session_config,
    exchange,
    new_session,
)
from airflow_provider_seedance.lineage.hook_lineage import report_submit
from airflow_provider_seedance.models import GenerationRequest, JobResult, check_request_id

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
    # An id is checked before it goes into a URL (or, later, a file name): a hostile one is refused, not quoted.
    rid = check_request_id(request_id.strip() if isinstance(request_id, str) else request_id)
    return f"{GENERATIONS_PATH}/{quote(rid, safe='')}{suffix}"


class SeedanceHook(CatalogueMixin, HttpHook):
    """Submit, poll and cancel Seedance generations; read the model catalogue.

    Every failure is a :class:`~airflow_provider_seedance.errors.SeedanceError`. Each kind of call has its retry
    policy (``POLICIES`` in ``hooks/_retry.py``); ``submit`` is retried only when no job
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
        self._controllers: dict[tuple[str, bool], Any] = {}
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
        self._controllers.clear()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled connection form fields (Airflow < 3.2; newer versions read ``conn-fields``)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection form fields, built from ``CONN_FIELDS`` (needs wtforms)."""
        return connection_form_widgets()

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
        """The API's base URL from the connection; HttpHook.run joins endpoints to it (HttpHook.__init__'s
        assignment is ignored: the connection decides)."""
        return self._get_settings().base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        pass

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
                 ) -> requests.Session:
        """The hook's one ``requests.Session`` (keep-alive across calls), configured from the connection.

        :param headers: extra headers (only when the session is first created).
        :param extra_options: the send options HttpHook.run hands to ``run_and_check`` (``merged_extra``).
        """
        self.merged_extra = dict(extra_options or {})
        if self._session is None:
            settings = self._get_settings()
            session = ApiSession()
            session.headers.update({**BASE_HEADERS, **(headers or {})})
            session.auth = BearerAuth(settings.api_key)
            session.verify = settings.requests_verify
            session.proxies = settings.proxy_mapping
            session.stream = True  # the body is read here, capped (read_capped)
            # HttpHook's keep-alive adapter, whose connections the call's deadline can shut (_sync_deadline).
            adapter = self.adapter or DeadlineAdapter(idle=120, count=20, interval=30)
            for scheme in ("http://", "https://"):
                session.mount(scheme, adapter)
            self._session = session
        return self._session

    def run_and_check(self, session: requests.Session, prepped_request: requests.PreparedRequest,
                      extra_options: dict[Any, Any]) -> Any:
        """HttpHook's send, without its warning of a failed connection: that line quotes the client's exception,
        which can hold what a server echoed (the key in a status line). The caller reports it, scrubbed."""
        merged = session.merge_environment_settings(
            prepped_request.url, proxies=session.proxies, stream=session.stream, verify=session.verify,
            cert=session.cert)
        return session.send(prepped_request, timeout=extra_options.get("timeout"),
                            allow_redirects=extra_options.get("allow_redirects", True), **merged)

    def _send(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T],
              max_bytes: int = MAX_JOB_ANSWER_BYTES) -> T:
        settings = self._get_settings()
        status, headers, raw = exchange(self, settings, method, path, body, max_bytes)
        self.log.debug("Seedance %s %s -> HTTP %s", method, path, status)
        return answer(status, headers, raw, settings, request_id, parse)

    def _call(self, method: str, path: str, *, kind: str, parse: Callable[[Any], T], body: Any = None,
              request_id: str | None = None) -> T:
        self._get_settings()  # a connection problem is not retried
        return cast("T", self._controller(kind, False)(self._send, method, path, body, request_id, parse,
                                                       answer_cap(kind)))

    def _controller(self, kind: str, asynchronous: bool) -> Any:
        # Built once per kind of call and copied for each call, tenacity's own way: a status poll builds none.
        key = (kind, asynchronous)
        if key not in self._controllers:
            policy = policy_for(kind, self._retry_override)
            self._controllers[key] = build_retrying(policy, idempotent=kind != "submit", asynchronous=asynchronous,
                                                    before_sleep=log_before_sleep(self.log, None, policy))
        return self._controllers[key].copy()

    async def _async_hook(self, method: str, settings: ConnectionSettings) -> SeedanceAsyncHttpHook:
        hook = self._async_hooks.get(method)
        if hook is None:
            config = async_session_config(settings.base_url, dict(BASE_HEADERS), ssl=await ssl_context_for(settings),
                                          proxy=settings.async_proxy())
            hook = self._async_hooks.setdefault(method, SeedanceAsyncHttpHook(method, settings.conn_id, config))
        return hook

    async def _shared_session(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        lease, loop = self._lease, asyncio.get_running_loop()
        if lease is not None and lease.loop is loop and not lease.session.closed:
            return cast("aiohttp.ClientSession", lease.session)
        if lease is not None and lease.loop is loop:
            await release_session(lease)  # closed under us: its reference goes back first
        # acquire_session does not suspend: concurrent calls of this hook cannot take two leases.
        self._lease = await acquire_session(settings.session_key(), new_session)
        return cast("aiohttp.ClientSession", self._lease.session)

    async def _asend(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T],
                     timeout: float | None, fresh: bool = False, max_bytes: int = MAX_JOB_ANSWER_BYTES) -> T:
        settings = await self._aget_settings(timeout)
        http = await self._async_hook(method, settings)
        # After a 408 the server is dropping a connection aiohttp may already have pooled again: the next attempt
        # goes through a one-off session, so it cannot be handed that connection.
        session = new_session() if fresh else await self._shared_session(settings)
        limit = settings.timeout if timeout is None else min(settings.timeout, timeout)
        try:
            status, headers, raw = await aexchange(http, session, settings, method, path, body, limit, max_bytes)
        finally:
            if fresh:
                await session.close()
        self.log.debug("Seedance %s %s -> HTTP %s", method, path, status)
        if len(raw) > OFF_LOOP_BYTES:
            return await asyncio.to_thread(answer, status, headers, raw, settings, request_id, parse)
        return answer(status, headers, raw, settings, request_id, parse)

    async def _acall(self, method: str, path: str, *, kind: str, parse: Callable[[Any], T], body: Any = None,
                     request_id: str | None = None, timeout: float | None = None) -> T:
        await self._aget_settings(timeout)  # a connection problem is not retried
        after_408 = [False]  # the next attempt must not reuse a pooled connection
        return cast("T", await self._controller(kind, True)(
            self._attempt, method, path, body, request_id, parse, timeout, after_408, answer_cap(kind)))

    async def _attempt(self, method: str, path: str, body: Any, request_id: str | None, parse: Callable[[Any], T],
                       timeout: float | None, after_408: list[bool], max_bytes: int) -> T:
        try:
            return await self._asend(method, path, body, request_id, parse, timeout, after_408[0], max_bytes)
        except SeedanceRequestTimeoutError:
            after_408[0] = True
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
        with ambiguous_if_sent():
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
        with ambiguous_if_sent():
            result = await self._acall("POST", GENERATIONS_PATH, kind="submit", body=request.to_api_json(),
                                       parse=JobResult.from_api_json)
        return self._submitted(request, result)

    @staticmethod
    def _parser(request_id: str) -> Callable[[Any], JobResult]:
        # The body must be about the job asked for: another job's "succeeded" must never deliver its video.
        return lambda body: JobResult.from_api_json(body, request_id=request_id)

    def get_job(self, request_id: str) -> JobResult:
        """Status of a generation (``request_id``: the id ``submit`` returned); retried."""
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
        """Async :meth:`cancel_job` (``request_id``: the generation)."""
        return await self._acall("POST", _job_path(request_id, "/cancel"), kind="cancel",
                                 request_id=request_id, parse=self._parser(request_id))

    def _fetch_models(self, parse: Callable[[Any], T]) -> T:
        return self._call("GET", MODELS_PATH, kind="catalogue", parse=parse)

    async def _afetch_models(self, parse: Callable[[Any], T]) -> T:
        return await self._acall("GET", MODELS_PATH, kind="catalogue", parse=parse)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and API key without creating a job or spending credits (how: :mod:`._probe`)."""
        from airflow_provider_seedance.hooks._probe import probe_connection

        return probe_connection(self, lambda rid: self._send("GET", _job_path(rid), None, rid, parse=lambda b: b))

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

