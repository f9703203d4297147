"""The model catalogue: built-in specs, tolerant parsing, and the price table."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.catalogue import (
    ASPECT_RATIOS,
    BUILTIN_MODELS,
    RESOLUTIONS,
    ModelSpec,
    estimate_credits,
    parse_catalogue,
)


def test_builtin_models_follow_the_reference() -> None:
    assert list(BUILTIN_MODELS) == ["seedance-2.0", "seedance-2.0-fast", "seedance-1.5-pro"]
    assert BUILTIN_MODELS["seedance-2.0"].durations == tuple(range(4, 16))
    assert BUILTIN_MODELS["seedance-2.0-fast"].durations == tuple(range(4, 16))
    assert BUILTIN_MODELS["seedance-1.5-pro"].durations == (5, 10)
    for spec in BUILTIN_MODELS.values():
        assert spec.aspect_ratios == ASPECT_RATIOS == ("16:9", "9:16", "1:1")
        assert spec.resolutions == RESOLUTIONS == ("480p", "720p", "1080p")


@pytest.mark.parametrize("spec", list(BUILTIN_MODELS.values()), ids=list(BUILTIN_MODELS))
def test_catalogue_item_round_trip(spec: ModelSpec) -> None:
    item = spec.to_catalogue_item()
    assert item["id"] == spec.model_id
    again = ModelSpec.from_catalogue_item(item)
    assert again is not None
    assert (again.model_id, again.durations, again.aspect_ratios, again.resolutions) == (
        spec.model_id, spec.durations, spec.aspect_ratios, spec.resolutions,
    )
    assert dict(again.pricing or {}) == dict(spec.pricing or {})


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param({"id": "m", "durations": [10, 5, 5, "x", 7.0]}, {"durations": (5, 7, 10)}, id="durations-list"),
        pytest.param({"id": "m", "durations": {"min": 4, "max": 6}}, {"durations": (4, 5, 6)}, id="durations-range"),
        pytest.param({"id": "m", "durations": {"min": 6, "max": 4}}, {"durations": None}, id="durations-bad-range"),
        pytest.param({"id": "m", "durations": {"min": 1, "max": 100000}}, {"durations": None}, id="durations-huge"),
        pytest.param({"id": "m", "durations": "4-6"}, {"durations": (4, 5, 6)}, id="durations-string-range"),
        pytest.param({"id": "m", "durations": "8"}, {"durations": (8,)}, id="durations-string-one"),
        pytest.param({"id": "m", "durations": "\u00b2"}, {"durations": None}, id="durations-superscript"),
        pytest.param({"id": "m", "duration": 5}, {"durations": (5,)}, id="duration-singular"),
        pytest.param({"id": "m", "durations": True}, {"durations": None}, id="durations-bool"),
        pytest.param({"id": "m", "durations": []}, {"durations": None}, id="durations-empty"),
        pytest.param({"id": "m", "aspectRatios": "16:9"}, {"aspect_ratios": ("16:9",)}, id="ratios-string"),
        pytest.param({"id": "m", "aspect_ratios": ["1:1", 3, ""]}, {"aspect_ratios": ("1:1",)}, id="ratios-snake"),
        pytest.param({"id": "m", "resolutions": {"a": 1}}, {"resolutions": None}, id="resolutions-mapping"),
        pytest.param({"id": "m", "price": {"perSecond": {"720p": 1}}}, {"pricing": {"perSecond": {"720p": 1}}},
                     id="price-alias"),
        pytest.param({"id": "m", "pricing": "cheap"}, {"pricing": None}, id="pricing-string"),
        pytest.param({"id": "m", "brandNew": {"x": 1}}, {"extra": {"brandNew": {"x": 1}}}, id="unknown-key-kept"),
        pytest.param({"model": " m "}, {"model_id": "m"}, id="model-key"),
        pytest.param({"modelId": "m"}, {"model_id": "m"}, id="modelId-key"),
        pytest.param({"name": "m"}, {"model_id": "m"}, id="name-key"),
        pytest.param("m", {"model_id": "m", "durations": None}, id="bare-string"),
    ],
)
def test_tolerant_item_parsing(item: Any, expected: dict[str, Any]) -> None:
    spec = ModelSpec.from_catalogue_item(item)
    assert spec is not None
    for attr, value in expected.items():
        got = getattr(spec, attr)
        if attr in ("pricing", "extra") and got is not None:
            got = dict(got)
        assert got == value


@pytest.mark.parametrize("item", [None, 5, [], {}, {"id": ""}, {"id": 5}, "  ", {"durations": [5]}])
def test_items_naming_no_model_are_skipped(item: Any) -> None:
    assert ModelSpec.from_catalogue_item(item) is None


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        pytest.param({"success": True, "data": [{"id": "a"}, {"id": "b"}]}, ["a", "b"], id="data-list"),
        pytest.param({"models": [{"id": "a"}]}, ["a"], id="models-list"),
        pytest.param({"data": {"models": [{"id": "a"}]}}, ["a"], id="data-models"),
        pytest.param({"data": {"items": ["a", None, 3]}}, ["a"], id="data-items"),
        pytest.param([{"id": "a"}, "b"], ["a", "b"], id="bare-list"),
        pytest.param({"data": "nope"}, [], id="data-string"),
        pytest.param({}, [], id="empty-object"),
        pytest.param(None, [], id="null"),
        pytest.param("text", [], id="text"),
    ],
)
def test_parse_catalogue_shapes(body: Any, ids: list[str]) -> None:
    assert [s.model_id for s in parse_catalogue(body)] == ids


def test_vendor_examples_are_reproduced() -> None:
    assert estimate_credits("seedance-2.0", duration=5, resolution="720p", with_media=True) == 64
    assert estimate_credits("seedance-2.0", duration=5, resolution="720p", with_media=False) == 40
    # Omitted duration/resolution: the vendor's example values are assumed.
    assert estimate_credits("seedance-2.0", duration=None, resolution=None, with_media=True) == 64


@pytest.mark.parametrize("model", list(BUILTIN_MODELS))
def test_bundled_prices_grow_with_duration_and_resolution(model: str) -> None:
    spec = BUILTIN_MODELS[model]
    assert spec.durations is not None
    for media in (True, False):
        by_duration = [estimate_credits(model, duration=d, resolution="720p", with_media=media) for d in spec.durations]
        assert all(isinstance(p, int) and p > 0 for p in by_duration)
        assert by_duration == sorted(by_duration)
        by_res = [estimate_credits(model, duration=spec.durations[0], resolution=r, with_media=media)
                  for r in RESOLUTIONS]
        assert by_res == sorted(by_res)
    assert estimate_credits(model, duration=5, resolution="720p", with_media=True) > estimate_credits(
        model, duration=5, resolution="720p", with_media=False
    )


def test_catalogue_pricing_wins_over_the_bundled_table() -> None:
    spec = ModelSpec("seedance-2.0", pricing={"perSecond": {"720p": 1}, "base": 2, "referenceMediaSurcharge": 3})
    assert estimate_credits("seedance-2.0", duration=5, resolution="720p", with_media=True, spec=spec) == 10
    assert estimate_credits("seedance-2.0", duration=5, resolution="720p", with_media=False, spec=spec) == 7


def test_fractional_rates_round_up() -> None:
    spec = ModelSpec("m", pricing={"perSecond": {"720p": 1.1}})
    assert estimate_credits("m", duration=5, resolution="720p", with_media=False, spec=spec) == 6


@pytest.mark.parametrize(
    "pricing",
    [None, {}, {"perSecond": "8"}, {"perSecond": {"480p": 1}}, {"perSecond": {"720p": True}},
     {"perSecond": {"720p": 1}, "base": "2"}, {"perSecond": {"720p": 1}, "referenceMediaSurcharge": None}],
)
def test_pricing_not_understood_falls_back(pricing: Any) -> None:
    # A built-in model falls back to the bundled table ...
    spec = ModelSpec("seedance-2.0", pricing=pricing)
    assert estimate_credits("seedance-2.0", duration=5, resolution="720p", with_media=True, spec=spec) == 64
    # ... a model the table does not know has no estimate.
    other = ModelSpec("seedance-9", pricing=pricing)
    assert estimate_credits("seedance-9", duration=5, resolution="720p", with_media=True, spec=other) is None


def test_unknown_model_without_spec_has_no_estimate() -> None:
    assert estimate_credits("seedance-9", duration=5, resolution="720p", with_media=True) is None
