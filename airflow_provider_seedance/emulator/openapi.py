"""The OpenAPI 3.0 document of the Seedance API, built from the same rules the request model enforces.

Field names come from ``models.API_FIELDS``, enums and ranges from the model catalogue, so the document,
the emulator's validation and the provider's validation cannot drift apart. It is precise enough for
contract fuzzing (schemathesis): data the schema allows is accepted, data it forbids gets a 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_seedance import __version__
from airflow_provider_seedance.catalogue import BUILTIN_MODELS, ModelSpec
from airflow_provider_seedance.models import (
    API_FIELDS,
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MAX_MEDIA_URLS,
    VIDEO_EXTENSIONS,
    JobStatus,
)

__all__ = ["MEDIA_URL_RE", "WEBHOOK_URL_RE", "build_openapi"]

_GENERATIONS = "/api/open/v1/video/generations"
_REF = "#/components/schemas/"

# URL patterns accepted by models._check_url: https (http only on loopback), a host, and for media a
# last path segment that has no extension or one of the supported media types (any letter case).
# Spelled out (not \s): regex engines disagree on \s, and the server strips what str.isspace() calls space.
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_HOST = r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?"
_ORIGIN = rf"(https://{_HOST}|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{{1,5}})?)"


# The reference's curl example.
_EXAMPLE: dict[str, Any] = {
    "model": "seedance-2.0",
    "prompt": "A young woman blows out birthday candles, warm indoor lighting, shallow depth of field",
    "mediaUrls": ["https://example.com/photo.jpg"],
    "aspectRatio": "16:9",
    "duration": 5,
    "resolution": "720p",
}


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _media_url_pattern() -> str:
    exts = sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS)
    ext_alt = "|".join(_any_case(e) for e in exts)
    last = rf"([^{_WS}/?#.]*|[^{_WS}/?#]*\.({ext_alt}))"
    # A query string is allowed: signed/presigned media URLs (S3, GCS, CDNs) carry their token there.
    return rf"^{_ORIGIN}((/[^{_WS}/?#]*)*/{last})?(\?[^{_WS}#]*)?$"


def _webhook_url_pattern() -> str:
    return rf"^{_ORIGIN}(/[^{_WS}?#]*)?(\?[^{_WS}#]*)?$"


#: The server applies the document's URL patterns too, so fuzzing finds schema and server in agreement.
MEDIA_URL_RE = re.compile(_media_url_pattern())
WEBHOOK_URL_RE = re.compile(_webhook_url_pattern())


def _duration_schema(durations: Iterable[int]) -> dict[str, Any]:
    ordered = sorted(durations)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return {"type": "integer", "minimum": ordered[0], "maximum": ordered[-1]}
    return {"type": "integer", "enum": ordered}


def _per_model_rules(spec: ModelSpec) -> dict[str, Any]:
    props: dict[str, Any] = {"model": {"type": "string", "enum": [spec.model_id]}}
    if spec.durations:
        props["duration"] = _duration_schema(spec.durations)
    if spec.aspect_ratios:
        props["aspectRatio"] = {"type": "string", "enum": list(spec.aspect_ratios)}
    if spec.resolutions:
        props["resolution"] = {"type": "string", "enum": list(spec.resolutions)}
    return {"type": "object", "properties": props}


def _union(specs: Iterable[ModelSpec], attr: str) -> list[Any] | None:
    values: set[Any] = set()
    for spec in specs:
        found = getattr(spec, attr)
        if found is None:
            return None
        values.update(found)
    return sorted(values)


def _request_schema(catalogue: Mapping[str, ModelSpec]) -> dict[str, Any]:
    specs = list(catalogue.values())
    durations = _union(specs, "durations")
    ratios = _union(specs, "aspect_ratios")
    resolutions = _union(specs, "resolutions")
    f = API_FIELDS
    props: dict[str, Any] = {
        f["model"]: {"type": "string", "enum": [s.model_id for s in specs], "description": "Model id."},
        f["prompt"]: {"type": "string", "pattern": f"[^{_WS}]", "description": "What the video shows (not blank)."},
        f["media_urls"]: {
            "type": "array", "minItems": 1, "maxItems": MAX_MEDIA_URLS,
            "items": {"type": "string", "pattern": _media_url_pattern()},
            "description": (f"1 to {MAX_MEDIA_URLS} public https URLs of reference media (image "
                            + " ".join(sorted(IMAGE_EXTENSIONS)) + "; video " + " ".join(sorted(VIDEO_EXTENSIONS))
                            + "; audio " + " ".join(sorted(AUDIO_EXTENSIONS))
                            + "). Omit for text-to-video."),
        },
        f["aspect_ratio"]: {"type": "string", **({"enum": ratios} if ratios else {})},
        f["duration"]: {
            "type": "integer", **({"minimum": durations[0], "maximum": durations[-1]} if durations else {}),
            "description": "Seconds; the accepted values depend on the model.",
        },
        f["resolution"]: {"type": "string", **({"enum": resolutions} if resolutions else {})},
        f["webhook_url"]: {"type": "string", "pattern": _webhook_url_pattern(),
                           "description": "Receives the final result (the GET body) when the job ends."},
        f["metadata"]: {"type": "object", "description": "Custom metadata stored with the request."},
    }
    return {
        "type": "object",
        "required": [f["model"], f["prompt"]],
        "properties": props,
        # Per-model rules (e.g. seedance-1.5-pro takes 5 or 10 seconds): exactly one branch per model.
        "oneOf": [_per_model_rules(spec) for spec in specs],
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The request field at fault (400)."},
                },
            },
        },
    }


def _schemas(catalogue: Mapping[str, ModelSpec]) -> dict[str, Any]:
    statuses = [s.value for s in JobStatus if s is not JobStatus.UNKNOWN]
    return {
        "GenerationRequest": _request_schema(catalogue),
        "SubmitResponse": {
            "type": "object",
            "required": ["success", "requestId", "status", "creditsCharged"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "requestId": {"type": "string", "minLength": 1},
                "status": {"type": "string", "enum": statuses},
                "creditsCharged": {"type": "integer", "minimum": 0},
            },
        },
        "Generation": {
            "type": "object",
            "required": ["success", "requestId", "status"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "requestId": {"type": "string", "minLength": 1},
                "status": {"type": "string", "enum": statuses},
                "model": {"type": "string"},
                "prompt": {"type": "string"},
                "duration": {"type": "integer", "nullable": True},
                "aspectRatio": {"type": "string", "nullable": True},
                "output": {
                    "type": "object", "nullable": True, "required": ["type", "url"],
                    "properties": {"type": {"type": "string", "enum": ["video"]}, "url": {"type": "string"}},
                },
                "error": {
                    "type": "object", "nullable": True,
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
                "metadata": {"type": "object", "nullable": True},
            },
        },
        "CancelResponse": {
            "type": "object",
            "required": ["success", "requestId", "status"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "requestId": {"type": "string"},
                "status": {"type": "string", "enum": ["cancelled"]},
                "creditsRefunded": {"type": "integer", "minimum": 0},
            },
        },
        "ModelCatalogue": {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"type": "boolean"},
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "string"},
                            "durations": {"type": "array", "items": {"type": "integer"}},
                            "aspectRatios": {"type": "array", "items": {"type": "string"}},
                            "resolutions": {"type": "array", "items": {"type": "string"}},
                            "pricing": {"type": "object"},
                        },
                    },
                },
            },
        },
        "Error": _error_schema(),
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF + ref}}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid request (error.field names the field)", 401: "Missing or invalid API key",
            402: "Not enough credits", 404: "Unknown requestId", 409: "The generation already finished"}
    out = {str(c): _json("Error", text[c]) for c in codes}
    out["default"] = _json("Error", "Other errors (429 rate limited, 5xx)")
    return out


def _request_id_param() -> dict[str, Any]:
    return {"name": "requestId", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
            "example": "req_1234567890"}


def build_openapi(catalogue: Mapping[str, ModelSpec] | None = None) -> dict[str, Any]:
    """The OpenAPI document served at ``/openapi.json``.

    :param catalogue: the models to describe (default: the built-in ones).
    """
    catalogue = BUILTIN_MODELS if catalogue is None else catalogue
    links = {
        "GetGeneration": {"operationId": "getGeneration", "parameters": {"requestId": "$response.body#/requestId"}},
        "CancelGeneration": {
            "operationId": "cancelGeneration", "parameters": {"requestId": "$response.body#/requestId"},
        },
    }
    submit_ok = _json("SubmitResponse", "Accepted; credits charged")
    submit_ok["links"] = links
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Seedance 2.0 Open API (as emulated by airflow-provider-seedance)",
            "version": __version__,
            "description": "Image- and text-to-video generation. Reference: https://www.seedance2.ink",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            _GENERATIONS: {
                "post": {
                    "operationId": "createGeneration",
                    "summary": "Submit a generation (text-to-video when mediaUrls is omitted)",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": _REF + "GenerationRequest"},
                        "examples": {
                            "imageToVideo": {"summary": "The reference's example (64 credits)", "value": _EXAMPLE},
                            "textToVideo": {"summary": "No mediaUrls: text-to-video (40 credits)",
                                            "value": {k: v for k, v in _EXAMPLE.items() if k != "mediaUrls"}},
                        },
                    }}},
                    "responses": {"200": submit_ok, **_errors(400, 401, 402)},
                },
            },
            _GENERATIONS + "/{requestId}": {
                "get": {
                    "operationId": "getGeneration",
                    "summary": "Status and result of a generation",
                    "parameters": [_request_id_param()],
                    "responses": {"200": _json("Generation", "The generation"), **_errors(401, 404)},
                },
            },
            _GENERATIONS + "/{requestId}/cancel": {
                "post": {
                    "operationId": "cancelGeneration",
                    "summary": "Cancel a queued or processing generation",
                    "parameters": [_request_id_param()],
                    "responses": {"200": _json("CancelResponse", "Cancelled"), **_errors(401, 404, 409)},
                },
            },
            "/api/open/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "The model catalogue: durations, aspect ratios, resolutions, pricing",
                    "security": [],
                    "responses": {"200": _json("ModelCatalogue", "The catalogue"), "default": _json("Error", "Error")},
                },
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "sd2_... API key"}},
            "schemas": _schemas(catalogue),
        },
    }
