"""Numeric settings checked with a message that names the setting and its range.

Pure Python, cheap to import at DAG-parse time (operators and sensors call it in ``__init__``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["positive_seconds"]


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` and what it must be when it is no number.

    The range itself (> 0, a maximum above the first interval) is the caller's check (e.g.
    :class:`~airflow_provider_seedance.polling.PollSchedule`), which names the values it compares.

    ``float("5s")`` alone says only "could not convert string to float"; a template or a config value
    that rendered ``"5s"`` must be answered with the parameter and its range instead.

    :param name: the parameter's name, as the user wrote it.
    :param value: the value given (number or numeric string).
    """
    problem = f"{name} must be a number of seconds > 0 (e.g. 5 or 2.5), got {value!r}"
    if isinstance(value, bool):
        raise ValueError(problem)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(problem) from None
