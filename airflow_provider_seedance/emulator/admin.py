"""The admin API under ``/__emulator__/``: inspect and steer the emulator from tests (no auth, local use).

Admin calls are not counted, logged or seen as connections, so tests can assert on API traffic alone.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_seedance.catalogue import ModelSpec
from airflow_provider_seedance.emulator.faults import ENDPOINTS, FaultSpec
from airflow_provider_seedance.emulator.jobs import JobBehaviour

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.server import EmulatorServer

__all__ = ["ADMIN_PREFIX", "add_admin_routes"]

ADMIN_PREFIX = "/__emulator__"

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _ok(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload, default=str), content_type="application/json")


def _bad(message: str) -> web.Response:
    body = {"success": False, "error": {"code": "invalid_admin_request", "message": message}}
    return web.Response(status=400, text=json.dumps(body), content_type="application/json")


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def add_admin_routes(app: web.Application, server: EmulatorServer) -> None:
    """Register every admin endpoint on ``app``.

    :param app: the emulator's application.
    :param server: its handlers and state.
    """

    def guarded(func: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        # One place turns a bad admin body into a 400 naming the problem.
        async def wrapper(request: web.Request) -> web.Response:
            try:
                return _ok(await func(request))
            except (ValueError, TypeError) as exc:
                return _bad(str(exc))

        return wrapper

    async def reset(request: web.Request) -> dict[str, Any]:
        server.reset()
        return {"success": True}

    async def requests(request: web.Request) -> list[dict[str, Any]]:
        entries = list(server.state.log)
        endpoint = request.query.get("endpoint")
        if endpoint:
            # A misspelt filter would silently match nothing and let a count assertion pass.
            if endpoint not in ENDPOINTS or endpoint == "any":
                raise ValueError(f"endpoint must be one of {list(ENDPOINTS[:-1])}, got {endpoint!r}")
            entries = [e for e in entries if e["endpoint"] == endpoint]
        limit = request.query.get("limit")
        if limit:
            entries = entries[-int(limit):]
        return entries

    async def jobs(request: web.Request) -> list[dict[str, Any]]:
        now = server.advance()
        return [job.to_admin_json(now) for job in server.state.jobs]

    async def stats(request: web.Request) -> dict[str, Any]:
        state = server.state
        c = state.counters
        now = server.advance()
        lc = state.limits.counters
        return {
            "submits": c.submits, "gets": c.gets, "cancels": c.cancels, "models": c.models, "files": c.files,
            "requests": c.requests, "connections": len(state.connections),
            "jobs": state.jobs.counts_by_status(), "jobs_total": len(state.jobs),
            "faults_injected": state.faults.injected,
            "credits_charged": c.credits_charged, "credits_refunded": c.credits_refunded,
            "balances": state.balances_json(),
            "webhooks_delivered": c.webhooks_delivered, "webhooks_failed": c.webhooks_failed,
            "limits": {
                "max_concurrent_jobs": state.config.max_concurrent_jobs,
                "concurrency_mode": state.config.concurrency_mode,
                "requests_per_second": state.config.requests_per_second,
                "running": state.limits.running(now),
                "waiting_for_slot": state.limits.waiting(),
                "peak_running": lc.peak_running,
                "peak_waiting_for_slot": lc.peak_waiting,
                "jobs_queued_for_slot": lc.jobs_queued_for_slot,
                "slot_wait_seconds": round(lc.slot_wait_seconds, 3),
                "sent_429": lc.sent_429,
                "refused_concurrency": lc.refused_concurrency,
                "refused_rate": lc.refused_rate,
            },
        }

    async def faults_get(request: web.Request) -> list[dict[str, Any]]:
        return server.state.faults.list()

    async def faults_add(request: web.Request) -> dict[str, Any]:
        spec = FaultSpec.from_json(await _json_object(request))
        index = server.state.faults.add(spec)
        return {"success": True, "index": index, "fault": spec.to_json()}

    async def faults_clear(request: web.Request) -> dict[str, Any]:
        server.state.faults.clear()
        return {"success": True}

    async def next_get(request: web.Request) -> list[dict[str, Any]]:
        return [b.to_json() for b in server.state.jobs.behaviours()]

    async def next_add(request: web.Request) -> dict[str, Any]:
        behaviour = JobBehaviour.from_json(await _json_object(request))
        server.state.jobs.push_behaviour(behaviour)
        return {"success": True, "behaviour": behaviour.to_json()}

    async def next_clear(request: web.Request) -> dict[str, Any]:
        server.state.jobs.clear_behaviours()
        return {"success": True}

    async def config_get(request: web.Request) -> dict[str, Any]:
        return server.state.config.to_json()

    async def configure(request: web.Request) -> dict[str, Any]:
        server.state.configure(await _json_object(request))
        return server.state.config.to_json()

    async def webhooks(request: web.Request) -> list[dict[str, Any]]:
        return list(server.state.webhook_log)

    async def models_get(request: web.Request) -> list[dict[str, Any]]:
        return [spec.to_catalogue_item() for spec in server.state.catalogue.values()]

    async def models_add(request: web.Request) -> dict[str, Any]:
        spec = ModelSpec.from_catalogue_item(await _json_object(request))
        if spec is None:
            raise ValueError("a catalogue item needs an 'id'")
        server.state.catalogue[spec.model_id] = spec
        return {"success": True, "model": spec.to_catalogue_item()}

    async def models_remove(request: web.Request) -> dict[str, Any]:
        model_id = request.match_info["model_id"]
        if server.state.catalogue.pop(model_id, None) is None:
            raise ValueError(f"no model {model_id!r} in the catalogue")
        return {"success": True}

    async def models_reset(request: web.Request) -> dict[str, Any]:
        from airflow_provider_seedance.catalogue import BUILTIN_MODELS

        server.state.catalogue = dict(BUILTIN_MODELS)
        return {"success": True}

    async def health(request: web.Request) -> dict[str, Any]:
        return {"success": True, "jobs": len(server.state.jobs)}

    p = ADMIN_PREFIX
    router = app.router
    router.add_post(f"{p}/reset", guarded(reset))
    router.add_get(f"{p}/requests", guarded(requests))
    router.add_get(f"{p}/jobs", guarded(jobs))
    router.add_get(f"{p}/stats", guarded(stats))
    router.add_get(f"{p}/faults", guarded(faults_get))
    router.add_post(f"{p}/faults", guarded(faults_add))
    router.add_delete(f"{p}/faults", guarded(faults_clear))
    router.add_get(f"{p}/next-jobs", guarded(next_get))
    router.add_post(f"{p}/next-jobs", guarded(next_add))
    router.add_delete(f"{p}/next-jobs", guarded(next_clear))
    router.add_get(f"{p}/config", guarded(config_get))
    router.add_post(f"{p}/configure", guarded(configure))
    router.add_get(f"{p}/webhooks", guarded(webhooks))
    router.add_get(f"{p}/models", guarded(models_get))
    router.add_post(f"{p}/models", guarded(models_add))
    router.add_delete(f"{p}/models", guarded(models_reset))
    router.add_delete(f"{p}/models/{{model_id}}", guarded(models_remove))
    router.add_get(f"{p}/health", guarded(health))
