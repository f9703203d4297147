"""Deterministic fault injection: what goes wrong, on which endpoint, how many times.

A fault is consumed by the requests it matches, in the order faults were added. ``latency`` faults
add up and let the request continue; the first other matching fault replaces the normal answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ENDPOINTS", "FAULT_KINDS", "FaultPlan", "FaultSpec", "parse_fault_arg"]

#: Endpoint names a fault can be scoped to ("any" = every API endpoint, never the admin API).
ENDPOINTS = ("submit", "status", "cancel", "models", "files", "any")

#: http: answer ``status`` (429/500/502/503/...) with a JSON error body (and ``Retry-After`` if set).
#: latency: wait ``delay`` seconds, then answer normally (or apply the next matching fault).
#: drop: send the headers and part of the body, then abort the connection.
#: close: close the connection without any response.
#: malformed: answer ``status`` (default 200) with a body that is not valid JSON.
FAULT_KINDS = ("http", "latency", "drop", "close", "malformed")

_DEFAULT_MALFORMED = '{"success": true, "requestId": "req_'


@dataclass
class FaultSpec:
    """One fault rule (admin ``POST /__emulator__/faults`` body; every field but ``kind`` optional).

    :param kind: one of :data:`FAULT_KINDS`.
    :param endpoint: one of :data:`ENDPOINTS`.
    :param method: only requests with this HTTP method (GET/POST).
    :param times: how many matching requests it hits; -1 = until cleared.
    :param skip: let this many matching requests pass it first (e.g. ``skip=2, times=1``: only the 3rd poll).
    :param status: HTTP status for ``http`` (default 503) and ``malformed`` (default 200).
    :param retry_after: ``Retry-After`` header value (seconds or HTTP date), ``http`` only.
    :param delay: seconds of added latency (``latency``).
    :param body: raw body to send (``malformed``) or error message (``http``).
    :param process: handle the request first (a job is created and charged) and then break the answer.
        Default: False for ``http``/``close``, True for ``drop``/``malformed`` (the answer was lost).
    :param request_id: only requests about this job id.
    """

    kind: str = "http"
    endpoint: str = "any"
    method: str | None = None
    times: int = 1
    skip: int = 0
    status: int | None = None
    retry_after: str | float | None = None
    delay: float = 0.0
    body: str | None = None
    process: bool | None = None
    request_id: str | None = None
    hits: int = 0
    seen: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultSpec:
        """Build and check a fault from JSON; ``ValueError`` names the bad field.

        :param data: JSON object.
        """
        allowed = set(cls.__dataclass_fields__) - {"hits", "seen"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown fault field(s) {unknown}; allowed: {sorted(allowed)}")
        spec = cls(**dict(data))
        if spec.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {list(FAULT_KINDS)}, got {spec.kind!r}")
        if spec.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {list(ENDPOINTS)}, got {spec.endpoint!r}")
        if spec.method is not None:
            spec.method = str(spec.method).upper()
        for name in ("times", "skip"):
            value = getattr(spec, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if spec.status is not None and (not isinstance(spec.status, int) or not 100 <= spec.status <= 599):
            raise ValueError(f"status must be an HTTP status code, got {spec.status!r}")
        if isinstance(spec.delay, bool) or not isinstance(spec.delay, (int, float)) or spec.delay < 0:
            raise ValueError(f"delay must be a number of seconds >= 0, got {spec.delay!r}")
        if spec.process is None:
            spec.process = spec.kind in ("drop", "malformed")
        return spec

    def to_json(self) -> dict[str, Any]:
        """JSON form (admin listing), with the number of hits so far."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def exhausted(self) -> bool:
        """True when it will hit no more requests."""
        return self.times >= 0 and self.hits >= self.times

    def matches(self, endpoint: str, method: str, request_id: str | None) -> bool:
        """Whether a request is in scope (ignoring ``skip``/``times``).

        :param endpoint: the request's endpoint name.
        :param method: HTTP method.
        :param request_id: the job id in the path, if any.
        """
        if self.endpoint != "any" and self.endpoint != endpoint:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.request_id is None or self.request_id == request_id

    @property
    def http_status(self) -> int:
        """Status code to answer with."""
        if self.status is not None:
            return self.status
        return 200 if self.kind == "malformed" else 503

    @property
    def malformed_body(self) -> str:
        """The invalid body of a ``malformed`` fault."""
        return self.body if self.body is not None else _DEFAULT_MALFORMED


class FaultPlan:
    """The active faults, in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[FaultSpec] = []
        self.injected = 0

    def add(self, spec: FaultSpec) -> int:
        """Append a fault; return its index.

        :param spec: the fault.
        """
        self._faults.append(spec)
        return len(self._faults) - 1

    def clear(self) -> None:
        """Remove every fault (the injected counter is kept until reset)."""
        self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        """JSON listing of every fault with its hits."""
        return [f.to_json() for f in self._faults]

    def pick(self, endpoint: str, method: str, request_id: str | None) -> tuple[float, FaultSpec | None]:
        """Consume the faults this request triggers.

        :param endpoint: the request's endpoint name.
        :param method: HTTP method.
        :param request_id: the job id in the path, if any.
        :return: (total added latency, the replacing fault or None).
        """
        if not self._faults:
            return 0.0, None
        delay = 0.0
        chosen: FaultSpec | None = None
        for spec in self._faults:
            if spec.exhausted or not spec.matches(endpoint, method, request_id):
                continue
            # Skipped requests are counted even when an earlier fault hits them: "the 3rd GET" stays the 3rd.
            if spec.seen < spec.skip:
                spec.seen += 1
                continue
            if spec.kind == "latency":
                delay += float(spec.delay)
            elif chosen is None:
                chosen = spec
            else:
                continue  # stays armed for the next matching request
            spec.hits += 1
            self.injected += 1
        return delay, chosen


def parse_fault_arg(text: str) -> dict[str, Any]:
    """Parse a CLI ``--fault``/``--next-job`` value: JSON, or ``key=value,key=value``.

    Values that look like integers, floats or booleans are converted.

    :param text: the argument.
    """
    text = text.strip()
    if text.startswith("{"):
        import json

        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data
    result: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {part!r}")
        result[key.strip()] = _convert(raw.strip())
    return result


def _convert(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw
