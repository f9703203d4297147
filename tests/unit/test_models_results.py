"""JobStatus and JobResult: the documented shapes and the odd ones the docs did not show."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.errors import SeedanceResponseError
from airflow_provider_seedance.models import JobResult, JobStatus


@pytest.mark.parametrize(
    ("raw", "expected", "terminal"),
    [
        ("queued", JobStatus.QUEUED, False),
        ("processing", JobStatus.PROCESSING, False),
        ("succeeded", JobStatus.SUCCEEDED, True),
        ("failed", JobStatus.FAILED, True),
        ("cancelled", JobStatus.CANCELLED, True),
        ("canceled", JobStatus.CANCELLED, True),
        (" SUCCEEDED ", JobStatus.SUCCEEDED, True),
        ("rendering", JobStatus.UNKNOWN, False),
        ("success", JobStatus.UNKNOWN, False),
        ("unknown", JobStatus.UNKNOWN, False),
        ("", JobStatus.UNKNOWN, False),
        (None, JobStatus.UNKNOWN, False),
        (3, JobStatus.UNKNOWN, False),
        (["succeeded"], JobStatus.UNKNOWN, False),
    ],
)
def test_status_parse(raw: Any, expected: JobStatus, terminal: bool) -> None:
    status = JobStatus.parse(raw)
    assert status is expected
    assert status.is_terminal is terminal


def test_documented_status_response() -> None:
    body = {
        "success": True, "requestId": "req_1", "status": "succeeded", "model": "seedance-2.0", "prompt": "river",
        "duration": 5, "aspectRatio": "16:9",
        "output": {"type": "video", "url": "https://pub.example.r2.dev/req_1.mp4"}, "error": None,
    }
    result = JobResult.from_api_json(body)
    assert result == JobResult(
        request_id="req_1", status=JobStatus.SUCCEEDED, raw_status="succeeded",
        output_url="https://pub.example.r2.dev/req_1.mp4", output_type="video", model="seedance-2.0",
        prompt="river", duration=5, aspect_ratio="16:9",
    )
    assert result.succeeded


def test_documented_submit_response() -> None:
    result = JobResult.from_api_json({"success": True, "requestId": "req_1", "status": "queued", "creditsCharged": 64})
    assert (result.request_id, result.status, result.credits_charged) == ("req_1", JobStatus.QUEUED, 64)
    assert not result.succeeded


@pytest.mark.parametrize(
    ("body", "check"),
    [
        pytest.param({"requestId": "r", "status": "succeeded", "output": None},
                     lambda r: not r.succeeded and r.output_url is None, id="succeeded-without-output"),
        pytest.param({"requestId": "r", "status": "succeeded", "output": {"url": ""}},
                     lambda r: not r.succeeded, id="succeeded-empty-url"),
        pytest.param({"requestId": "r", "status": "succeeded", "output": "https://x/v.mp4"},
                     lambda r: r.succeeded and r.output_url == "https://x/v.mp4", id="output-as-string"),
        pytest.param({"requestId": "r", "status": "succeeded", "output": {"url": 5, "type": 7}},
                     lambda r: r.output_url is None and r.output_type is None, id="output-wrong-types"),
        pytest.param({"requestId": "r", "status": "succeeded", "output": ["https://x"]},
                     lambda r: r.output_url is None, id="output-list"),
        pytest.param({"requestId": "r", "status": "failed", "error": "content policy"},
                     lambda r: r.error == "content policy", id="error-string"),
        pytest.param({"requestId": "r", "status": "failed", "error": {"code": "gen_failed", "message": "boom"}},
                     lambda r: r.error == "gen_failed: boom", id="error-object"),
        pytest.param({"requestId": "r", "status": "failed", "error": {"message": "boom"}},
                     lambda r: r.error == "boom", id="error-object-no-code"),
        pytest.param({"requestId": "r", "status": "failed", "error": {"code": "x"}},
                     lambda r: r.error is not None and "x" in r.error, id="error-object-code-only"),
        pytest.param({"requestId": "r", "status": "failed", "error": {"detail": "d"}},
                     lambda r: r.error == "d", id="error-detail"),
        pytest.param({"requestId": "r", "status": "failed", "error": ["a", 1]},
                     lambda r: r.error == '["a", 1]', id="error-list"),
        pytest.param({"requestId": "r", "status": "failed", "message": "top-level"},
                     lambda r: r.error == "top-level", id="error-top-level-message"),
        pytest.param({"requestId": "r", "status": "failed", "error": ""},
                     lambda r: r.error is None, id="error-empty"),
        pytest.param({"requestId": "r", "status": "queued", "creditsCharged": 64.0},
                     lambda r: r.credits_charged == 64, id="credits-integral-float"),
        pytest.param({"requestId": "r", "status": "queued", "creditsCharged": "64"},
                     lambda r: r.credits_charged is None, id="credits-string"),
        pytest.param({"requestId": "r", "status": "queued", "creditsCharged": True},
                     lambda r: r.credits_charged is None, id="credits-bool"),
        pytest.param({"requestId": "r", "status": "queued", "creditsCharged": 1.5},
                     lambda r: r.credits_charged is None, id="credits-fraction"),
        pytest.param({"requestId": "r", "status": "queued", "duration": "5", "model": 3, "aspectRatio": None},
                     lambda r: (r.duration, r.model, r.aspect_ratio) == (None, None, None), id="echo-wrong-types"),
        pytest.param({"requestId": "r", "status": "mystery", "extra": {"nested": [1]}},
                     lambda r: r.status is JobStatus.UNKNOWN and r.raw_status == "mystery", id="unknown-status-kept"),
        pytest.param({"requestId": "r"},
                     lambda r: r.status is JobStatus.UNKNOWN and r.raw_status is None, id="no-status"),
    ],
)
def test_odd_shapes_parse_without_crashing(body: dict[str, Any], check: Any) -> None:
    result = JobResult.from_api_json(body)
    assert check(result)
    assert JobResult.from_dict(result.to_dict()) == result


def test_an_answer_without_request_id_is_refused_even_when_the_id_asked_about_is_known() -> None:
    # Every answer of the API reference carries requestId: one without it is not taken as the job asked about.
    with pytest.raises(SeedanceResponseError, match="no requestId") as info:
        JobResult.from_api_json({"status": "succeeded", "output": {"url": "https://x/v.mp4"}}, request_id="req_9")
    assert info.value.request_id == "req_9"


@pytest.mark.parametrize(
    "body",
    [None, [], "text", 5, {}, {"requestId": ""}, {"requestId": 5}, {"status": "queued"}],
)
def test_bodies_that_are_not_a_result_raise_response_error(body: Any) -> None:
    with pytest.raises(SeedanceResponseError):
        JobResult.from_api_json(body)


def test_to_dict_is_json_simple() -> None:
    import json

    result = JobResult.from_api_json(
        {"requestId": "r", "status": "succeeded", "output": {"url": "https://x/v.mp4", "type": "video"},
         "creditsCharged": 64}
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == "succeeded"
    assert JobResult.from_dict(data) == result


def test_from_dict_with_unknown_status_stays_unknown() -> None:
    result = JobResult.from_dict({"request_id": "r", "status": "weird"})
    assert result.status is JobStatus.UNKNOWN
    assert not result.succeeded
