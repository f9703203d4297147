"""Every type error on a numeric field names the field and what it may be (its unit and range).

A template that renders ``duration`` as ``'7s'`` must be answered with the model's allowed durations,
not only "an integer"; the operator's numeric settings say their field and range the same way.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.catalogue import BUILTIN_MODELS
from airflow_provider_seedance.errors import SeedanceValidationError
from airflow_provider_seedance.models import GenerationRequest

BAD_DURATIONS = ["7s", "5 seconds", "five", "", 5.5, True, [5], {"s": 5}, "\u00b2", "1e1"]

# What the catalogue says each built-in model accepts, as the message must spell it.
RANGES = {"seedance-2.0": "an integer from 4 to 15", "seedance-2.0-fast": "an integer from 4 to 15",
          "seedance-1.5-pro": "5 or 10"}


def test_the_expected_ranges_are_the_catalogues() -> None:
    # Guards the table above: a catalogue change must change the expected messages, not silently pass.
    assert set(RANGES) == set(BUILTIN_MODELS)
    assert BUILTIN_MODELS["seedance-1.5-pro"].durations == (5, 10)
    assert BUILTIN_MODELS["seedance-2.0"].durations == tuple(range(4, 16))


@pytest.mark.parametrize("model", sorted(RANGES))
@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
def test_a_duration_of_the_wrong_type_gives_the_models_range(model: str, value: Any) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="p", model=model, duration=value)
    err = info.value
    assert err.field == "duration"
    assert f"for {model}: {RANGES[model]}" in err.allowed
    assert "seconds" in err.allowed
    assert str(err).startswith("Invalid duration: ")
    assert RANGES[model] in str(err)


def test_a_duration_of_the_wrong_type_for_a_catalogue_model_lists_every_builtin_range() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="p", model="seedance-3.0", duration="7s")
    allowed = info.value.allowed
    for model, described in RANGES.items():
        assert f"{model}: {described}" in allowed
    assert "catalogue" in allowed


def test_the_wire_format_names_the_range_too() -> None:
    # The emulator's 400 answer comes from here: the same help as on the client side.
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_api_json({"model": "seedance-1.5-pro", "prompt": "p", "duration": "7"})
    assert info.value.field == "duration"
    assert "for seedance-1.5-pro: 5 or 10" in info.value.allowed


def test_an_out_of_range_integer_still_names_the_range() -> None:
    with pytest.raises(SeedanceValidationError, match=r"for seedance-2\.0: an integer from 4 to 15 seconds"):
        GenerationRequest(prompt="p", duration=16).validate()


@pytest.mark.parametrize("value", ["7", " 7 ", "+7", 7, 7.0])
def test_loose_but_whole_numbers_are_still_accepted(value: Any) -> None:
    assert GenerationRequest(prompt="p", duration=value).duration == 7
