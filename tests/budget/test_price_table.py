"""Estimates before paying: connection ``price_table`` > live catalogue > bundled table, and ``max_credits``.

Real hook and operator against the emulator; counts of what was requested come from the emulator's log.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from budget_helpers import RunXComs, run_context

from airflow_provider_seedance import CONN_FIELDS
from airflow_provider_seedance.budget import SeedanceBudgetExceededError
from airflow_provider_seedance.catalogue import SOURCE_BUNDLED, SOURCE_CATALOGUE, SOURCE_OVERRIDE
from airflow_provider_seedance.errors import SeedanceConnectionError
from airflow_provider_seedance.hooks._form import form_field_specs
from airflow_provider_seedance.hooks.seedance import RetryPolicy, SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

T2V = GenerationRequest(prompt="a lighthouse", duration=5, resolution="720p")
FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)


def _connection(monkeypatch: pytest.MonkeyPatch, emu: EmulatorHandle, price_table: Any, conn_id: str = "priced") -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "seedance", "host": emu.base_url, "password": emu.api_key, "extra": {"price_table": price_table},
    }))
    return conn_id


def _catalogue_reads(emu: EmulatorHandle) -> int:
    return len(emu.admin.requests(endpoint="models"))


def test_precedence_override_then_catalogue_then_bundled(emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.admin.add_model(id="seedance-2.0", durations=list(range(4, 16)), aspectRatios=["16:9"],
                        resolutions=["480p", "720p", "1080p"], pricing={"perSecond": {"720p": 10, "1080p": 20}})
    conn = _connection(monkeypatch, emu, {"seedance-2.0": {"perSecond": {"720p": 12}}})

    with SeedanceHook(conn, retry_policy=FAST) as hook:
        first = hook.estimate(T2V)
        assert (first.credits, first.source) == (60, SOURCE_OVERRIDE)
        assert _catalogue_reads(emu) == 0  # the override priced it: nothing was asked
        # The override has no 1080p price: the live catalogue's is next.
        second = hook.estimate(GenerationRequest(prompt="x", duration=5, resolution="1080p"))
        assert (second.credits, second.source) == (100, SOURCE_CATALOGUE)
    with SeedanceHook(retry_policy=FAST) as hook:  # no override on seedance_default
        assert (hook.estimate(T2V).credits, hook.estimate(T2V).source) == (50, SOURCE_CATALOGUE)
    emu.admin.add_fault(kind="http", endpoint="models", status=503, times=-1)
    with SeedanceHook(retry_policy=FAST) as hook:  # catalogue unreachable
        assert (hook.estimate(T2V).credits, hook.estimate(T2V).source) == (40, SOURCE_BUNDLED)


def test_the_override_can_price_a_model_nobody_else_prices(emu: EmulatorHandle,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    emu.admin.add_model(id="vendor-next", durations=[5, 10], resolutions=["720p"])  # listed, no pricing
    conn = _connection(monkeypatch, emu, json.dumps({"vendor-next": {"perSecond": {"720p": 3}, "base": 1}}))
    request = GenerationRequest(prompt="x", model="vendor-next", duration=10, resolution="720p")
    with SeedanceHook(conn, retry_policy=FAST) as hook:
        hook.validate_request(request)
        assert hook.estimate(request).credits == 31
    with SeedanceHook(retry_policy=FAST) as hook:
        assert hook.estimate(request).credits is None


@pytest.mark.parametrize(
    ("price_table", "message"),
    [
        ("{not json", "must be a JSON object"),
        ([1, 2], "must map model ids"),
        ({"seedance-2.0": {"perSecond": {"720p": "cheap"}}}, "'seedance-2.0'"),
        ({"seedance-2.0": {"perSecond": {}}}, "perSecond"),
        ({"seedance-2.0": {"perSecond": {"720p": 8}, "base": -1}}, '"base"'),
    ],
)
def test_a_bad_price_table_is_refused_naming_it(emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
                                                price_table: Any, message: str) -> None:
    conn = _connection(monkeypatch, emu, price_table)
    with SeedanceHook(conn) as hook, pytest.raises(SeedanceConnectionError) as info:
        hook.estimate(T2V)
    assert "price_table" in str(info.value)
    assert message in str(info.value)
    assert emu.admin.stats()["requests"] == 0


def test_max_credits_refuses_before_any_request(emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture, capfd: Any) -> None:
    caplog.set_level(logging.INFO)
    conn = _connection(monkeypatch, emu, {"seedance-2.0": {"perSecond": {"1080p": 30}, "referenceMediaSurcharge": 24}})
    op = SeedanceGenerateOperator(task_id="generate", prompt="x", media_urls=["https://example.com/a.jpg"],
                                  duration=10, resolution="1080p", max_credits="300", seedance_conn_id=conn)
    with pytest.raises(SeedanceBudgetExceededError) as info:
        op.execute(run_context(RunXComs(), {"generate": op}))
    assert "Estimated cost 324 credits exceeds max_credits=300" in str(info.value)
    assert "nothing was submitted" in str(info.value)
    assert emu.admin.stats()["requests"] == 0  # priced by the connection: not even the catalogue was read
    out = capfd.readouterr()
    assert "Estimated cost: 324 credits (connection price_table)" in caplog.text + out.out + out.err


def test_the_estimate_is_logged_before_the_submit(emu: EmulatorHandle, caplog: pytest.LogCaptureFixture,
                                                  capfd: Any) -> None:
    caplog.set_level(logging.INFO)
    op = SeedanceGenerateOperator(task_id="generate", prompt="x", wait_for_completion=False)
    xcoms = RunXComs()
    op.execute(run_context(xcoms, {"generate": op}))
    out = capfd.readouterr()
    text = caplog.text + out.out + out.err
    assert text.index("Estimated cost: 40 credits (model catalogue)") < text.index("submitted")
    assert xcoms.values[("generate", -1, "credits_estimated")] == 40
    assert xcoms.values[("generate", -1, "credits_charged")] == 40


def test_price_table_is_a_declared_connection_field() -> None:
    assert "price_table" in CONN_FIELDS
    assert "price_table" in {spec["name"] for spec in form_field_specs()}
