"""Numeric settings checked with a message that names the setting and its range.

Pure Python, cheap to import at DAG-parse time (operators and sensors call it in ``__init__``).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, overload

__all__ = ["positive_seconds"]


@overload
def positive_seconds(name: str, value: Any) -> float: ...
@overload
def positive_seconds(name: str, value: Any, *, allow_none: bool) -> float | None: ...


def positive_seconds(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """``value`` as a finite number of seconds > 0, or ``ValueError`` naming ``name`` and what it must be.

    Accepts a number, a numeric string (``float("5s")`` alone would say only "could not convert string to
    float"; a config value or template that rendered ``"5s"`` is answered with the parameter and its range) or
    a ``timedelta``.

    :param name: the parameter's name, as the user wrote it.
    :param value: the value given.
    :param allow_none: None is a valid value (e.g. "no limit") and is returned as is.
    """
    if value is None and allow_none:
        return None
    shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:100] + "..."
    problem = f"{name} must be a number of seconds > 0 (e.g. 5 or 2.5), got {shown} (a timedelta works too)"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(problem)
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise ValueError(problem) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(problem)
    return seconds
