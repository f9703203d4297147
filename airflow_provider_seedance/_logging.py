"""One logger per class instead of one per instance, for objects a triggerer holds by the thousand.

Airflow's ``LoggingMixin`` builds a logger for every instance on first use: about eight garbage-collected
objects each. A triggerer holding 10,000 waits (a trigger and a hook each) would carry 160,000 of them,
and CPython's full garbage collection stops the event loop for as long as it takes to walk them all.
Sharing is safe: Airflow routes a trigger's or task's log lines by context variables bound around the
run, not by logger object, and the logger's name (the class path) is the same either way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClassLoggerMixin"]

_CLASS_LOGGERS: dict[type, Any] = {}


class ClassLoggerMixin:
    """Put before ``LoggingMixin`` (``BaseHook``, ``BaseTrigger``) in the bases; an instance created with its
    own ``logger_name`` keeps a logger of its own."""

    @property
    def log(self) -> Any:
        """The class's logger, shared by its instances."""
        own = getattr(self, "_log", None)
        if own is not None or getattr(self, "_logger_name", None) is not None:
            return own if own is not None else super().log  # type: ignore[misc]
        cls = type(self)
        shared = _CLASS_LOGGERS.get(cls)
        if shared is None:
            shared = _CLASS_LOGGERS[cls] = super().log  # type: ignore[misc]
        return shared
