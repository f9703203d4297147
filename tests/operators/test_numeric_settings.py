"""The operator's numeric settings: a value of the wrong type names the parameter and its range.

Construction-time settings fail when the DAG is parsed; templated ones (credits) when the task runs,
before any request reaches the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_seedance.errors import SeedanceValidationError
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle


def _op(**kwargs: Any) -> SeedanceGenerateOperator:
    return SeedanceGenerateOperator(task_id="generate", prompt="a cat", deferrable=False, **kwargs)


@pytest.mark.parametrize("name", ["poll_interval", "max_poll_interval"])
@pytest.mark.parametrize("value", ["5s", "", None, True, [5], "five"], ids=repr)
def test_a_poll_interval_of_the_wrong_type_names_itself_and_its_range(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be a number of seconds > 0 \(e\.g\. 5 or 2\.5\), got "):
        _op(**{name: value})


@pytest.mark.parametrize("value", ["1h", True, [60], 0, -5, float("nan"), float("inf"), "nan"], ids=repr)
def test_a_timeout_of_the_wrong_type_names_itself_and_its_range(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be a number of seconds > 0 \(e\.g\. 5 or 2\.5\), got .*"
                                         r"\(a timedelta works too\)$"):
        _op(timeout=value)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "nan", "-inf"], ids=repr)
def test_one_seconds_validator_checks_the_range_too(value: Any) -> None:
    # The sensor's max_poll_interval once went through a validator that said "> 0" but checked only the type:
    # nan passed (max(nan, poke_interval) is nan) and reached the poll schedule.
    from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

    with pytest.raises(ValueError, match=r"^max_poll_interval must be a number of seconds > 0"):
        SeedanceJobSensor(task_id="wait", request_id="req_1", max_poll_interval=value)
    with pytest.raises(ValueError, match=r"^poll_interval must be a number of seconds > 0"):
        _op(poll_interval=value)


def test_a_timeout_may_be_a_timedelta_a_number_or_none() -> None:
    from datetime import timedelta

    assert _op(timeout=timedelta(minutes=2)).timeout == 120.0
    assert _op(timeout="60").timeout == 60.0
    assert _op(timeout=None).timeout is None


@pytest.mark.parametrize("name", ["max_credits", "run_budget_credits"])
@pytest.mark.parametrize("value", ["100 credits", "1e3", -1, 2.5, True], ids=repr)
def test_a_credit_setting_of_the_wrong_type_names_itself_and_its_range(
    emu: EmulatorHandle, context: dict[str, Any], name: str, value: Any
) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        _op(media_urls=["https://example.com/cat.jpg"], **{name: value}).execute(context)
    assert info.value.field == name
    assert "a whole number of credits >= 0" in str(info.value)
    assert emu.admin.stats()["requests"] == 0  # refused before anything was sent


@pytest.mark.parametrize("value", ["30s", None, True, "thirty"], ids=repr)
def test_the_sensors_max_poll_interval_of_the_wrong_type_names_itself_and_its_range(value: Any) -> None:
    from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

    with pytest.raises(ValueError, match=r"^max_poll_interval must be a number of seconds > 0 \(e\.g\. 5 or 2\.5\)"):
        SeedanceJobSensor(task_id="wait", request_id="req_1", max_poll_interval=value)
