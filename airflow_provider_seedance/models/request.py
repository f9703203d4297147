"""The request and result of one generation, and the vendor's rules. Shared by hook, operator, trigger, emulator.

Pure Python: no Airflow, no HTTP client (the import rules and why: ``docs/architecture.rst``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, CreditEstimate, ModelSpec, estimate
from airflow_provider_seedance.errors import (
    SeedanceResponseError,
    SeedanceUnknownModelError,
    SeedanceValidationError,
    error_message_from_body,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "DECIDING_FIELDS",
    "DIGEST_VERSION",
    "IMAGE_EXTENSIONS",
    "MAX_MEDIA_URLS",
    "VIDEO_EXTENSIONS",
    "GenerationRequest",
    "JobResult",
    "JobStatus",
    "is_loopback_host",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
MAX_MEDIA_URLS = 5

#: The fields that decide the video: :meth:`GenerationRequest.digest` covers these and nothing else.
#: ``metadata`` (Airflow lineage holds the try number) and ``webhook_url`` only travel with the job.
DECIDING_FIELDS = ("prompt", "media_urls", "model", "aspect_ratio", "duration", "resolution")
#: Prefix of :meth:`GenerationRequest.digest`; a new version (other fields, other encoding) gets a new prefix,
#: and a stored digest with another prefix is then treated as absent, never as "different".
DIGEST_VERSION = "v1"

# snake_case attribute -> camelCase API field, in the order the reference lists them.
API_FIELDS: Mapping[str, str] = {
    "model": "model",
    "prompt": "prompt",
    "media_urls": "mediaUrls",
    "aspect_ratio": "aspectRatio",
    "duration": "duration",
    "resolution": "resolution",
    "webhook_url": "webhookUrl",
    "metadata": "metadata",
}


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback IPs: the only hosts where plain http is accepted (the emulator).

    :param host: host name or IP literal.
    """
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _fail(attr: str, value: Any, allowed: str) -> SeedanceValidationError:
    return SeedanceValidationError(attr, value, allowed, api_field=API_FIELDS.get(attr, attr))


def _check_url(attr: str, url: Any, *, check_media_type: bool) -> str:
    allowed = "an absolute https:// URL (http:// only for localhost/loopback)"
    if not isinstance(url, str) or not url.strip():
        raise _fail(attr, url, allowed)
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise _fail(attr, url, allowed) from None
    if not host or parts.scheme not in ("https", "http"):
        raise _fail(attr, url, allowed)
    if parts.scheme == "http" and not is_loopback_host(host):
        raise _fail(attr, url, allowed)
    if check_media_type:
        ext = posixpath.splitext(posixpath.basename(parts.path))[1].lower()
        # Signed/CDN URLs often have no extension: allowed; a wrong one is refused.
        if ext and ext not in MEDIA_EXTENSIONS:
            raise _fail(
                attr,
                url,
                "image " + " ".join(sorted(IMAGE_EXTENSIONS)) + "; video " + " ".join(sorted(VIDEO_EXTENSIONS))
                + "; audio " + " ".join(sorted(AUDIO_EXTENSIONS)) + " (or no extension)",
            )
    return url


def _coerce_media_urls(value: Any) -> tuple[str, ...] | None:
    # Templates render to strings: accept a JSON list or one URL, so '{{ params.urls }}' works.
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise _fail("media_urls", value, "a list of 1 to 5 URLs") from None
        else:
            return (text,)
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, (bytes, str)):
        raise _fail("media_urls", value, "a list of 1 to 5 URLs (or none for text-to-video)")
    return tuple(value)


def _duration_allowed(model: Any) -> str:
    """What ``duration`` may be, for a type error: the unit and the model's range (every built-in's when the
    model is not built in), so ``'7s'`` is answered with what to write instead."""
    spec = BUILTIN_MODELS.get(model) if isinstance(model, str) else None
    if spec is not None and spec.durations:
        return f"a whole number of seconds, for {spec.model_id}: {_describe_ints(spec.durations)}"
    ranges = "; ".join(f"{m}: {_describe_ints(s.durations)}" for m, s in BUILTIN_MODELS.items() if s.durations)
    return f"a whole number of seconds ({ranges}; other models: their catalogue entry)"


def _coerce_duration(value: Any, model: Any = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _fail("duration", value, _duration_allowed(model))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("+") else text
        # ASCII only: str.isdigit() accepts e.g. "²", which int() rejects.
        if digits.isascii() and digits.isdigit():
            return int(digits)
    raise _fail("duration", value, _duration_allowed(model))


def _coerce_metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _fail("metadata", value, "a JSON object (dict with string keys)") from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail("metadata", value, "a JSON object (dict with string keys)")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError):
        raise _fail("metadata", value, "JSON-serializable values only") from None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation as the API takes it. Build, then :meth:`validate` before sending.

    :param prompt: what the video shows.
    :param media_urls: 1-5 public reference media URLs; None or empty for text-to-video.
    :param model: model id.
    :param aspect_ratio: ``16:9``, ``9:16`` or ``1:1``.
    :param duration: seconds (range depends on the model).
    :param resolution: ``480p``, ``720p`` or ``1080p``.
    :param webhook_url: https URL that receives the final result.
    :param metadata: JSON object stored with the request.
    """

    prompt: str
    # Any sequence (or a JSON-list string from a template) is accepted; stored as a tuple.
    media_urls: Sequence[str] | str | None = None
    model: str = "seedance-2.0"
    aspect_ratio: str | None = None
    duration: int | None = None
    resolution: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False, compare=True)

    def __post_init__(self) -> None:
        # Normalize the loose shapes templates produce; rules are checked in validate().
        object.__setattr__(self, "media_urls", _coerce_media_urls(self.media_urls))
        object.__setattr__(self, "duration", _coerce_duration(self.duration, self.model))
        object.__setattr__(self, "metadata", _coerce_metadata(self.metadata))
        for attr in ("aspect_ratio", "resolution", "webhook_url"):
            value = getattr(self, attr)
            if isinstance(value, str) and not value.strip():
                object.__setattr__(self, attr, None)

    @property
    def is_text_to_video(self) -> bool:
        """True when no reference media are given (the body then has no ``mediaUrls`` key)."""
        return not self.media_urls

    def validate(self, spec: ModelSpec | None = None) -> GenerationRequest:
        """Check every vendor rule; raise :class:`SeedanceValidationError` naming the first bad field.

        :param spec: the model's catalogue entry, for a model that is not built in. Unknown models
            without a spec raise :class:`SeedanceUnknownModelError` (the hook then asks the catalogue).
        :return: self, for chaining.
        """
        if not isinstance(self.model, str) or not self.model.strip():
            raise _fail("model", self.model, "one of " + ", ".join(BUILTIN_MODELS))
        if spec is None:
            spec = BUILTIN_MODELS.get(self.model)
        if spec is None or spec.model_id != self.model:
            raise SeedanceUnknownModelError(self.model, list(BUILTIN_MODELS))
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise _fail("prompt", self.prompt, "a non-empty text")
        if self.media_urls:
            if len(self.media_urls) > MAX_MEDIA_URLS:
                raise _fail("media_urls", list(self.media_urls), f"1 to {MAX_MEDIA_URLS} URLs")
            for url in self.media_urls:
                _check_url("media_urls", url, check_media_type=True)
        self._check_choice("aspect_ratio", spec.aspect_ratios)
        self._check_choice("resolution", spec.resolutions)
        if self.duration is not None and spec.durations is not None and self.duration not in spec.durations:
            raise _fail("duration", self.duration, f"for {self.model}: {_describe_ints(spec.durations)} seconds")
        if self.webhook_url is not None:
            _check_url("webhook_url", self.webhook_url, check_media_type=False)
        return self

    def _check_choice(self, attr: str, choices: Sequence[str] | None) -> None:
        value = getattr(self, attr)
        if value is None:
            return
        if not isinstance(value, str) or (choices is not None and value not in choices):
            allowed = "one of " + ", ".join(choices) if choices else "a string"
            raise _fail(attr, value, f"{allowed} (model {self.model})")

    def estimate(
        self, spec: ModelSpec | None = None, *, override: Mapping[str, Any] | None = None, bundled: bool = True
    ) -> CreditEstimate:
        """Expected charge and where its price came from (see :func:`~airflow_provider_seedance.catalogue.estimate`).

        :param spec: the catalogue entry when fetched.
        :param override: the connection's ``price_table`` pricing for this model.
        :param bundled: fall back to the bundled table.
        """
        return estimate(
            self.model, duration=self.duration, resolution=self.resolution,
            with_media=not self.is_text_to_video, spec=spec, override=override, bundled=bundled,
        )

    def estimate_credits(
        self, spec: ModelSpec | None = None, *, override: Mapping[str, Any] | None = None
    ) -> int | None:
        """Expected charge in credits: ``override`` > ``spec`` > the bundled table; None when unknown.

        :param spec: the catalogue entry when fetched; else the bundled table.
        :param override: the connection's ``price_table`` pricing for this model.
        """
        return self.estimate(spec, override=override).credits

    def to_api_json(self) -> dict[str, Any]:
        """The exact POST body: camelCase keys; unset fields (and media for text-to-video) omitted."""
        body: dict[str, Any] = {}
        for attr, key in API_FIELDS.items():
            value = getattr(self, attr)
            if value is None or (attr == "media_urls" and not value):
                continue
            body[key] = list(value) if attr == "media_urls" else value
        return body

    @classmethod
    def from_api_json(cls, body: Any) -> GenerationRequest:
        """Build from a POST body (the emulator's side). Raises :class:`SeedanceValidationError`.

        :param body: decoded JSON.
        """
        if not isinstance(body, Mapping):
            raise SeedanceValidationError("body", body, "a JSON object")
        kwargs: dict[str, Any] = {attr: body.get(key) for attr, key in API_FIELDS.items() if key in body}
        if "model" not in body:
            raise _fail("model", None, "one of " + ", ".join(BUILTIN_MODELS))
        if not isinstance(kwargs.get("prompt"), str):
            raise _fail("prompt", kwargs.get("prompt"), "a non-empty text")
        # The wire format is strict JSON: no string-to-number or string-to-list leniency here.
        if "mediaUrls" in body and not isinstance(body["mediaUrls"], list):
            raise _fail("media_urls", body["mediaUrls"], "a JSON array of 1 to 5 URLs")
        if "mediaUrls" in body and not body["mediaUrls"]:
            raise _fail("media_urls", [], "1 to 5 URLs, or omit the field for text-to-video")
        if "duration" in body and (isinstance(body["duration"], bool) or not isinstance(body["duration"], int)):
            raise _fail("duration", body["duration"], _duration_allowed(body.get("model")))
        if "metadata" in body and not isinstance(body["metadata"], dict):
            raise _fail("metadata", body["metadata"], "a JSON object")
        for attr in ("model", "aspect_ratio", "resolution", "webhook_url"):
            if attr in kwargs and not isinstance(kwargs[attr], str):
                raise _fail(attr, kwargs[attr], "a string")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-simple snake_case dict (XCom, trigger kwargs, logs)."""
        return {
            "prompt": self.prompt,
            "media_urls": list(self.media_urls) if self.media_urls is not None else None,
            "model": self.model,
            "aspect_ratio": self.aspect_ratio,
            "duration": self.duration,
            "resolution": self.resolution,
            "webhook_url": self.webhook_url,
            "metadata": self.metadata,
        }

    def digest(self) -> str:
        """A stable fingerprint of what decides the video (``DECIDING_FIELDS``), e.g. ``v1:9f2c...``.

        SHA-256 over canonical JSON (sorted keys, no spaces, ASCII), so it is the same in every process and
        Python version. Metadata and the webhook URL are left out: a timestamp in metadata, or the try
        number in the lineage, must not make a retry pay for a second job. No media and an empty list
        are the same request (the body omits ``mediaUrls`` for both).
        """
        deciding = {name: getattr(self, name) for name in DECIDING_FIELDS}
        deciding["media_urls"] = list(self.media_urls or ())
        # ASCII-escaped: any text (even a lone surrogate) encodes, and always the same way.
        canonical = json.dumps(deciding, sort_keys=True, separators=(",", ":"), default=str)
        return f"{DIGEST_VERSION}:{hashlib.sha256(canonical.encode('ascii')).hexdigest()}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationRequest:
        """Inverse of :meth:`to_dict`.

        :param data: a dict from :meth:`to_dict`.
        """
        kwargs: dict[str, Any] = {k: data.get(k) for k in API_FIELDS if k in data}
        return cls(**kwargs)


def _describe_ints(values: Sequence[int]) -> str:
    ordered = sorted(values)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"an integer from {ordered[0]} to {ordered[-1]}"
    return " or ".join(str(v) for v in ordered)


class JobStatus(str, Enum):
    """A generation's status. Strings the vendor has not documented parse to UNKNOWN (never terminal)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """True for succeeded, failed and cancelled."""
        return self in _TERMINAL

    @classmethod
    def parse(cls, raw: Any) -> JobStatus:
        """Map a status string to the enum; anything unrecognised is UNKNOWN, never success.

        :param raw: the ``status`` value from the API.
        """
        if not isinstance(raw, str):
            return cls.UNKNOWN
        # Hot path: every status poll of every wait.
        return _STATUS_BY_TEXT.get(raw.strip().lower(), cls.UNKNOWN)


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# "canceled": the US spelling, same meaning, seen in many APIs.
_STATUS_BY_TEXT = {**{status.value: status for status in JobStatus}, "canceled": JobStatus.CANCELLED}


@dataclass(frozen=True)
class JobResult:
    """What the API says about one generation (submit, status or cancel response).

    :param request_id: the generation id.
    :param status: parsed status.
    :param raw_status: the status string exactly as received (kept for unknown values).
    :param output_url: the video URL once succeeded.
    :param output_type: ``output.type`` (``video``).
    :param error: the vendor's error, normalized to one readable string.
    :param credits_charged: credits charged at submit.
    :param model: echo of the model.
    :param prompt: echo of the prompt.
    :param duration: echo of the duration.
    :param aspect_ratio: echo of the aspect ratio.
    """

    request_id: str
    status: JobStatus
    raw_status: str | None = None
    output_url: str | None = None
    output_type: str | None = None
    error: str | None = None
    credits_charged: int | None = None
    model: str | None = None
    prompt: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None

    @property
    def succeeded(self) -> bool:
        """Succeeded *with* an output URL; success without one is not a success."""
        return self.status is JobStatus.SUCCEEDED and bool(self.output_url)

    @classmethod
    def from_api_json(cls, body: Any, *, request_id: str | None = None) -> JobResult:
        """Parse a response body; raise :class:`SeedanceResponseError` when it is not one.

        :param body: decoded JSON.
        :param request_id: the id asked about (used when the body omits it; must match if both).
        """
        # dict first: JSON objects are dicts, and it spares the far slower Mapping ABC check on the hot path.
        if not isinstance(body, (dict, Mapping)):
            raise SeedanceResponseError(f"expected a JSON object, got {type(body).__name__}", request_id=request_id)
        rid = body.get("requestId", request_id)
        if not isinstance(rid, str) or not rid:
            raise SeedanceResponseError("response has no requestId", request_id=request_id)
        if request_id is not None and rid != request_id:
            # Another job's answer (a caching proxy, a server bug): its "succeeded" must never deliver its
            # video as ours. A malformed answer, so a status check asks again.
            raise SeedanceResponseError(f"the answer is about request {rid!r}, not the one asked for",
                                        request_id=request_id)
        raw_status = body.get("status")
        output = body.get("output")
        output_url = output_type = None
        if isinstance(output, (dict, Mapping)):
            url = output.get("url")
            output_url = url if isinstance(url, str) and url else None
            otype = output.get("type")
            output_type = otype if isinstance(otype, str) else None
        elif isinstance(output, str) and output:
            output_url = output
        credits = body.get("creditsCharged")
        duration = body.get("duration")
        message, _code = error_message_from_body(body)
        return cls(
            request_id=rid,
            status=JobStatus.parse(raw_status),
            raw_status=raw_status if isinstance(raw_status, str) else None,
            output_url=output_url,
            output_type=output_type,
            error=message,
            credits_charged=_as_int(credits),
            model=_str_or_none(body.get("model")),
            prompt=_str_or_none(body.get("prompt")),
            duration=_as_int(duration),
            aspect_ratio=_str_or_none(body.get("aspectRatio")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-simple dict (trigger events, XCom)."""
        return {
            "request_id": self.request_id,
            "status": self.status.value,
            "raw_status": self.raw_status,
            "output_url": self.output_url,
            "output_type": self.output_type,
            "error": self.error,
            "credits_charged": self.credits_charged,
            "model": self.model,
            "prompt": self.prompt,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        """Inverse of :meth:`to_dict`; ``ValueError`` when ``data`` has no request id (fields of a wrong type
        are dropped, so a foreign or damaged payload can never pass for a result).

        :param data: a dict from :meth:`to_dict`.
        """
        rid = data.get("request_id") if isinstance(data, Mapping) else None
        if not isinstance(rid, str) or not rid:
            raise ValueError(f"not a JobResult dict (no request_id): {data!r}"[:300])
        return cls(
            request_id=rid,
            status=JobStatus.parse(data.get("status")),
            raw_status=_str_or_none(data.get("raw_status")),
            output_url=_str_or_none(data.get("output_url")),
            output_type=_str_or_none(data.get("output_type")),
            error=_str_or_none(data.get("error")),
            credits_charged=_as_int(data.get("credits_charged")),
            model=_str_or_none(data.get("model")),
            prompt=_str_or_none(data.get("prompt")),
            duration=_as_int(data.get("duration")),
            aspect_ratio=_str_or_none(data.get("aspect_ratio")),
        )


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        return None
    return int(v)


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None
