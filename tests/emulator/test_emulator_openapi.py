"""The OpenAPI document: valid OpenAPI 3.0, faithful to the reference, and in agreement with the server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.catalogue import ASPECT_RATIOS, BUILTIN_MODELS, RESOLUTIONS
from airflow_provider_seedance.emulator.openapi import _WS, MEDIA_URL_RE, WEBHOOK_URL_RE, build_openapi
from airflow_provider_seedance.emulator.testing import EmulatorHandle, run_emulator
from airflow_provider_seedance.models import MAX_MEDIA_URLS, GenerationRequest

GENERATIONS = "/api/open/v1/video/generations"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi()


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_document_validates_against_the_openapi_30_meta_schema(document: dict[str, Any]) -> None:
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    jsonschema.Draft4Validator(definitions.OPENAPI_30).validate(document)


def test_every_ref_resolves_and_every_pattern_compiles(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for node in _walk(document):
        if "$ref" in node:
            assert node["$ref"].removeprefix("#/components/schemas/") in schemas, node["$ref"]
        if isinstance(node.get("pattern"), str):
            re.compile(node["pattern"])


def test_examples_match_their_schema(document: dict[str, Any]) -> None:
    schema = {**document["components"]["schemas"]["GenerationRequest"], "components": document["components"]}
    content = document["paths"][GENERATIONS]["post"]["requestBody"]["content"]["application/json"]
    for example in content["examples"].values():
        jsonschema.validate(example["value"], schema)
        GenerationRequest.from_api_json(example["value"]).validate()


def test_fields_enums_and_ranges_match_the_reference(document: dict[str, Any]) -> None:
    request = document["components"]["schemas"]["GenerationRequest"]
    props = request["properties"]
    assert list(props) == ["model", "prompt", "mediaUrls", "aspectRatio", "duration", "resolution",
                           "webhookUrl", "metadata"]
    assert request["required"] == ["model", "prompt"]  # mediaUrls optional: text-to-video
    assert props["model"]["enum"] == list(BUILTIN_MODELS)
    assert props["aspectRatio"]["enum"] == sorted(ASPECT_RATIOS)
    assert props["resolution"]["enum"] == sorted(RESOLUTIONS)
    assert (props["duration"]["minimum"], props["duration"]["maximum"]) == (4, 15)
    assert (props["mediaUrls"]["minItems"], props["mediaUrls"]["maxItems"]) == (1, MAX_MEDIA_URLS) == (1, 5)
    per_model = {b["properties"]["model"]["enum"][0]: b["properties"]["duration"] for b in request["oneOf"]}
    assert per_model["seedance-1.5-pro"] == {"type": "integer", "enum": [5, 10]}
    assert per_model["seedance-2.0"] == {"type": "integer", "minimum": 4, "maximum": 15}
    generation = document["components"]["schemas"]["Generation"]["properties"]
    assert generation["status"]["enum"] == ["queued", "processing", "succeeded", "failed", "cancelled"]
    assert set(generation) >= {"success", "requestId", "status", "model", "prompt", "duration", "aspectRatio",
                               "output", "error"}
    submit = document["components"]["schemas"]["SubmitResponse"]["properties"]
    assert set(submit) == {"success", "requestId", "status", "creditsCharged"}
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "sd2_... API key"}
    assert document["paths"]["/api/open/v1/models"]["get"]["security"] == []


def test_whitespace_class_is_exactly_what_python_strips() -> None:
    spaces = "".join(chr(i) for i in range(0x3001) if chr(i).isspace())
    assert re.fullmatch(f"[{_WS}]+", spaces)
    assert not re.search(f"[{_WS}]", "".join(chr(i) for i in range(0x3001) if not chr(i).isspace()))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(url=st.from_regex(MEDIA_URL_RE, fullmatch=True))
def test_every_media_url_the_schema_allows_passes_the_request_model(url: str) -> None:
    GenerationRequest(prompt="p", media_urls=(url,)).validate()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(url=st.from_regex(WEBHOOK_URL_RE, fullmatch=True))
def test_every_webhook_url_the_schema_allows_passes_the_request_model(url: str) -> None:
    GenerationRequest(prompt="p", webhook_url=url).validate()


def test_served_document_reflects_the_catalogue(emu: EmulatorHandle) -> None:
    served = requests.get(emu.base_url + "/openapi.json", timeout=10).json()
    assert served == build_openapi()
    emu.admin.add_model(id="seedance-3.0", durations=[6])
    served = requests.get(emu.base_url + "/openapi.json", timeout=10).json()
    assert "seedance-3.0" in served["components"]["schemas"]["GenerationRequest"]["properties"]["model"]["enum"]


@pytest.mark.slow
def test_schemathesis_contract_run_passes(tmp_path: Path) -> None:
    """Fuzz every operation (examples, coverage, fuzzing, stateful phases; every default check)."""
    with run_emulator(time_scale=0.02) as emu:
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{emu.base_url}/openapi.json",
             "-H", f"Authorization: Bearer {emu.api_key}", "--max-examples", "60", "--seed", "20240601",
             "--request-timeout", "10"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        )
        stats = emu.admin.stats()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert stats["submits"] > 50
    assert stats["gets"] > 10
    assert stats["cancels"] > 10
