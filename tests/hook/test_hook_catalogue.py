"""The live model catalogue: listing and caching, models the vendor adds, unreachable catalogue, prices."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, RESOLUTIONS
from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import SeedanceUnknownModelError, SeedanceValidationError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest

from .conftest import closed_port, set_connection

IMG = "https://example.com/a.jpg"
NEW_MODEL: dict[str, Any] = {
    "id": "seedance-3.0",
    "durations": [5, 10],
    "aspectRatios": ["16:9", "21:9"],
    "resolutions": ["720p", "2k"],
    "pricing": {"perSecond": {"720p": 10, "2k": 20}, "referenceMediaSurcharge": 5},
}


def models_requests(emu: EmulatorHandle) -> int:
    return int(emu.admin.stats()["models"])


def test_list_models_parses_the_emulator_catalogue(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    specs = hook.list_models()
    assert [s.model_id for s in specs] == list(BUILTIN_MODELS)
    for spec in specs:
        builtin = BUILTIN_MODELS[spec.model_id]
        assert (spec.durations, spec.aspect_ratios, spec.resolutions) == (
            builtin.durations, builtin.aspect_ratios, builtin.resolutions,
        )
        assert spec.pricing is not None
        assert "perSecond" in spec.pricing
    assert emu.admin.requests("models")[0]["auth"] == "valid"  # the key is sent anyway: harmless


def test_catalogue_is_cached_per_hook(emu: EmulatorHandle, make_hook: Callable[..., SeedanceHook]) -> None:
    hook = make_hook()
    hook.list_models()
    hook.list_models()
    assert asyncio.run(hook.alist_models()) == hook.list_models()
    assert models_requests(emu) == 1
    hook.list_models(refresh=True)
    assert models_requests(emu) == 2
    uncached = make_hook(catalogue_ttl=0)
    uncached.list_models()
    uncached.list_models()
    assert models_requests(emu) == 4


def test_builtin_models_are_validated_offline(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    for model, spec in BUILTIN_MODELS.items():
        assert hook.validate_request(GenerationRequest(prompt="p", model=model)) is spec
    assert emu.admin.requests() == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_model_the_catalogue_lists_is_validated_against_its_entry_and_sent(
    emu: EmulatorHandle, hook: SeedanceHook, mode: str
) -> None:
    emu.admin.add_model(**NEW_MODEL)
    request = GenerationRequest(prompt="p", media_urls=[IMG], model="seedance-3.0", duration=10,
                                aspect_ratio="21:9", resolution="2k")

    async def async_flow() -> tuple[Any, ...]:
        try:
            return (await hook.avalidate_request(request), hook.estimate_credits(request),
                    await hook.asubmit(request))
        finally:
            await hook.aclose()

    if mode == "sync":
        spec, estimate, result = hook.validate_request(request), hook.estimate_credits(request), hook.submit(request)
    else:
        spec, estimate, result = asyncio.run(async_flow())
    assert spec.model_id == "seedance-3.0"
    assert spec.durations == (5, 10)
    assert estimate == 10 * 20 + 5
    assert result.credits_charged == estimate
    assert emu.admin.requests("submit")[0]["body"]["model"] == "seedance-3.0"
    assert models_requests(emu) == 1  # cached between validate, estimate and submit


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"duration": 7}, "duration"), ({"aspect_ratio": "1:1"}, "aspect_ratio"), ({"resolution": "1080p"}, "resolution")],
)
def test_a_listed_model_still_enforces_its_rules(
    emu: EmulatorHandle, hook: SeedanceHook, fields: dict[str, Any], field: str
) -> None:
    emu.admin.add_model(**NEW_MODEL)
    with pytest.raises(SeedanceValidationError) as info:
        hook.submit(GenerationRequest(prompt="p", model="seedance-3.0", **fields))
    assert info.value.field == field
    assert "seedance-3.0" in str(info.value)
    assert emu.admin.stats()["submits"] == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_model_nobody_lists_is_rejected_naming_the_available_ones(
    emu: EmulatorHandle, hook: SeedanceHook, mode: str
) -> None:
    emu.admin.add_model(**NEW_MODEL)
    request = GenerationRequest(prompt="p", model="seedance-9000")

    async def async_submit() -> None:
        try:
            await hook.asubmit(request)
        finally:
            await hook.aclose()

    with pytest.raises(SeedanceUnknownModelError) as info:
        hook.submit(request) if mode == "sync" else asyncio.run(async_submit())
    assert info.value.available == [*BUILTIN_MODELS, "seedance-3.0"]
    for model in info.value.available:
        assert model in str(info.value)
    assert "live catalogue" in str(info.value)
    stats = emu.admin.stats()
    assert stats["submits"] == 0
    assert stats["models"] == 1


def test_catalogue_error_means_offline_rules_and_bundled_prices(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.add_fault(kind="http", status=503, endpoint="models", times=-1)
    request = GenerationRequest(prompt="p", media_urls=[IMG], duration=5, resolution="720p")
    assert hook.validate_request(request) is BUILTIN_MODELS["seedance-2.0"]
    assert hook.estimate_credits(request) == 64
    assert hook.estimate_credits(GenerationRequest(prompt="p", duration=5, resolution="720p")) == 40
    with pytest.raises(SeedanceUnknownModelError) as info:
        hook.submit(GenerationRequest(prompt="p", model="seedance-3.0"))
    assert "unreachable" in str(info.value)
    assert info.value.available == list(BUILTIN_MODELS)
    assert emu.admin.stats()["submits"] == 0


def test_unreachable_catalogue_host(monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., SeedanceHook]) -> None:
    set_connection(monkeypatch, "offline", host=f"127.0.0.1:{closed_port()}", password="sd2_k")
    hook = make_hook("offline")
    request = GenerationRequest(prompt="p", model="seedance-1.5-pro", duration=10, resolution="1080p")
    assert hook.validate_request(request).model_id == "seedance-1.5-pro"
    assert hook.estimate_credits(request) == request.estimate_credits()
    with pytest.raises(SeedanceUnknownModelError, match="unreachable"):
        hook.validate_request(GenerationRequest(prompt="p", model="seedance-3.0"))


def test_catalogue_pricing_wins_over_the_bundled_table(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    emu.admin.add_model(id="seedance-2.0", durations=list(range(4, 16)), aspectRatios=["16:9", "9:16", "1:1"],
                        resolutions=list(RESOLUTIONS), pricing={"perSecond": {"720p": 3}, "base": 1})
    request = GenerationRequest(prompt="p", media_urls=[IMG], duration=5, resolution="720p")
    assert request.estimate_credits() == 64  # the bundled table
    assert hook.estimate_credits(request) == 16
    assert hook.submit(request).credits_charged == 16


def test_estimate_equals_the_charge_for_every_builtin_combination(emu: EmulatorHandle, hook: SeedanceHook) -> None:
    mismatches = []
    count = 0
    for model, spec in BUILTIN_MODELS.items():
        assert spec.durations
        assert spec.resolutions
        for duration in spec.durations:
            for resolution in spec.resolutions:
                for media in ([IMG], None):
                    request = GenerationRequest(prompt="p", model=model, media_urls=media, duration=duration,
                                                resolution=resolution)
                    estimate = hook.estimate_credits(request)
                    charged = hook.submit(request).credits_charged
                    count += 1
                    if estimate != charged or estimate is None:
                        mismatches.append((model, duration, resolution, bool(media), estimate, charged))
    assert count == (12 + 12 + 2) * 3 * 2
    assert mismatches == []
    assert emu.admin.stats()["connections"] == 1  # all of it through one keep-alive connection
