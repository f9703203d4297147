"""Every vendor rule of GenerationRequest, valid and invalid, and the exact API body."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, ModelSpec
from airflow_provider_seedance.errors import SeedanceUnknownModelError, SeedanceValidationError
from airflow_provider_seedance.models import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    GenerationRequest,
    is_loopback_host,
)

IMG = "https://example.com/a.jpg"


def build(**overrides: Any) -> GenerationRequest:
    kwargs: dict[str, Any] = {"prompt": "a cat", "media_urls": [IMG]}
    kwargs.update(overrides)
    return GenerationRequest(**kwargs)


VALID = [
    pytest.param({}, id="minimal"),
    *[pytest.param({"model": m}, id=f"model-{m}") for m in BUILTIN_MODELS],
    pytest.param({"prompt": "  spaces around  "}, id="prompt-padded"),
    pytest.param({"media_urls": None}, id="media-none-t2v"),
    pytest.param({"media_urls": []}, id="media-empty-t2v"),
    pytest.param({"media_urls": ""}, id="media-empty-string-t2v"),
    pytest.param({"media_urls": [IMG] * 5}, id="media-five"),
    pytest.param({"media_urls": IMG}, id="media-one-string"),
    pytest.param({"media_urls": f'["{IMG}", "{IMG}"]'}, id="media-json-list"),
    pytest.param({"media_urls": ("https://cdn.example.com/signed?sig=abc",)}, id="media-no-extension"),
    pytest.param({"media_urls": ["https://example.com/a.JPG?x=1"]}, id="media-ext-uppercase-query"),
    pytest.param({"media_urls": ["http://127.0.0.1:8787/a.png"]}, id="media-http-loopback-ip"),
    pytest.param({"media_urls": ["http://localhost/a.png"]}, id="media-http-localhost"),
    pytest.param({"media_urls": ["http://[::1]:80/a.png"]}, id="media-http-ipv6-loopback"),
    *[pytest.param({"media_urls": [f"https://e.com/f{ext}"]}, id=f"media-ext{ext}")
      for ext in sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS)],
    *[pytest.param({"aspect_ratio": r}, id=f"ratio-{r}") for r in ("16:9", "9:16", "1:1")],
    pytest.param({"aspect_ratio": ""}, id="ratio-empty-is-unset"),
    *[pytest.param({"resolution": r}, id=f"res-{r}") for r in ("480p", "720p", "1080p")],
    *[pytest.param({"model": m, "duration": d}, id=f"dur-{m}-{d}")
      for m in ("seedance-2.0", "seedance-2.0-fast") for d in (4, 9, 15)],
    *[pytest.param({"model": "seedance-1.5-pro", "duration": d}, id=f"dur-1.5-pro-{d}") for d in (5, 10)],
    pytest.param({"duration": "5"}, id="dur-string"),
    pytest.param({"duration": "+5"}, id="dur-plus-string"),
    pytest.param({"duration": 5.0}, id="dur-integral-float"),
    pytest.param({"webhook_url": "https://hooks.example.com/x"}, id="webhook-https"),
    pytest.param({"webhook_url": "http://127.0.0.1:9/x"}, id="webhook-http-loopback"),
    pytest.param({"metadata": {"a": 1, "b": [1, "x"], "c": {"d": None}}}, id="metadata-dict"),
    pytest.param({"metadata": '{"a": 1}'}, id="metadata-json-string"),
    pytest.param({"metadata": {}}, id="metadata-empty"),
]


@pytest.mark.parametrize("overrides", VALID)
def test_valid_requests_pass(overrides: dict[str, Any]) -> None:
    request = build(**overrides)
    assert request.validate() is request


# (overrides, field named in the error, text the "allowed" part must contain)
INVALID = [
    pytest.param({"model": ""}, "model", "seedance-2.0", id="model-empty"),
    pytest.param({"model": "   "}, "model", "seedance-1.5-pro", id="model-blank"),
    pytest.param({"model": 20}, "model", "seedance-2.0-fast", id="model-int"),
    pytest.param({"model": "seedance-9"}, "model", "seedance-2.0", id="model-unknown"),
    pytest.param({"prompt": ""}, "prompt", "non-empty", id="prompt-empty"),
    pytest.param({"prompt": "  \n"}, "prompt", "non-empty", id="prompt-blank"),
    pytest.param({"prompt": None}, "prompt", "non-empty", id="prompt-none"),
    pytest.param({"prompt": 7}, "prompt", "non-empty", id="prompt-int"),
    pytest.param({"media_urls": [IMG] * 6}, "media_urls", "1 to 5", id="media-six"),
    pytest.param({"media_urls": ["http://example.com/a.jpg"]}, "media_urls", "https", id="media-http-remote"),
    pytest.param({"media_urls": ["ftp://example.com/a.jpg"]}, "media_urls", "https", id="media-ftp"),
    pytest.param({"media_urls": ["/local/a.jpg"]}, "media_urls", "https", id="media-relative"),
    pytest.param({"media_urls": ["https://"]}, "media_urls", "https", id="media-no-host"),
    pytest.param({"media_urls": [""]}, "media_urls", "https", id="media-empty-item"),
    pytest.param({"media_urls": [123]}, "media_urls", "https", id="media-int-item"),
    pytest.param({"media_urls": ["https://[::1/a.jpg"]}, "media_urls", "https", id="media-broken-ipv6"),
    pytest.param({"media_urls": ["https://e.com/doc.pdf"]}, "media_urls", ".jpg", id="media-ext-pdf"),
    pytest.param({"media_urls": ["https://e.com/a.txt"]}, "media_urls", ".mp3", id="media-ext-txt"),
    pytest.param({"media_urls": ["https://e.com/clip.avi"]}, "media_urls", ".mp4", id="media-ext-avi"),
    pytest.param({"aspect_ratio": "4:3"}, "aspect_ratio", "16:9, 9:16, 1:1", id="ratio-4-3"),
    pytest.param({"aspect_ratio": 1.77}, "aspect_ratio", "16:9", id="ratio-float"),
    pytest.param({"resolution": "4k"}, "resolution", "480p, 720p, 1080p", id="res-4k"),
    pytest.param({"resolution": "720"}, "resolution", "720p", id="res-no-p"),
    pytest.param({"duration": 3}, "duration", "4 to 15", id="dur-2.0-3"),
    pytest.param({"duration": 16}, "duration", "4 to 15", id="dur-2.0-16"),
    pytest.param({"model": "seedance-2.0-fast", "duration": 20}, "duration", "4 to 15", id="dur-fast-20"),
    pytest.param({"model": "seedance-1.5-pro", "duration": 4}, "duration", "5 or 10", id="dur-1.5-4"),
    pytest.param({"model": "seedance-1.5-pro", "duration": 7}, "duration", "5 or 10", id="dur-1.5-7"),
    pytest.param({"model": "seedance-1.5-pro", "duration": 15}, "duration", "5 or 10", id="dur-1.5-15"),
    pytest.param({"duration": -5}, "duration", "4 to 15", id="dur-negative"),
    pytest.param({"webhook_url": "http://hooks.example.com/x"}, "webhook_url", "https", id="webhook-http-remote"),
    pytest.param({"webhook_url": "not a url"}, "webhook_url", "https", id="webhook-garbage"),
    pytest.param({"webhook_url": 5}, "webhook_url", "https", id="webhook-int"),
]


@pytest.mark.parametrize(("overrides", "field", "allowed"), INVALID)
def test_invalid_requests_name_field_and_allowed_values(overrides: dict[str, Any], field: str, allowed: str) -> None:
    request = build(**overrides)
    with pytest.raises(SeedanceValidationError) as info:
        request.validate()
    err = info.value
    assert err.field == field
    assert allowed in err.allowed
    assert field in str(err)
    assert allowed in str(err)


# Rejected while building: the loose shapes are normalised in __post_init__.
INVALID_AT_CONSTRUCTION = [
    pytest.param({"duration": True}, "duration", id="dur-bool"),
    pytest.param({"duration": 5.5}, "duration", id="dur-fraction"),
    pytest.param({"duration": "five"}, "duration", id="dur-word"),
    pytest.param({"duration": "++5"}, "duration", id="dur-double-plus"),
    pytest.param({"duration": "\u00b2"}, "duration", id="dur-superscript-digit"),
    pytest.param({"duration": [5]}, "duration", id="dur-list"),
    pytest.param({"media_urls": {"url": IMG}}, "media_urls", id="media-dict"),
    pytest.param({"media_urls": 42}, "media_urls", id="media-int"),
    pytest.param({"media_urls": "[not json"}, "media_urls", id="media-bad-json"),
    pytest.param({"metadata": [1, 2]}, "metadata", id="metadata-list"),
    pytest.param({"metadata": "not json"}, "metadata", id="metadata-bad-json"),
    pytest.param({"metadata": {1: "a"}}, "metadata", id="metadata-int-key"),
    pytest.param({"metadata": {"a": float("nan")}}, "metadata", id="metadata-nan"),
    pytest.param({"metadata": {"a": object()}}, "metadata", id="metadata-object"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_AT_CONSTRUCTION)
def test_loose_shapes_that_cannot_be_normalised_are_rejected(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        build(**overrides)
    assert info.value.field == field


def test_unknown_model_lists_builtin_models() -> None:
    with pytest.raises(SeedanceUnknownModelError) as info:
        build(model="seedance-3.0").validate()
    assert info.value.available == list(BUILTIN_MODELS)
    assert info.value.value == "seedance-3.0"


def test_api_field_is_named_in_camel_case_too() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        build(aspect_ratio="2:1").validate()
    assert info.value.api_field == "aspectRatio"
    assert "aspect_ratio (aspectRatio)" in str(info.value)


def test_spec_rules_apply_to_catalogue_models() -> None:
    spec = ModelSpec("seedance-3.0", durations=(6, 12), aspect_ratios=("21:9",), resolutions=("2k",))
    build(model="seedance-3.0", duration=12, aspect_ratio="21:9", resolution="2k").validate(spec)
    with pytest.raises(SeedanceValidationError, match="6 or 12"):
        build(model="seedance-3.0", duration=5).validate(spec)
    with pytest.raises(SeedanceValidationError, match="21:9"):
        build(model="seedance-3.0", aspect_ratio="16:9").validate(spec)
    # A spec that says nothing about a field leaves it unchecked.
    build(model="seedance-3.0", resolution="whatever").validate(ModelSpec("seedance-3.0"))
    # The spec must be the model's own.
    with pytest.raises(SeedanceUnknownModelError):
        build(model="seedance-3.0").validate(ModelSpec("other"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [("localhost", True), ("LOCALHOST", True), ("127.0.0.1", True), ("127.8.8.8", True), ("::1", True),
     ("[::1]", True), ("example.com", False), ("10.0.0.1", False), ("", False), (None, False)],
)
def test_is_loopback_host(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_exact_api_body_is_camel_case_and_omits_unset_fields() -> None:
    request = GenerationRequest(
        prompt="p", media_urls=[IMG], model="seedance-2.0-fast", aspect_ratio="9:16", duration=6,
        resolution="1080p", webhook_url="https://h.example.com/x", metadata={"k": "v"},
    )
    assert request.to_api_json() == {
        "model": "seedance-2.0-fast", "prompt": "p", "mediaUrls": [IMG], "aspectRatio": "9:16", "duration": 6,
        "resolution": "1080p", "webhookUrl": "https://h.example.com/x", "metadata": {"k": "v"},
    }
    assert GenerationRequest(prompt="p", media_urls=[IMG]).to_api_json() == {
        "model": "seedance-2.0", "prompt": "p", "mediaUrls": [IMG],
    }


@pytest.mark.parametrize("media", [None, [], ()])
def test_text_to_video_body_has_no_media_key(media: Any) -> None:
    request = GenerationRequest(prompt="p", media_urls=media)
    assert request.is_text_to_video
    assert "mediaUrls" not in request.to_api_json()
    assert request.estimate_credits() == 40  # the vendor's text-to-video example: 5 s 720p seedance-2.0


def test_image_to_video_estimate_matches_vendor_example() -> None:
    assert build(duration=5, resolution="720p").estimate_credits() == 64


def test_dict_round_trip() -> None:
    request = build(aspect_ratio="1:1", duration=8, metadata={"a": [1]})
    again = GenerationRequest.from_dict(request.to_dict())
    assert again == request
    assert again.to_api_json() == request.to_api_json()


def test_from_api_json_round_trip() -> None:
    request = build(aspect_ratio="1:1", duration=8, webhook_url="https://x.example/h")
    assert GenerationRequest.from_api_json(request.to_api_json()) == request


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param([], "body", id="not-object"),
        pytest.param({"prompt": "p"}, "model", id="no-model"),
        pytest.param({"model": "seedance-2.0"}, "prompt", id="no-prompt"),
        pytest.param({"model": "seedance-2.0", "prompt": 5}, "prompt", id="prompt-int"),
        pytest.param({"model": "seedance-2.0", "prompt": "p", "mediaUrls": IMG}, "media_urls", id="media-string"),
        pytest.param({"model": "seedance-2.0", "prompt": "p", "mediaUrls": []}, "media_urls", id="media-empty"),
        pytest.param({"model": "seedance-2.0", "prompt": "p", "duration": "5"}, "duration", id="dur-string"),
        pytest.param({"model": "seedance-2.0", "prompt": "p", "duration": True}, "duration", id="dur-bool"),
        pytest.param({"model": "seedance-2.0", "prompt": "p", "metadata": "{}"}, "metadata", id="meta-string"),
        pytest.param({"model": 2, "prompt": "p"}, "model", id="model-int"),
        pytest.param({"model": "seedance-2.0", "prompt": "p", "resolution": 720}, "resolution", id="res-int"),
    ],
)
def test_from_api_json_is_strict_about_wire_types(body: Any, field: str) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_api_json(body)
    assert info.value.field == field
