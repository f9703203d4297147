"""The request of one generation and the vendor's rules for it: build, validate, send, fingerprint.

Pure Python: no Airflow, no HTTP client (the import rules and why: ``docs/architecture.rst``). Import it
from :mod:`airflow_provider_seedance.models`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, CreditEstimate, ModelSpec, estimate
from airflow_provider_seedance.errors import SeedanceUnknownModelError, SeedanceValidationError

__all__ = [
    "API_FIELDS",
    "AUDIO_EXTENSIONS",
    "DECIDING_FIELDS",
    "DIGEST_VERSION",
    "IMAGE_EXTENSIONS",
    "MAX_MEDIA_URLS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "GenerationRequest",
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
        # Bounded: int() of a text of over 4300 digits raises a bare ValueError.
        if digits.isascii() and digits.isdigit() and len(digits) <= 9:
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
