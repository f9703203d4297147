"""Bad input, by property: whatever arrives, our code answers with its own type or its own error.

Complements tests/unit/test_properties.py (request model, JobResult.from_api_json, catalogue parsing,
the error classifier) with the remaining parsers: a whole HTTP answer, trigger event payloads, stored
records (job state, spend), connection settings and price tables, and the price chain. The contract
test at the end drives the real operator against the emulator: any input either is refused with our
validation error before any POST, or is sent and accepted by the server.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.budget import SeedanceBudgetExceededError, SpendRecord
from airflow_provider_seedance.catalogue import BUILTIN_MODELS, ModelSpec, estimate
from airflow_provider_seedance.errors import (
    SeedanceAPIError,
    SeedanceConnectionError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks._connection import settings_from_connection
from airflow_provider_seedance.hooks._http import interpret_response
from airflow_provider_seedance.models import JobResult
from airflow_provider_seedance.operators._job_state import JobRecord
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.triggers.seedance import JobEvent

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

def _outcome(call: Any) -> tuple[Any, Exception | None]:
    """What ``call()`` returned, or what it raised (assertions then run outside any ``except``)."""
    try:
        return call(), None
    except Exception as exc:
        return None, exc


settings.register_profile("seedance-bad-input", max_examples=150, deadline=None)
settings.load_profile("seedance-bad-input")

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(
    max_size=12)
json_values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=5), max_leaves=12
)
# Python callers can pass more than JSON: NaN, infinities, tuples, bytes.
loose = json_values | st.floats() | st.tuples(scalars) | st.binary(max_size=6)
KEY = "sd2_test_property_key_1234"


@given(
    status=st.integers(200, 599),
    text=st.text(max_size=200) | json_values.map(json.dumps),
    location=st.none() | st.text(max_size=40),
    retry_after=st.none() | st.text(max_size=12),
)
def test_any_http_answer_is_json_or_our_api_error(status: int, text: str, location: str | None,
                                                 retry_after: str | None) -> None:
    headers = {k: v for k, v in (("Location", location), ("Retry-After", retry_after)) if v is not None}
    conn = SimpleNamespace(password=KEY, host="http://127.0.0.1:1", port=None, extra_dejson={})
    conn_settings = settings_from_connection(conn, "seedance_default")
    raw = (text + KEY).encode("utf-8", errors="surrogatepass")
    body, exc = _outcome(lambda: interpret_response(status, headers, raw, conn_settings, request_id="req_1"))
    if exc is not None:
        assert isinstance(exc, SeedanceAPIError), repr(exc)
        assert KEY not in str(exc)
        return
    assert 200 <= status < 300
    assert body is not None


@given(payload=json_values | st.fixed_dictionaries(
    {"event": st.sampled_from(["completed", "timeout", "error"])},
    optional={"request_id": json_values, "result": json_values | st.fixed_dictionaries(
        {}, optional={"request_id": json_values, "status": json_values, "output_url": json_values,
                      "credits_charged": json_values})},
))
def test_any_trigger_payload_is_our_event_or_a_value_error(payload: Any) -> None:
    event, exc = _outcome(lambda: JobEvent.from_payload(payload))
    if exc is not None:
        assert isinstance(exc, ValueError), repr(exc)
        return
    assert event.event in ("completed", "timeout", "error")
    assert isinstance(event.message, str)
    if event.result is not None:
        assert isinstance(event.result.request_id, str)
        assert event.result.request_id
        assert event.result.output_url is None or isinstance(event.result.output_url, str)
        assert JobResult.from_dict(event.result.to_dict()) == event.result


@given(data=loose | st.dictionaries(st.sampled_from(
    ["request_id", "started_at", "deadline", "credits_charged", "delivered", "earlier_credits"]), loose))
def test_stored_job_records_parse_or_are_ignored(data: Any) -> None:
    record = JobRecord.from_json(data)
    if record is not None:
        assert JobRecord.from_json(record.to_json()) == record
        assert isinstance(record.credits_total, int)


@given(data=loose | st.dictionaries(st.sampled_from(
    ["task_id", "map_index", "state", "estimated", "charged", "earlier_credits", "request_id", "token"]), loose))
def test_spend_records_parse_or_are_ignored(data: Any) -> None:
    record = SpendRecord.from_json(data)
    if record is not None:
        assert SpendRecord.from_json(record.to_json()) == record
        assert isinstance(record.counted, int)
        assert isinstance(record.spent, int)


@given(
    host=st.none() | st.text(max_size=30) | st.sampled_from(["127.0.0.1:8787", "https://api.example.com/x", "[::1]"]),
    port=st.none() | st.integers(-5, 70000),
    password=st.none() | st.text(max_size=10),
    extra=st.dictionaries(st.sampled_from(["timeout", "proxies", "verify_ssl", "price_table", "other"]), loose,
                          max_size=4),
)
def test_any_connection_gives_settings_or_our_connection_error(host: Any, port: Any, password: Any,
                                                               extra: dict[str, Any]) -> None:
    conn = SimpleNamespace(host=host, port=port, password=password, extra_dejson=extra)
    found, exc = _outcome(lambda: settings_from_connection(conn, "prop"))
    if exc is not None:
        assert isinstance(exc, SeedanceConnectionError), repr(exc)
        assert "prop" in str(exc)
        return
    assert found.base_url.startswith(("http://", "https://"))
    assert found.timeout > 0
    for model, pricing in found.price_table.items():
        assert isinstance(model, str)
        assert isinstance(pricing, dict)


pricing_shapes = st.fixed_dictionaries({}, optional={
    "perSecond": st.dictionaries(st.sampled_from(["480p", "720p", "1080p", "4k"]), loose, max_size=3) | loose,
    "base": loose, "referenceMediaSurcharge": loose,
}) | loose


@given(override=st.none() | pricing_shapes, spec_pricing=st.none() | pricing_shapes,
       model=st.sampled_from([*BUILTIN_MODELS, "vendor-new"]), duration=st.none() | st.integers(0, 40),
       resolution=st.none() | st.sampled_from(["480p", "720p", "1080p", "4k"]), with_media=st.booleans())
def test_the_price_chain_gives_a_whole_number_or_nothing(override: Any, spec_pricing: Any, model: str,
                                                         duration: int | None, resolution: str | None,
                                                         with_media: bool) -> None:
    spec = ModelSpec(model_id=model, pricing=spec_pricing if isinstance(spec_pricing, dict) else None)
    found = estimate(model, duration=duration, resolution=resolution, with_media=with_media, spec=spec,
                     override=override if isinstance(override, dict) else None)
    if found.credits is None:
        assert found.source is None
        assert model not in BUILTIN_MODELS or resolution == "4k"
    else:
        assert isinstance(found.credits, int)
        assert not isinstance(found.credits, bool)
        assert 0 <= found.credits < math.inf
        assert found.source is not None


# -- the contract: refused before any POST, or accepted by the server ------------------------------------------

urls = st.builds(
    lambda host, name, ext: f"https://{host}/{name}{ext}",
    st.sampled_from(["example.com", "cdn.example.org"]),
    st.text(alphabet="abcxyz019_-", min_size=1, max_size=6),
    st.sampled_from([".jpg", ".png", ".mp4", ".mp3", ".exe", ".txt", ""]),
)
field_values = {
    "prompt": st.text(max_size=20) | loose,
    "media_urls": st.none() | st.lists(urls | loose, max_size=7) | urls | st.just("[]") | loose,
    "model": st.sampled_from([*BUILTIN_MODELS, "seedance-9", ""]) | loose,
    "aspect_ratio": st.none() | st.sampled_from(["16:9", "9:16", "1:1", "4:3", " 16:9"]) | loose,
    "duration": st.none() | st.integers(0, 20) | st.sampled_from(["5", "10", "x"]) | loose,
    "resolution": st.none() | st.sampled_from(["480p", "720p", "1080p", "4k"]) | loose,
    "webhook_url": st.none() | st.sampled_from(["https://hooks.example.com/done", "ftp://x", "http://example.com/"]),
    "metadata": st.none() | st.dictionaries(st.text(max_size=5), scalars, max_size=3) | loose,
    "max_credits": st.none() | st.integers(0, 500) | st.sampled_from(["100", "-1", "lots"]),
}


class _TI:
    dag_id, run_id, task_id, map_index, try_number = "prop_dag", "manual__1", "generate", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


@pytest.mark.slow
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fields=st.fixed_dictionaries({}, optional=field_values))
def test_any_operator_input_is_refused_before_any_post_or_accepted_by_the_server(
    emu: EmulatorHandle, fields: dict[str, Any]
) -> None:
    emu.admin.reset()
    fields.setdefault("prompt", "a fox")
    # A literal that breaks a rule is refused when the DAG is parsed (the operator is built), else at execute.
    op, exc = _outcome(lambda: SeedanceGenerateOperator(task_id="generate", wait_for_completion=False,
                                                        resumable=False, **fields))
    if exc is None:
        _, exc = _outcome(lambda: op.execute({"ti": _TI()}))
    log = emu.admin.requests()
    if isinstance(exc, SeedanceValidationError):
        assert exc.field
        assert exc.field in str(exc)
        assert [r for r in log if r["endpoint"] == "submit"] == []
        # Only a model that is not built in is looked up (in the free catalogue) before it is refused.
        assert all(r["endpoint"] == "models" for r in log)
        return
    if exc is not None:  # the budget refusal is ours too; anything else is a bug
        assert isinstance(exc, SeedanceBudgetExceededError), repr(exc)
        assert not [r for r in log if r["endpoint"] == "submit"]
        return
    [post] = [r for r in emu.admin.requests() if r["endpoint"] == "submit"]
    assert post["status"] == 200, post  # what we let through, the server accepts


# -- the hook's side of the contract: every body it can send matches the published OpenAPI schema ------------

@st.composite
def valid_requests(draw: st.DrawFn) -> Any:
    from airflow_provider_seedance.models import GenerationRequest

    model = draw(st.sampled_from(list(BUILTIN_MODELS)))
    spec = BUILTIN_MODELS[model]
    return GenerationRequest(
        prompt=draw(st.text(min_size=1, max_size=30).filter(str.strip)),
        media_urls=draw(st.none() | st.lists(urls.filter(lambda u: not u.endswith((".exe", ".txt"))), max_size=5)),
        model=model,
        aspect_ratio=draw(st.none() | st.sampled_from(spec.aspect_ratios or ())),
        duration=draw(st.none() | st.sampled_from(spec.durations or ())),
        resolution=draw(st.none() | st.sampled_from(spec.resolutions or ())),
        webhook_url=draw(st.none() | st.just("https://hooks.example.com/done")),
        metadata=draw(st.none() | st.dictionaries(st.text(max_size=5), scalars, max_size=3)),
    )


@given(request=valid_requests())
def test_every_valid_request_body_matches_the_openapi_request_schema(request: Any) -> None:
    import jsonschema

    from airflow_provider_seedance.emulator.openapi import build_openapi

    schema = build_openapi()["components"]["schemas"]["GenerationRequest"]
    jsonschema.validate(request.validate().to_api_json(), schema)
