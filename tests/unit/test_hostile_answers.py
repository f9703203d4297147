"""Hostile answers read by the pure core: every one parses into bounded values or is a SeedanceResponseError.

One group per finding of the second hostile review (issue 23): huge or deep numbers (#1), unsafe request ids
(#6), negative charges (#8), output URLs that are not http(s) (#12), a missing request id (#13), huge vendor
messages (#2). The same answers through the hook, both paths: tests/hook/test_hook_hostile_answers.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.catalogue import ModelSpec, estimate, parse_catalogue
from airflow_provider_seedance.error_answers import classify_http_error, error_message_from_body
from airflow_provider_seedance.errors import (
    SeedanceAPIError,
    SeedanceJobFailedError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceValidationError,
)
from airflow_provider_seedance.models import (
    GenerationRequest,
    JobResult,
    JobStatus,
    check_request_id,
    is_valid_request_id,
)

HUGE = 10**400  # valid JSON; float() of it raises OverflowError


def deep_list(depth: int = 200_000) -> list[Any]:
    """``[[[...]]]`` nested ``depth`` deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class Exploding(dict):  # type: ignore[type-arg]
    """A body whose every read fails: stands for whatever unforeseen error a hostile body may provoke."""

    def get(self, *args: Any) -> Any:
        raise RuntimeError("boom")


# -- #1 numbers that crash a reader -------------------------------------------------------------------------


@pytest.mark.parametrize("credits", [HUGE, -HUGE, float("inf"), float("nan"), 1e300],
                         ids=["400-digits", "minus-400-digits", "inf", "nan", "1e300"])
def test_an_absurd_charge_is_a_response_error(credits: Any) -> None:
    with pytest.raises(SeedanceResponseError, match="creditsCharged"):
        JobResult.from_api_json({"requestId": "req_1", "status": "queued", "creditsCharged": credits})


def test_a_deep_list_anywhere_in_an_answer_never_escapes_as_recursion_error() -> None:
    deep = deep_list()
    result = JobResult.from_api_json({"requestId": "req_1", "status": "queued", "creditsCharged": deep,
                                      "duration": deep, "output": deep, "model": deep})
    assert (result.credits_charged, result.duration, result.output_url, result.model) == (None, None, None, None)
    failed = JobResult.from_api_json({"requestId": "req_1", "status": "failed", "error": deep})
    assert failed.error is not None
    assert len(failed.error) < 100
    message, _code = error_message_from_body({"error": {"code": deep, "message": deep}})
    assert message is not None
    assert len(message) < 300


@pytest.mark.parametrize("status", [400, 402, 500])
def test_an_error_answer_with_a_deep_or_huge_error_keeps_its_class(status: int) -> None:
    for error in (deep_list(), {"code": 10**5000}):  # str() of 10**5000 raises ValueError
        err = classify_http_error(status, {"success": False, "error": error})
        assert type(err) is type(classify_http_error(status, {}))
        assert len(err.message) < 1200


def test_any_failure_while_reading_an_answer_is_a_response_error() -> None:
    with pytest.raises(SeedanceResponseError, match="could not be read"):
        JobResult.from_api_json(Exploding(requestId="req_1"), request_id="req_1")
    with pytest.raises(SeedanceResponseError, match="could not be read"):
        parse_catalogue(Exploding(data=[]))
    with pytest.raises(SeedanceResponseError, match="could not be read"):
        ModelSpec.from_catalogue_item(Exploding(id="m"))
    assert isinstance(classify_http_error(500, Exploding(error="x")), SeedanceAPIError)


@pytest.mark.parametrize(
    "item",
    [
        {"id": "m", "durations": [HUGE, 5]},
        {"id": "m", "durations": HUGE},
        {"id": "m", "durations": {"min": 4, "max": HUGE}},
        {"id": "m", "durations": "4-" + "9" * 5000},
        {"id": "m", "durations": "9" * 5000},
        {"id": "m", "durations": [-5, 0, 5]},
    ],
    ids=["list", "number", "range", "text-range", "text", "non-positive"],
)
def test_catalogue_durations_are_bounded(item: dict[str, Any]) -> None:
    [spec] = parse_catalogue({"data": [item]})
    assert spec.durations in (None, (5,))


@pytest.mark.parametrize("rate", [HUGE, -1, float("inf"), 10**10], ids=["400-digits", "negative", "inf", "1e10"])
def test_catalogue_prices_out_of_range_are_not_prices(rate: Any) -> None:
    [spec] = parse_catalogue({"data": [{"id": "m", "pricing": {"perSecond": {"720p": rate}}}]})
    assert estimate("m", duration=5, resolution="720p", with_media=False, spec=spec).credits is None


def test_a_duration_text_of_thousands_of_digits_is_a_validation_error() -> None:
    with pytest.raises(SeedanceValidationError):
        GenerationRequest(prompt="p", duration="9" * 5000)


# -- #6 request ids -----------------------------------------------------------------------------------------


BAD_IDS = ["../../../../tmp/x/owned", "..", ".", "a/b", "a\\b", "", " req_1", "req_1\n", "-rm", "r" * 129,
           "req_1?x=1", "req 1", "réq_1", "%2e%2e"]


@pytest.mark.parametrize("rid", BAD_IDS)
def test_an_unsafe_request_id_from_the_vendor_is_a_response_error(rid: str) -> None:
    with pytest.raises(SeedanceResponseError):
        JobResult.from_api_json({"requestId": rid, "status": "queued", "creditsCharged": 40})
    assert not is_valid_request_id(rid)
    with pytest.raises(SeedanceValidationError, match="request_id"):
        check_request_id(rid)


@pytest.mark.parametrize("rid", ["req_1234567890", "req_" + "a" * 20, "r", "A1.b_c:d-e", "7" * 128,
                                 "airflow-connection-test-0123456789abcdef"])
def test_vendor_shaped_request_ids_are_valid(rid: str) -> None:
    assert is_valid_request_id(rid)
    assert check_request_id(rid, "request_id") == rid
    assert JobResult.from_api_json({"requestId": rid, "status": "queued"}).request_id == rid


@pytest.mark.parametrize("rid", [None, 5, ["req_1"], b"req_1"])
def test_a_request_id_that_is_no_string_is_invalid(rid: Any) -> None:
    assert not is_valid_request_id(rid)


# -- #8 negative charges ------------------------------------------------------------------------------------


@pytest.mark.parametrize("credits", [-1000, -1, -0.5])
def test_a_negative_charge_is_a_response_error(credits: Any) -> None:
    with pytest.raises(SeedanceResponseError, match="creditsCharged") as info:
        JobResult.from_api_json({"requestId": "req_1", "status": "queued", "creditsCharged": credits})
    assert info.value.request_id == "req_1"


@pytest.mark.parametrize(("credits", "kept"), [(0, 0), (64, 64), (64.0, 64), (10**9, 10**9), (1.5, None),
                                               ("64", None), (True, None), (None, None)])
def test_charges_in_range_are_kept(credits: Any, kept: int | None) -> None:
    result = JobResult.from_api_json({"requestId": "req_1", "status": "queued", "creditsCharged": credits})
    assert result.credits_charged == kept


# -- #12 output URLs ----------------------------------------------------------------------------------------


REFUSED_URLS = ["file:///etc/passwd", "javascript:alert(document.cookie)", "s3://bucket/video.mp4",
                "ftp://cdn.example.com/v.mp4", "https:///no-host.mp4", "https:\\\\evil.example\\v.mp4",
                "https://cdn.example.com/a b.mp4", "https://cdn.example.com/v.mp4\r\nX: y", "//cdn.example.com/v.mp4",
                "https://cdn.example.com:99999/v.mp4", "https://" + "a" * 20_000 + ".example/v.mp4",
                "data:video/mp4,AAAA"]


@pytest.mark.parametrize("url", REFUSED_URLS)
@pytest.mark.parametrize("shape", ["object", "string"])
def test_a_succeeded_answer_with_an_output_url_that_is_not_http_is_no_success(url: str, shape: str) -> None:
    output = {"type": "video", "url": url} if shape == "object" else url
    result = JobResult.from_api_json({"requestId": "req_7", "status": "succeeded", "output": output},
                                     request_id="req_7")
    assert result.status is JobStatus.SUCCEEDED
    assert result.output_url is None
    assert not result.succeeded
    assert result.error is not None
    assert result.error.startswith("the output URL was refused")
    assert url not in result.error
    assert len(result.error) < 200
    # What the operator and the sensor then raise names the request (and never loops: the status is final).
    failed = SeedanceJobFailedError(result.request_id, "succeeded", result.error)
    assert "req_7" in str(failed)
    assert "refused" in str(failed)
    # A stored result (trigger event, XCom) with such a URL does not pass for a success either.
    stored = dict(result.to_dict(), output_url=url)
    assert JobResult.from_dict(stored).output_url is None


def test_a_refused_url_keeps_the_vendor_error_and_an_unfinished_job_just_drops_it() -> None:
    result = JobResult.from_api_json({"requestId": "r", "status": "succeeded", "output": "file:///x", "error": "odd"})
    assert result.error is not None
    assert result.error.endswith("(vendor error: odd)")
    queued = JobResult.from_api_json({"requestId": "r", "status": "processing", "output": "file:///x"})
    assert (queued.output_url, queued.error) == (None, None)


@pytest.mark.parametrize("url", ["https://pub.example.r2.dev/req_1.mp4", "http://127.0.0.1:8080/files/v.mp4",
                                 "HTTPS://CDN.EXAMPLE.COM/v.mp4?X-Amz-Signature=abc&X-Amz-Expires=60"])
def test_http_output_urls_are_kept(url: str) -> None:
    result = JobResult.from_api_json({"requestId": "r", "status": "succeeded", "output": {"url": url}})
    assert result.succeeded
    assert result.output_url == url
    assert result.error is None


# -- #13 the request id is required -------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [None, "req_1"])
def test_an_answer_without_request_id_is_refused(asked: str | None) -> None:
    with pytest.raises(SeedanceResponseError, match="no requestId"):
        JobResult.from_api_json({"success": True, "status": "succeeded", "output": {"url": "https://x/v.mp4"}},
                                request_id=asked)


# -- #2 huge vendor messages --------------------------------------------------------------------------------


def _url_flood(size: int = 4 * 1024 * 1024) -> str:
    unit = "see https://user:pw@cdn.example.com/v.mp4?X-Amz-Signature=0123456789abcdef0123456789abcdef "
    return unit * (size // len(unit))


@pytest.mark.parametrize("body", [
    {"success": False, "error": {"code": "bad", "message": _url_flood()}},
    {"success": False, "error": _url_flood()},
    {"success": False, "message": _url_flood()},
    {"success": False, "error": {"detail": [_url_flood()]}},
], ids=["object", "string", "top-level", "nested"])
def test_a_4_mib_vendor_message_is_cut_before_it_is_redacted(body: dict[str, Any]) -> None:
    message, _code = error_message_from_body(body)
    assert message is not None
    assert len(message) <= 1200
    for status in (400, 429, 500):
        err = classify_http_error(status, body, request_id="req_1")
        assert len(str(err)) <= 1300
        assert "pw@" not in str(err)
        assert "0123456789abcdef0123" not in str(err)
    result = JobResult.from_api_json(dict(body, requestId="req_1", status="failed"))
    assert result.error is not None
    assert len(result.error) <= 1200
    failed = SeedanceJobFailedError("req_1", "failed", _url_flood())
    assert len(str(failed)) <= 1200


def test_a_huge_text_answer_is_cut_without_copying_it_whole() -> None:
    err = classify_http_error(502, " " * 10 + "x" * (4 * 1024 * 1024))
    assert isinstance(err, SeedanceServerError)
    assert err.message == "x" * 297 + "..."


def test_a_url_cut_in_two_is_dropped_not_shown_in_part() -> None:
    secret_url = "https://user:" + "p" * 2000 + "@cdn.example.com/v.mp4"
    message, _code = error_message_from_body({"error": "failed: " + secret_url})
    assert message == "failed: ..."


def test_echoed_strings_are_cut() -> None:
    big = "x" * (1024 * 1024)
    result = JobResult.from_api_json({"requestId": "r", "status": big, "model": big, "prompt": big,
                                      "aspectRatio": big, "output": {"type": big}})
    sizes = [len(v) for v in (result.raw_status, result.model, result.prompt, result.aspect_ratio, result.output_type)
             if v is not None]
    assert len(sizes) == 5
    assert max(sizes) <= 4096
    assert result.status is JobStatus.UNKNOWN

