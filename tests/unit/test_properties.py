"""Property tests: whatever comes in, the pure modules answer with their own types or their own errors."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, ModelSpec, estimate_credits, parse_catalogue
from airflow_provider_seedance.error_answers import classify_http_error, error_message_from_body, parse_retry_after
from airflow_provider_seedance.errors import (
    SeedanceAPIError,
    SeedanceResponseError,
    SeedanceValidationError,
)
from airflow_provider_seedance.models import (
    IMAGE_EXTENSIONS,
    GenerationRequest,
    JobResult,
    JobStatus,
)

settings.register_profile("seedance", max_examples=150, deadline=None)
settings.load_profile("seedance")

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Anything Python code may hand the model: JSON, plus tuples, NaN, bytes, odd digits.
loose = json_values | st.floats() | st.binary(max_size=8) | st.tuples(json_scalars) | st.sampled_from(
    ["\u00b2", "++5", "+5", "5", "[", "[1, 2]", '{"a": 1}', "https://e.com/a.jpg", "", "  "]
)

valid_urls = st.builds(
    lambda host, name, ext: f"https://{host}/{name}{ext}",
    st.sampled_from(["example.com", "cdn.example.org", "127.0.0.1"]),
    st.text(alphabet="abcxyz019_-", min_size=1, max_size=8),
    st.sampled_from([*sorted(IMAGE_EXTENSIONS), ".mp4", ".mov", ".m4v", ".mp3", ".wav", ""]),
)


@st.composite
def valid_requests(draw: st.DrawFn) -> GenerationRequest:
    model = draw(st.sampled_from(list(BUILTIN_MODELS)))
    spec = BUILTIN_MODELS[model]
    assert spec.durations
    assert spec.aspect_ratios
    assert spec.resolutions
    return GenerationRequest(
        prompt=draw(st.text(min_size=1).filter(str.strip)),
        media_urls=draw(st.none() | st.lists(valid_urls, min_size=0, max_size=5)),
        model=model,
        aspect_ratio=draw(st.none() | st.sampled_from(spec.aspect_ratios)),
        duration=draw(st.none() | st.sampled_from(spec.durations)),
        resolution=draw(st.none() | st.sampled_from(spec.resolutions)),
        webhook_url=draw(st.none() | st.just("https://hooks.example.com/done")),
        metadata=draw(st.none() | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)),
    )


@given(
    prompt=loose, media_urls=loose, model=loose | st.sampled_from(list(BUILTIN_MODELS)),
    aspect_ratio=loose, duration=loose | st.integers(0, 20), resolution=loose, webhook_url=loose, metadata=loose,
)
def test_any_input_validates_or_raises_validation_error(**fields: Any) -> None:
    try:
        GenerationRequest(**fields).validate()
    except SeedanceValidationError as exc:
        error = exc
    else:
        return
    assert error.field
    assert error.allowed
    assert error.field in str(error)


@given(body=json_values)
def test_any_api_body_parses_or_raises_validation_error(body: Any) -> None:
    try:
        GenerationRequest.from_api_json(body).validate()
    except SeedanceValidationError:
        pass


@given(request=valid_requests())
def test_valid_requests_validate_and_round_trip(request: GenerationRequest) -> None:
    assert request.validate() is request
    body = request.to_api_json()
    assert ("mediaUrls" in body) is (not request.is_text_to_video)
    assert None not in body.values()
    assert json.loads(json.dumps(body)) == body
    assert GenerationRequest.from_api_json(body).to_api_json() == body
    assert GenerationRequest.from_dict(request.to_dict()) == request
    credits = request.estimate_credits()
    assert isinstance(credits, int)
    assert credits > 0


@given(body=json_values, request_id=st.none() | st.text(max_size=5))
def test_any_result_body_parses_or_raises_response_error(body: Any, request_id: str | None) -> None:
    try:
        result = JobResult.from_api_json(body, request_id=request_id)
    except SeedanceResponseError:
        return
    assert isinstance(result.request_id, str)
    assert result.request_id
    if result.succeeded:
        assert isinstance(body, dict)
        assert str(body.get("status")).strip().lower() == "succeeded"
    assert JobResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@given(raw=loose)
def test_status_parse_never_raises_and_unknown_is_not_terminal(raw: Any) -> None:
    status = JobStatus.parse(raw)
    if status is JobStatus.UNKNOWN:
        assert not status.is_terminal


@given(body=json_values)
def test_catalogue_parsing_never_crashes(body: Any) -> None:
    for spec in parse_catalogue(body):
        assert isinstance(spec, ModelSpec)
        assert spec.model_id.strip() == spec.model_id
        assert spec.model_id
        again = ModelSpec.from_catalogue_item(spec.to_catalogue_item())
        assert again is not None
        assert again.model_id == spec.model_id


@given(
    item=st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8).filter(str.strip)}, optional={
        "durations": json_values, "duration": json_values, "aspectRatios": json_values, "resolutions": json_values,
        "pricing": json_values, "price": json_values, "other": json_values,
    }),
    duration=st.none() | st.integers(-5, 30),
    resolution=st.none() | st.text(max_size=6) | st.sampled_from(["480p", "720p", "1080p"]),
    with_media=st.booleans(),
)
def test_estimate_from_any_catalogue_entry_is_int_or_none(
    item: dict[str, Any], duration: int | None, resolution: str | None, with_media: bool
) -> None:
    spec = ModelSpec.from_catalogue_item(item)
    assert spec is not None
    price = estimate_credits(spec.model_id, duration=duration, resolution=resolution, with_media=with_media, spec=spec)
    assert price is None or (isinstance(price, int) and not isinstance(price, bool))


@given(value=st.none() | st.text(max_size=40))
def test_retry_after_is_none_or_non_negative(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (isinstance(seconds, float) and seconds >= 0 and not math.isnan(seconds))


@given(status=st.integers(400, 599), body=json_values, retry_after=st.none() | st.text(max_size=10))
def test_classifier_always_returns_an_api_error(status: int, body: Any, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    err = classify_http_error(status, body, headers)
    assert isinstance(err, SeedanceAPIError)
    assert err.status_code == status
    assert err.message
    message, code = error_message_from_body(body)
    assert message is None or isinstance(message, str)
    assert code is None or isinstance(code, str)
