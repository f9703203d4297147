"""The vendor's models: what each accepts and what it costs. One source of truth.

The request model validates against these specs, the emulator serves them at ``GET /api/open/v1/models``
and charges with :func:`estimate_credits`, and the hook parses the live catalogue into the same type.
Pure Python: no Airflow, no HTTP client.

Prices are not published in the reference. The bundled table is an *estimate* fitted to the vendor's
two examples (seedance-2.0, 5 s, 720p: 64 credits image-to-video, 40 text-to-video): a per-second rate
by model and resolution, plus a flat surcharge when reference media are given. Which price applies
(a connection override, the live catalogue, or this table) is decided in one place: :func:`estimate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airflow_provider_seedance._bounds import MAX_CREDITS, MAX_DURATION_SECONDS, bounded_int, is_number
from airflow_provider_seedance.errors import SeedanceResponseError

__all__ = [
    "ASPECT_RATIOS",
    "BUILTIN_MODELS",
    "DEFAULT_ASPECT_RATIO",
    "DEFAULT_DURATION",
    "DEFAULT_RESOLUTION",
    "RESOLUTIONS",
    "SOURCE_BUNDLED",
    "SOURCE_CATALOGUE",
    "SOURCE_OVERRIDE",
    "CreditEstimate",
    "ModelSpec",
    "estimate",
    "estimate_credits",
    "parse_catalogue",
    "price_from_pricing",
    "pricing_problem",
]

ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1")
RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")

# The reference does not say what the service assumes for omitted optional fields. These are the
# values of its own examples; they are used only to *estimate* a price, never sent.
DEFAULT_DURATION = 5
DEFAULT_RESOLUTION = "720p"
DEFAULT_ASPECT_RATIO = "16:9"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the catalogue.

    :param model_id: the value of the ``model`` field.
    :param durations: accepted durations in seconds; None when the catalogue did not say.
    :param aspect_ratios: accepted aspect ratios; None when unknown.
    :param resolutions: accepted resolutions; None when unknown.
    :param pricing: pricing metadata as the catalogue gave it (see :func:`estimate_credits`).
    :param extra: catalogue keys this code does not know, kept as they came.
    """

    model_id: str
    durations: tuple[int, ...] | None = None
    aspect_ratios: tuple[str, ...] | None = None
    resolutions: tuple[str, ...] | None = None
    pricing: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_catalogue_item(self) -> dict[str, Any]:
        """Return the JSON item served by ``GET /api/open/v1/models``."""
        item: dict[str, Any] = {"id": self.model_id}
        if self.durations is not None:
            item["durations"] = list(self.durations)
        if self.aspect_ratios is not None:
            item["aspectRatios"] = list(self.aspect_ratios)
        if self.resolutions is not None:
            item["resolutions"] = list(self.resolutions)
        if self.pricing is not None:
            item["pricing"] = _plain(self.pricing)
        item.update(_plain(self.extra))
        return item

    @classmethod
    def from_catalogue_item(cls, item: Any) -> ModelSpec | None:
        """Parse one catalogue entry tolerantly; None when it names no model. Numbers out of range are
        dropped; whatever else goes wrong is :class:`~airflow_provider_seedance.errors.SeedanceResponseError`.

        :param item: one element of the catalogue's ``data`` list (any shape).
        """
        try:
            return cls._from_item(item)
        except Exception as exc:  # no catalogue answer may crash its reader with anything but a response error
            raise SeedanceResponseError(f"a model catalogue entry could not be read ({type(exc).__name__})") from None

    @classmethod
    def _from_item(cls, item: Any) -> ModelSpec | None:
        if isinstance(item, str):
            return cls(model_id=item.strip()) if item.strip() else None
        if not isinstance(item, Mapping):
            return None
        known = {"id", "model", "modelId", "model_id", "name", "durations", "duration",
                 "aspectRatios", "aspect_ratios", "resolutions", "pricing", "price"}
        model_id = next(
            (item[k] for k in ("id", "model", "modelId", "model_id", "name")
             if isinstance(item.get(k), str) and item[k].strip()),
            None,
        )
        if model_id is None:
            return None
        pricing = item.get("pricing", item.get("price"))
        return cls(
            model_id=model_id.strip(),
            durations=_parse_durations(item.get("durations", item.get("duration"))),
            aspect_ratios=_parse_strings(item.get("aspectRatios", item.get("aspect_ratios"))),
            resolutions=_parse_strings(item.get("resolutions")),
            pricing=dict(pricing) if isinstance(pricing, Mapping) else None,
            extra={k: v for k, v in item.items() if k not in known},
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _parse_durations(value: Any) -> tuple[int, ...] | None:
    """Accept ``[5, 10]``, ``{"min": 4, "max": 15}``, ``"4-15"`` or a single number (1 s to a day each)."""
    if isinstance(value, bool) or value is None:
        return None
    if is_number(value):
        one = _as_int(value)
        return (one,) if one is not None else None
    if isinstance(value, Mapping):
        lo, hi = _as_int(value.get("min")), _as_int(value.get("max"))
        if lo is not None and hi is not None and lo <= hi and hi - lo <= 600:
            return tuple(range(lo, hi + 1))
        return None
    if isinstance(value, str):
        lo_s, sep, hi_s = value.partition("-")
        if sep and _is_digits(lo_s) and _is_digits(hi_s):
            return _parse_durations({"min": int(lo_s), "max": int(hi_s)})
        return _parse_durations(int(value)) if _is_digits(value) else None
    if isinstance(value, Iterable):
        out = {d for d in (_as_int(v) for v in value) if d is not None}
        return tuple(sorted(out)) or None
    return None


def _is_digits(text: str) -> bool:
    # ASCII only: str.isdigit() accepts e.g. "²", which int() rejects.
    # Bounded: int() of a text of over 4300 digits raises.
    text = text.strip()
    return text.isascii() and text.isdigit() and len(text) <= 9


def _as_int(v: Any) -> int | None:
    """A duration in seconds: a whole number from 1 to a day (a 400-digit one once crashed the reader)."""
    return bounded_int(v, 1, MAX_DURATION_SECONDS)


def _parse_strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        return None
    out = tuple(v for v in value if isinstance(v, str) and v)
    return out or None


def _builtin(model_id: str, durations: Iterable[int], per_second: Mapping[str, int], surcharge: int) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        durations=tuple(durations),
        aspect_ratios=ASPECT_RATIOS,
        resolutions=RESOLUTIONS,
        pricing=MappingProxyType(
            {"unit": "credits", "perSecond": dict(per_second), "referenceMediaSurcharge": surcharge}
        ),
    )


#: The models the reference names, usable offline. Price figures: see the module docstring.
BUILTIN_MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.model_id: spec
        for spec in (
            _builtin("seedance-2.0", range(4, 16), {"480p": 5, "720p": 8, "1080p": 16}, 24),
            _builtin("seedance-2.0-fast", range(4, 16), {"480p": 3, "720p": 5, "1080p": 10}, 15),
            _builtin("seedance-1.5-pro", (5, 10), {"480p": 4, "720p": 6, "1080p": 12}, 20),
        )
    }
)


def parse_catalogue(body: Any) -> list[ModelSpec]:
    """Parse a ``GET /api/open/v1/models`` body: ``{"data": [...]}``, ``{"models": [...]}`` or a list.

    :param body: decoded JSON (any shape); entries that name no model are skipped.
    :raises SeedanceResponseError: the body could not be read (nothing else escapes).
    """
    try:
        return _parse_catalogue(body)
    except SeedanceResponseError:
        raise
    except Exception as exc:  # no catalogue answer may crash its reader with anything but a response error
        raise SeedanceResponseError(f"the model catalogue could not be read ({type(exc).__name__})") from None


def _parse_catalogue(body: Any) -> list[ModelSpec]:
    items: Any = body
    if isinstance(body, Mapping):
        items = body.get("data", body.get("models", []))
        if isinstance(items, Mapping):
            items = items.get("models", items.get("items", []))
    if not isinstance(items, list):
        return []
    specs = (ModelSpec.from_catalogue_item(item) for item in items)
    return [s for s in specs if s is not None]


#: Where an estimate came from, in the order they are tried (see :func:`estimate`).
SOURCE_OVERRIDE = "connection price_table"
SOURCE_CATALOGUE = "model catalogue"
SOURCE_BUNDLED = "bundled price table"


@dataclass(frozen=True)
class CreditEstimate:
    """An expected charge and where its price came from.

    :param credits: expected credits; None when no price is known.
    :param source: :data:`SOURCE_OVERRIDE`, :data:`SOURCE_CATALOGUE`, :data:`SOURCE_BUNDLED`, or None.
    """

    credits: int | None
    source: str | None = None


def estimate(
    model: str,
    *,
    duration: int | None,
    resolution: str | None,
    with_media: bool,
    spec: ModelSpec | None = None,
    override: Mapping[str, Any] | None = None,
    bundled: bool = True,
) -> CreditEstimate:
    """The expected charge, from the first price that knows this request. The one place prices are chosen.

    Precedence: ``override`` (the connection's ``price_table`` entry for the model: prices change and
    the user knows first) > ``spec`` (the vendor's live catalogue entry) > the bundled table.
    Understood pricing shape: ``{"perSecond": {"720p": 8, ...}, "referenceMediaSurcharge": 24}``
    (optional ``"base"``); a pricing this code does not understand, or that lacks the resolution asked
    for, is skipped for the next one.

    :param model: model id.
    :param duration: seconds (None: the vendor's example default, 5).
    :param resolution: resolution (None: the vendor's example default, 720p).
    :param with_media: True for image-to-video (reference media given).
    :param spec: the catalogue's entry, when one was fetched.
    :param override: a pricing object for this model from the connection.
    :param bundled: fall back to the bundled table (False: only ``override`` and ``spec``).
    """
    dur = DEFAULT_DURATION if duration is None else duration
    res = DEFAULT_RESOLUTION if resolution is None else resolution
    builtin = BUILTIN_MODELS.get(model) if bundled else None
    candidates = (
        (SOURCE_OVERRIDE, override),
        (SOURCE_CATALOGUE, spec.pricing if spec is not None else None),
        (SOURCE_BUNDLED, builtin.pricing if builtin is not None else None),
    )
    for source, pricing in candidates:
        price = price_from_pricing(pricing, dur, res, with_media)
        if price is not None:
            return CreditEstimate(price, source)
    return CreditEstimate(None)


def estimate_credits(
    model: str,
    *,
    duration: int | None,
    resolution: str | None,
    with_media: bool,
    spec: ModelSpec | None = None,
    override: Mapping[str, Any] | None = None,
) -> int | None:
    """Expected charge in credits, or None when no price knows the request (see :func:`estimate`).

    :param model: model id.
    :param duration: seconds (None: the vendor's example default, 5).
    :param resolution: resolution (None: the vendor's example default, 720p).
    :param with_media: True for image-to-video (reference media given).
    :param spec: the catalogue's entry, when one was fetched.
    :param override: a pricing object for this model from the connection's ``price_table``.
    """
    return estimate(
        model, duration=duration, resolution=resolution, with_media=with_media, spec=spec, override=override
    ).credits


def _number(value: Any) -> bool:
    # Bounded: math.isfinite() and float() of a 400-digit int raise OverflowError; NaN fails the comparison.
    return is_number(value) and 0 <= value <= MAX_CREDITS


def price_from_pricing(pricing: Any, duration: int, resolution: str, with_media: bool) -> int | None:
    """Credits for one request under one pricing object; None when it does not price this request.

    :param pricing: ``{"perSecond": {resolution: rate}, "referenceMediaSurcharge": n, "base": n}`` (any shape).
    :param duration: seconds.
    :param resolution: resolution.
    :param with_media: True for image-to-video.
    """
    if not isinstance(pricing, Mapping):
        return None
    per_second = pricing.get("perSecond")
    if not isinstance(per_second, Mapping):
        return None
    rate = per_second.get(resolution)
    base = pricing.get("base", 0)
    surcharge = pricing.get("referenceMediaSurcharge", 0) if with_media else 0
    if not all(_number(x) for x in (rate, base, surcharge)):
        return None
    total = float(base) + float(rate) * duration + float(surcharge)  # type: ignore[arg-type]  # checked above
    return math.ceil(total) if math.isfinite(total) else None


def pricing_problem(pricing: Any) -> str | None:
    """Why a pricing object could not price anything, or None when it is usable (checks user overrides).

    :param pricing: the pricing object.
    """
    if not isinstance(pricing, Mapping):
        return "must be a JSON object"
    per_second = pricing.get("perSecond")
    if not isinstance(per_second, Mapping) or not per_second:
        return 'needs "perSecond": {"<resolution>": <credits per second>, ...}'
    bad = sorted(str(k) for k, v in per_second.items() if not _number(v))
    if bad:
        return f'"perSecond" rates must be numbers >= 0 (bad: {", ".join(bad)})'
    for name in ("base", "referenceMediaSurcharge"):
        if name in pricing and not _number(pricing[name]):
            return f'"{name}" must be a number >= 0'
    return None
