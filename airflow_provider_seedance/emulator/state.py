"""The emulator's settings and in-memory state: keys and balances, jobs, faults, request log, counters."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, ModelSpec
from airflow_provider_seedance.emulator.faults import FaultPlan
from airflow_provider_seedance.emulator.jobs import JobTable
from airflow_provider_seedance.emulator.limits import CONCURRENCY_MODES, AccountLimits

__all__ = ["DEFAULT_API_KEY", "DEFAULT_BALANCE", "EmulatorConfig", "EmulatorState", "mask_key"]

#: The documented test key accepted by default (``sd2_`` prefix like the vendor's keys).
DEFAULT_API_KEY = "sd2_test_emulator_key"
#: Credits each accepted key starts with: enough for any test, small enough to be a number.
DEFAULT_BALANCE = 1_000_000


def mask_key(key: str) -> str:
    """A printable stand-in for a key: prefix and last 4 characters only.

    :param key: the API key.
    """
    return (key[:4] + "..." + key[-4:]) if len(key) > 12 else "****"


@dataclass
class EmulatorConfig:
    """Settings (CLI flags, ``run_emulator`` kwargs, admin ``configure``).

    :param time_scale: multiplier of the default queued/processing durations (0.01 = 100x faster).
    :param queued_seconds: queued time of a job at time scale 1.
    :param processing_seconds: processing time of a job at time scale 1.
    :param api_keys: accepted bearer keys.
    :param balance: credits every key starts with (and is reset to by ``configure(balance=...)``).
    :param webhook_attempts: delivery attempts per webhook (1 + retries).
    :param webhook_backoff: seconds before the first webhook retry (doubles each retry).
    :param webhook_timeout: seconds allowed for one webhook delivery.
    :param public_url: base URL put in output URLs (default: the Host the client used).
    :param log_limit: request-log entries kept (oldest dropped first); counters are never dropped.
    :param max_concurrent_jobs: jobs per API key running at once (0 = no limit); see
        :mod:`~airflow_provider_seedance.emulator.limits`.
    :param concurrency_mode: past that limit, ``queue`` (the job stays queued until a slot frees) or
        ``refuse`` (the submit answers 429 with ``Retry-After``, nothing is charged).
    :param requests_per_second: keyed requests per second per API key (0 = no limit); past it 429 with
        ``Retry-After``.
    :param retry_after_seconds: fixed ``Retry-After`` of the limits' 429s (None: computed, whole seconds).
    """

    time_scale: float = 1.0
    queued_seconds: float = 1.0
    processing_seconds: float = 2.0
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    balance: int = DEFAULT_BALANCE
    webhook_attempts: int = 4
    webhook_backoff: float = 0.5
    webhook_timeout: float = 5.0
    public_url: str | None = None
    log_limit: int = 100_000
    max_concurrent_jobs: int = 0
    concurrency_mode: str = "queue"
    requests_per_second: float = 0.0
    retry_after_seconds: float | None = None

    _NUMBERS = ("time_scale", "queued_seconds", "processing_seconds", "webhook_backoff", "webhook_timeout",
                "requests_per_second")
    _INTS = ("balance", "webhook_attempts", "log_limit", "max_concurrent_jobs")

    def updated(self, settings: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with ``settings`` applied; ``ValueError`` names a bad or unknown setting.

        :param settings: field -> value (``balances`` is handled by the state, not here).
        """
        allowed = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; allowed: {sorted(allowed | {'balances'})}")
        values = dict(settings)
        for name in self._NUMBERS:
            if name in values:
                v = values[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ValueError(f"{name} must be a number >= 0, got {v!r}")
                values[name] = float(v)
        for name in self._INTS:
            if name in values:
                v = values[name]
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if "api_keys" in values:
            keys = values["api_keys"]
            if isinstance(keys, str):
                keys = [keys]
            if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) and k for k in keys):
                raise ValueError("api_keys must be a list of non-empty strings")
            values["api_keys"] = tuple(keys)
        if "concurrency_mode" in values and values["concurrency_mode"] not in CONCURRENCY_MODES:
            raise ValueError(f"concurrency_mode must be one of {list(CONCURRENCY_MODES)}, "
                             f"got {values['concurrency_mode']!r}")
        if values.get("retry_after_seconds") is not None:
            v = values["retry_after_seconds"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"retry_after_seconds must be a number >= 0 or null, got {v!r}")
            values["retry_after_seconds"] = float(v)
        if values.get("public_url") is not None:
            values["public_url"] = str(values["public_url"]).rstrip("/")
        return dataclasses.replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        """JSON form with keys masked."""
        data = dataclasses.asdict(self)
        data["api_keys"] = [mask_key(k) for k in self.api_keys]
        return data


@dataclass
class Counters:
    """Request counters (never trimmed, unlike the log)."""

    submits: int = 0
    gets: int = 0
    cancels: int = 0
    models: int = 0
    files: int = 0
    other: int = 0
    requests: int = 0
    credits_charged: int = 0
    credits_refunded: int = 0
    webhooks_delivered: int = 0
    webhooks_failed: int = 0


@dataclass
class EmulatorState:
    """Everything the server holds. Only touched from the server's event loop.

    :param initial: the settings the server started with (``reset`` returns to them).
    """

    initial: EmulatorConfig
    config: EmulatorConfig = field(init=False)
    jobs: JobTable = field(default_factory=JobTable)
    faults: FaultPlan = field(default_factory=FaultPlan)
    log: deque[dict[str, Any]] = field(init=False)
    counters: Counters = field(default_factory=Counters)
    balances: dict[str, int] = field(default_factory=dict)
    connections: set[Any] = field(default_factory=set)
    webhook_log: list[dict[str, Any]] = field(default_factory=list)
    catalogue: dict[str, ModelSpec] = field(default_factory=lambda: dict(BUILTIN_MODELS))
    limits: AccountLimits = field(default_factory=AccountLimits)

    def __post_init__(self) -> None:
        self.config = self.initial
        self.log = deque(maxlen=self.initial.log_limit or None)
        self._reset_balances()
        self._apply_limits()

    def _apply_limits(self) -> None:
        c = self.config
        self.limits.reconfigure(c.max_concurrent_jobs, c.concurrency_mode, c.requests_per_second,
                                c.retry_after_seconds)

    def _reset_balances(self) -> None:
        self.balances = {key: self.config.balance for key in self.config.api_keys}

    def reset(self) -> None:
        """Back to the start: initial settings, no jobs/faults/log/counters/connections."""
        self.config = self.initial
        self.jobs.clear()
        self.faults = FaultPlan()
        self.log = deque(maxlen=self.initial.log_limit or None)
        self.counters = Counters()
        self.connections.clear()
        self.webhook_log.clear()
        self.catalogue = dict(BUILTIN_MODELS)
        self._reset_balances()
        self.limits.clear()
        self._apply_limits()

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply admin/CLI settings (validated first, so a bad one changes nothing).

        :param settings: :class:`EmulatorConfig` fields, plus ``balances`` ({key: credits}).
        """
        settings = dict(settings)
        balances = settings.pop("balances", None)
        if balances is not None and (
            not isinstance(balances, Mapping)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in balances.values())
        ):
            raise ValueError("balances must be an object {api_key: credits >= 0}")
        new = self.config.updated(settings)
        keys_changed = new.api_keys != self.config.api_keys
        self.config = new
        if "log_limit" in settings:
            self.log = deque(self.log, maxlen=new.log_limit or None)
        if "balance" in settings:
            self._reset_balances()
        elif keys_changed:
            self.balances = {k: self.balances.get(k, new.balance) for k in new.api_keys}
        for key, credits in (balances or {}).items():
            self.balances[str(key)] = credits
        self._apply_limits()

    def key_index(self, key: str) -> int:
        """Position of an accepted key (how jobs and logs refer to keys), or -1.

        :param key: the bearer key.
        """
        try:
            return self.config.api_keys.index(key)
        except ValueError:
            return -1

    def balances_json(self) -> list[dict[str, Any]]:
        """Balances per accepted key, keys masked."""
        return [
            {"keyIndex": i, "key": mask_key(k), "balance": self.balances.get(k, 0)}
            for i, k in enumerate(self.config.api_keys)
        ]
