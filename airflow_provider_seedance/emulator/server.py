"""The Seedance API as an aiohttp application: submit, status, cancel, models, output files.

Every API request takes the same road (:meth:`EmulatorServer._serve`): count and log it, apply any
injected fault, check the bearer key, then run the endpoint. Auth is checked before the request id is
looked up, so a bad key gets 401 even for an unknown id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from airflow_provider_seedance.catalogue import estimate_credits
from airflow_provider_seedance.emulator.faults import FaultSpec
from airflow_provider_seedance.emulator.jobs import QUEUED, TERMINAL, Job, JobBehaviour, new_request_id
from airflow_provider_seedance.emulator.responses import (
    Reply,
    decode_for_log,
    drop_half_way,
    error_body,
    json_errors,
    json_response,
    render_fault,
)
from airflow_provider_seedance.emulator.state import EmulatorConfig, EmulatorState
from airflow_provider_seedance.emulator.webhooks import WebhookDispatcher
from airflow_provider_seedance.emulator.wire import check_url_shapes, check_wire_strings
from airflow_provider_seedance.errors import SeedanceUnknownModelError, SeedanceValidationError
from airflow_provider_seedance.models import GenerationRequest

__all__ = ["API_PREFIX", "SERVER_KEY", "EmulatorServer", "build_app", "error_body", "sample_video_path"]

API_PREFIX = "/api/open/v1"
GENERATIONS = f"{API_PREFIX}/video/generations"
SERVER_KEY: web.AppKey[EmulatorServer] = web.AppKey("seedance_emulator", t=object)  # type: ignore[arg-type]

# Endpoint name (faults, request log) -> counter attribute.
_COUNTER = {"submit": "submits", "status": "gets", "cancel": "cancels", "models": "models", "files": "files"}


def sample_video_path() -> Path:
    """Path of the bundled playable MP4 served as every job's output."""
    return Path(str(resources.files("airflow_provider_seedance.emulator").joinpath("sample.mp4")))


class EmulatorServer:
    """Request handlers bound to one :class:`EmulatorState`.

    :param config: starting settings.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.state = EmulatorState(initial=config)
        self.webhooks = WebhookDispatcher(self.state)
        self.sample_path = sample_video_path()
        # Faults and behaviours given at start-up (CLI flags): re-armed by every reset.
        self.startup_faults: list[dict[str, Any]] = []
        self.startup_behaviours: list[dict[str, Any]] = []
        # One timer while jobs wait for a concurrency slot: it hands the slot over when the holder ends,
        # so a waiting job's webhook fires even when nobody polls.
        self._slot_timer: asyncio.TimerHandle | None = None

    def reset(self) -> None:
        """Back to the start state, including the start-up faults and behaviours."""
        self.webhooks.cancel_all()
        if self._slot_timer is not None:
            self._slot_timer.cancel()
            self._slot_timer = None
        self.state.reset()
        for fault in self.startup_faults:
            self.state.faults.add(FaultSpec.from_json(fault))
        for behaviour in self.startup_behaviours:
            self.state.jobs.push_behaviour(JobBehaviour.from_json(behaviour))

    # -- account limits --------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> float:
        """Hand freed concurrency slots to waiting jobs as of ``now``; return ``now``.

        Runs before anything reads a job, so statuses are exact without a timer per job.

        :param now: monotonic time (default: now).
        """
        now = time.monotonic() if now is None else now
        limits = self.state.limits
        limits.advance(now)
        for job in limits.pop_granted():
            if job.request.webhook_url is not None and job.cancelled_at is None:
                self.webhooks.schedule(job)
        self._arm_slot_timer()
        return now

    def _arm_slot_timer(self) -> None:
        when = self.state.limits.next_slot_end()
        timer = self._slot_timer
        if timer is not None:
            if when is not None and timer.when() == when + 0.001:
                return  # already set for that moment
            timer.cancel()
            self._slot_timer = None
        if when is None:
            return
        loop = asyncio.get_running_loop()
        # loop.time() is time.monotonic() on every asyncio loop; a small margin lands after the end.
        self._slot_timer = loop.call_at(when + 0.001, self.advance)

    def _limit_reply(self, code: str, message: str, retry_after: float) -> Reply:
        value = str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:.3f}"
        return 429, error_body(code, message, retryAfter=retry_after), {"Retry-After": value}

    # -- the common road -------------------------------------------------------------------------

    async def _serve(
        self,
        request: web.Request,
        endpoint: str,
        handler: Callable[[web.Request, Any, int], Awaitable[Reply]],
        *,
        request_id: str | None = None,
        needs_auth: bool = True,
    ) -> web.StreamResponse:
        state = self.state
        counters = state.counters
        counters.requests += 1
        counter = _COUNTER[endpoint]
        setattr(counters, counter, getattr(counters, counter) + 1)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer is not None:
            state.connections.add(peer[:2])
        body: Any = None
        if request.method == "POST":
            raw = await request.read()
            body = decode_for_log(raw)
        auth, key_index = self._auth(request)
        entry: dict[str, Any] = {
            "method": request.method, "path": request.path, "endpoint": endpoint, "body": body,
            "auth": auth, "status": None, "requestId": request_id, "time": time.time(),
        }
        state.log.append(entry)

        delay, fault = state.faults.pick(endpoint, request.method, request_id)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            entry["fault"] = fault.kind
            if not fault.process:
                return await render_fault(request, fault, entry, None)

        now = self.advance()
        wait = state.limits.take_request(key_index, now) if needs_auth and key_index >= 0 else None
        if needs_auth and key_index < 0:
            message = "Missing API key" if auth == "missing" else "Invalid API key"
            reply: Reply = (401, error_body("unauthorized", message), {"WWW-Authenticate": "Bearer"})
        elif wait is not None:
            reply = self._limit_reply("rate_limited", "Too many requests for this API key "
                                      f"(limit {state.config.requests_per_second:g} per second)", wait)
        else:
            reply = await handler(request, body, key_index)
        if fault is not None:
            return await render_fault(request, fault, entry, reply)
        status, payload, headers = reply
        entry["status"] = status
        if entry["requestId"] is None and isinstance(payload, dict):
            entry["requestId"] = payload.get("requestId")
        return json_response(status, payload, headers or None)

    def _auth(self, request: web.Request) -> tuple[str, int]:
        header = request.headers.get("Authorization")
        if not header:
            return "missing", -1
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return "invalid", -1
        index = self.state.key_index(key.strip())
        return ("valid", index) if index >= 0 else ("invalid", -1)

    # -- endpoints ---------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/open/v1/video/generations``.

        :param request: the HTTP request.
        """
        return await self._serve(request, "submit", self._submit)

    async def _submit(self, request: web.Request, body: Any, key_index: int) -> Reply:
        state = self.state
        raw = await request.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError as exc:
            return 400, error_body("invalid_json", f"Request body is not valid JSON: {exc}"), {}
        try:
            check_wire_strings(data)
            gen = GenerationRequest.from_api_json(data)
            spec = state.catalogue.get(gen.model) if isinstance(gen.model, str) else None
            if spec is None:
                raise SeedanceUnknownModelError(gen.model, list(state.catalogue))
            gen.validate(spec)
            check_url_shapes(gen)
        except SeedanceValidationError as exc:
            return 400, error_body("invalid_request", str(exc), field=exc.api_field), {}
        price = estimate_credits(
            gen.model, duration=gen.duration, resolution=gen.resolution,
            with_media=not gen.is_text_to_video, spec=spec,
        ) or 0
        now = time.monotonic()
        busy = state.limits.admit(key_index, now)
        if busy is not None:
            message = (f"Concurrency limit reached: {state.config.max_concurrent_jobs} generations already "
                       "running for this API key")
            return self._limit_reply("concurrency_limit", message, busy)
        key = state.config.api_keys[key_index]
        balance = state.balances.get(key, 0)
        if price > balance:
            message = f"Insufficient credits: this generation costs {price} credits, the balance is {balance}"
            return 402, error_body("insufficient_credits", message, required=price, balance=balance), {}
        behaviour = state.jobs.take_behaviour(gen)
        config = state.config
        scale = behaviour.time_scale if behaviour and behaviour.time_scale is not None else config.time_scale
        queued = config.queued_seconds * scale
        processing = config.processing_seconds * scale
        if behaviour is not None and behaviour.queued_seconds is not None:
            queued = behaviour.queued_seconds
        if behaviour is not None and behaviour.processing_seconds is not None:
            processing = behaviour.processing_seconds
        job = Job(
            request_id=new_request_id(), request=gen, key_id=key_index, credits=price,
            base_url=config.public_url or f"{request.scheme}://{request.host}",
            created=now, queued_for=queued, processing_for=processing, behaviour=behaviour,
        )
        state.jobs.add(job)
        state.limits.add_job(job, now)
        self._arm_slot_timer()
        state.balances[key] = balance - price
        state.counters.credits_charged += price
        if gen.webhook_url is not None:
            self.webhooks.schedule(job)
        payload = {"success": True, "requestId": job.request_id, "status": job.reported_status(),
                   "creditsCharged": price}
        return 200, payload, {}

    async def get_status(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/open/v1/video/generations/{requestId}``.

        :param request: the HTTP request.
        """
        rid = request.match_info["request_id"]
        return await self._serve(request, "status", self._get_status, request_id=rid)

    def _find(self, request: web.Request, key_index: int) -> tuple[Job | None, Reply | None]:
        rid = request.match_info["request_id"]
        job = self.state.jobs.get(rid)
        # Another key's job is invisible, as on a multi-tenant service.
        if job is None or job.key_id != key_index:
            return None, (404, error_body("not_found", f"No generation with requestId {rid!r}"), {})
        return job, None

    async def _get_status(self, request: web.Request, body: Any, key_index: int) -> Reply:
        job, missing = self._find(request, key_index)
        if job is None:
            assert missing is not None
            return missing
        return 200, job.to_api_json(), {}

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/open/v1/video/generations/{requestId}/cancel``.

        :param request: the HTTP request.
        """
        rid = request.match_info["request_id"]
        return await self._serve(request, "cancel", self._cancel, request_id=rid)

    async def _cancel(self, request: web.Request, body: Any, key_index: int) -> Reply:
        job, missing = self._find(request, key_index)
        if job is None:
            assert missing is not None
            return missing
        now = time.monotonic()
        phase = job.phase(now)
        if phase in TERMINAL:
            message = (f"Generation {job.request_id} already {phase}; only queued or processing "
                       "generations can be cancelled")
            payload = error_body("conflict", message)
            payload.update(requestId=job.request_id, status=phase)
            return 409, payload, {}
        refund = 0
        if phase == QUEUED:
            # Refund only before processing started: the vendor has spent nothing yet.
            refund = job.credits
            key = self.state.config.api_keys[key_index]
            self.state.balances[key] = self.state.balances.get(key, 0) + refund
            self.state.counters.credits_refunded += refund
        job.refunded = refund
        job.cancelled_at = now
        self.state.limits.cancelled(job, now)
        self.advance(now)
        self.webhooks.job_cancelled(job)
        return 200, {"success": True, "requestId": job.request_id, "status": "cancelled",
                     "creditsRefunded": refund}, {}

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/open/v1/models`` (no key needed, as in the vendor's example).

        :param request: the HTTP request.
        """
        return await self._serve(request, "models", self._list_models, needs_auth=False)

    async def _list_models(self, request: web.Request, body: Any, key_index: int) -> Reply:
        items = [spec.to_catalogue_item() for spec in self.state.catalogue.values()]
        return 200, {"success": True, "data": items}, {}

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        """``GET /files/{requestId}.mp4``: the bundled MP4 for a succeeded job (public, like a bucket).

        :param request: the HTTP request.
        """
        name = request.match_info["name"]
        rid = name[:-4] if name.endswith(".mp4") else name
        state = self.state
        state.counters.requests += 1
        state.counters.files += 1
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer is not None:
            state.connections.add(peer[:2])
        entry: dict[str, Any] = {"method": request.method, "path": request.path, "endpoint": "files",
                                 "body": None, "auth": self._auth(request)[0], "status": None,
                                 "requestId": rid, "time": time.time()}
        state.log.append(entry)
        delay, fault = state.faults.pick("files", request.method, rid)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            entry["fault"] = fault.kind
            if fault.kind in ("http", "malformed", "close"):
                return await render_fault(request, fault, entry, None)
        job = state.jobs.get(rid)
        self.advance()
        if job is None or not name.endswith(".mp4") or not job.output_available():
            entry["status"] = 404
            return json_response(404, error_body("not_found", f"No output file {name!r}"))
        entry["status"] = 200
        if fault is not None:  # drop: cut the download half way
            return await drop_half_way(request, 200, "video/mp4", self.sample_path.read_bytes(), entry)
        return web.FileResponse(self.sample_path, headers={"Content-Type": "video/mp4"})

def build_app(config: EmulatorConfig | None = None) -> web.Application:
    """The aiohttp application of one emulator.

    :param config: settings (defaults: :class:`EmulatorConfig`).
    """
    from airflow_provider_seedance.emulator.admin import add_admin_routes
    from airflow_provider_seedance.emulator.openapi import build_openapi

    server = EmulatorServer(config or EmulatorConfig())
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[json_errors])
    app[SERVER_KEY] = server
    app.router.add_post(GENERATIONS, server.submit)
    # No implicit HEAD on API routes: the Allow header then matches the OpenAPI document.
    app.router.add_get(GENERATIONS + "/{request_id}", server.get_status, allow_head=False)
    app.router.add_post(GENERATIONS + "/{request_id}/cancel", server.cancel)
    app.router.add_get(f"{API_PREFIX}/models", server.list_models, allow_head=False)
    app.router.add_get("/files/{name}", server.get_file)

    async def openapi(request: web.Request) -> web.Response:
        # Built per call: it describes the current catalogue (admin-added models included).
        return json_response(200, build_openapi(server.state.catalogue))

    app.router.add_get("/openapi.json", openapi)
    add_admin_routes(app, server)

    async def _close_webhooks(app: web.Application) -> None:
        await server.webhooks.close()

    app.on_cleanup.append(_close_webhooks)
    return app
