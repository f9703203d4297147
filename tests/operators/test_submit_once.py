"""One submit: literal fields checked when the DAG is parsed, and a submit whose answer was never read is not
sent again by a later try (an intent record is written before the POST)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_seedance.errors import SeedanceHostNotFoundError, SeedanceValidationError
from airflow_provider_seedance.operators._job_state import STATE_KEY, JobRecord
from airflow_provider_seedance.operators.seedance import (
    SeedanceAmbiguousSubmitNoRetryError,
    SeedanceGenerateOperator,
)

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle


def _op(**kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("prompt", "a cat")
    return SeedanceGenerateOperator(task_id="generate", deferrable=False, poll_interval=0.05, **kwargs)


@pytest.mark.parametrize(("kwargs", "field", "allowed"), [
    ({"resolution": "720"}, "resolution", "480p, 720p"),
    ({"aspect_ratio": "4:3"}, "aspect_ratio", "16:9"),
    ({"duration": "7s"}, "duration", "whole number of seconds"),
    ({"media_urls": ["ftp://example.com/cat.jpg"]}, "media_urls", "https://"),
    ({"prompt": "  "}, "prompt", "non-empty"),
    ({"max_credits": "100 credits"}, "max_credits", "whole number of credits"),
], ids=lambda v: str(v))
def test_a_bad_literal_fails_when_the_dag_is_parsed(emu: EmulatorHandle, kwargs: dict[str, Any], field: str,
                                                    allowed: str) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        _op(**kwargs)
    assert info.value.field == field
    assert allowed in str(info.value)
    assert emu.admin.stats()["requests"] == 0  # no network at parse time


@pytest.mark.parametrize("kwargs", [
    {"resolution": "{{ params.resolution }}"},
    {"duration": "{% if true %}7s{% endif %}"},
    {"model": "{{ params.model }}", "resolution": "4k"},  # the model's ranges are unknown until it renders
    {"model": "seedance-9", "resolution": "4k"},  # not built in: its ranges are in the catalogue
    {"media_urls": ["{{ params.url }}"]},
])
def test_templated_fields_and_catalogue_rules_wait_for_the_run(kwargs: dict[str, Any]) -> None:
    _op(**kwargs)


def test_an_intent_left_by_an_earlier_try_is_not_sent_again(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    request = _op().build_request(context)
    intent = JobRecord(request_id=None, started_at=time.time() - 60, request_digest=request.digest(), sending=True)
    context["task_state_store"].set(STATE_KEY, intent.to_json())
    with pytest.raises(SeedanceAmbiguousSubmitNoRetryError, match="retry_ambiguous_submit=True"):
        _op().execute(context)
    assert emu.admin.requests(endpoint="submit") == []


def test_retry_ambiguous_submit_sends_it_again(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    intent = JobRecord(request_id=None, started_at=time.time() - 60, sending=True)
    context["task_state_store"].set(STATE_KEY, intent.to_json())
    url = _op(retry_ambiguous_submit=True).execute(context)
    assert url
    assert len(emu.admin.requests(endpoint="submit")) == 1


def test_an_unreadable_answer_leaves_the_intent_and_a_retry_refuses(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    emu.admin.add_fault(endpoint="submit", kind="malformed", times=1)  # job created, answer unreadable
    with pytest.raises(SeedanceAmbiguousSubmitNoRetryError):
        _op().execute(context)
    stored = JobRecord.from_json(context["task_state_store"].data[STATE_KEY])
    assert stored is not None
    assert stored.is_ambiguous
    with pytest.raises(SeedanceAmbiguousSubmitNoRetryError, match="never read its answer"):
        _op().execute(context)
    assert len(emu.admin.requests(endpoint="submit")) == 1


def test_a_refusal_that_created_nothing_withdraws_the_intent(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.add_fault(endpoint="submit", kind="http", status=402, times=1)
    with pytest.raises(Exception, match="402"):
        _op().execute(context)
    stored = JobRecord.from_json(context["task_state_store"].data[STATE_KEY])
    assert stored is not None
    assert not stored.is_ambiguous
    assert _op().execute(context)  # the retry submits


def test_a_host_that_does_not_resolve_created_nothing(
    emu: EmulatorHandle, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The POST never left the machine (the conftest answers every non-loopback name as unresolvable): a fixed
    # host field must let the next try submit, not be refused as an ambiguous submit.
    conn = {"conn_type": "seedance", "host": "seedance.invalid", "password": "sd2_dns"}
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DNS", json.dumps(conn))
    with pytest.raises(SeedanceHostNotFoundError):
        _op(seedance_conn_id="seedance_dns").execute(context)
    stored = JobRecord.from_json(context["task_state_store"].data[STATE_KEY])
    assert stored is not None
    assert not stored.is_ambiguous
    assert _op().execute(context)  # the next try (host fixed) submits
    assert len(emu.admin.requests(endpoint="submit")) == 1
