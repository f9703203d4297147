"""How the emulator answers: the JSON and error shapes, and the broken answers of injected faults."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from airflow_provider_seedance.emulator.faults import FaultSpec

__all__ = ["Reply", "decode_for_log", "drop_half_way", "error_body", "json_errors", "json_response", "render_fault"]

#: (HTTP status, JSON payload, extra headers) as the endpoint handlers return it.
Reply = tuple[int, dict[str, Any], dict[str, str]]


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error shape: ``{"success": false, "error": {"code", "message", ...}}``.

    :param code: machine-readable code.
    :param message: readable message.
    :param extra: more keys for the ``error`` object (e.g. ``field``).
    """
    return {"success": False, "error": {"code": code, "message": message, **extra}}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response.

    :param status: HTTP status.
    :param payload: the body.
    :param headers: extra headers.
    """
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json", headers=headers)


async def render_fault(
    request: web.Request, fault: FaultSpec, entry: dict[str, Any], reply: Reply | None
) -> web.StreamResponse:
    """Answer (or fail to answer) as the fault says, and note what was sent in the log entry.

    :param request: the HTTP request.
    :param fault: the fault hitting it.
    :param entry: its request-log entry.
    :param reply: the normal answer when the request was processed first (``fault.process``).
    """
    if fault.kind == "http":
        status = fault.http_status
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        code = "rate_limited" if status == 429 else "server_error" if status >= 500 else "injected_fault"
        entry["status"] = status
        return json_response(status, error_body(code, fault.body or f"Injected fault: HTTP {status}"), headers)
    if fault.kind == "malformed":
        entry["status"] = fault.http_status
        return web.Response(status=fault.http_status, text=fault.malformed_body, content_type="application/json")
    if fault.kind == "close":
        if request.transport is not None:
            request.transport.close()
        entry["status"] = "closed"
        return web.Response(status=500)  # never sent: the connection is gone
    status, payload, _ = reply if reply is not None else (200, {"success": True}, {})
    return await drop_half_way(request, status, "application/json", json.dumps(payload).encode(), entry)


async def drop_half_way(
    request: web.Request, status: int, content_type: str, data: bytes, entry: dict[str, Any]
) -> web.StreamResponse:
    """Promise ``data`` in full (Content-Length), send half of it, then abort the connection.

    :param request: the HTTP request.
    :param status: HTTP status sent in the headers.
    :param content_type: Content-Type sent.
    :param data: the complete body that is never completed.
    :param entry: its request-log entry.
    """
    resp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    resp.content_length = len(data)
    await resp.prepare(request)
    await resp.write(data[: max(1, len(data) // 2)])
    if request.transport is not None:
        request.transport.abort()
    entry["status"] = "dropped"
    return resp


def decode_for_log(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:2000].decode("utf-8", "replace")


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and methods answer in the API's error shape (404/405 JSON) instead of plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status not in (404, 405):
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = "not_found" if exc.status == 404 else "method_not_allowed"
        return json_response(exc.status, error_body(code, f"{exc.reason}: {request.method} {request.path}"), headers)
