"""The hook's use of the live model catalogue: a TTL cache and the lookup of a model the code does not know.

Built-in models are validated offline; only an unknown model name sends the hook to the catalogue, and a
model the catalogue does not list is refused with the list of models that are available.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, CreditEstimate, ModelSpec, parse_catalogue
from airflow_provider_seedance.errors import SeedanceError, SeedanceUnknownModelError
from airflow_provider_seedance.models import GenerationRequest

__all__ = ["CatalogueCache", "CatalogueMixin", "estimate_with_catalogue", "spec_from_catalogue", "validate_builtin"]


class CatalogueCache:
    """The last catalogue fetched, kept for ``ttl`` seconds (monotonic clock).

    :param ttl: seconds an answer stays fresh; 0 or less disables caching.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entry: tuple[float, list[ModelSpec]] | None = None

    def get(self, *, refresh: bool = False) -> list[ModelSpec] | None:
        """The cached catalogue, or None when absent, stale or a refresh is asked for.

        :param refresh: ignore what is cached.
        """
        if refresh or self._entry is None:
            return None
        fetched_at, specs = self._entry
        if time.monotonic() - fetched_at >= self.ttl:
            return None
        return list(specs)

    def put(self, specs: list[ModelSpec]) -> list[ModelSpec]:
        """Remember a freshly fetched catalogue and return it.

        :param specs: the parsed catalogue.
        """
        self._entry = (time.monotonic(), list(specs))
        return list(specs)


def validate_builtin(request: GenerationRequest) -> ModelSpec | None:
    """Validate offline against the built-in rules; None when the model is not built in.

    :param request: the generation.
    :raises SeedanceValidationError: a built-in model's rule is broken.
    """
    try:
        request.validate()
    except SeedanceUnknownModelError:
        return None
    return BUILTIN_MODELS[request.model]


def spec_from_catalogue(model: str, catalogue: list[ModelSpec] | SeedanceError) -> ModelSpec:
    """The catalogue's entry for a model that is not built in.

    :param model: the model name asked for.
    :param catalogue: the live catalogue, or the error that prevented fetching it.
    :raises SeedanceUnknownModelError: not listed (naming the available models), or the catalogue is
        unreachable (naming the built-in models, and saying so).
    """
    builtin = list(BUILTIN_MODELS)
    if isinstance(catalogue, SeedanceError):
        raise SeedanceUnknownModelError(
            model, builtin,
            note=f"the live model catalogue is unreachable ({type(catalogue).__name__}), so only the built-in models "
            "could be checked",
        ) from catalogue
    for spec in catalogue:
        if spec.model_id == model:
            return spec
    available = list(dict.fromkeys(builtin + [s.model_id for s in catalogue]))
    raise SeedanceUnknownModelError(model, available, note="built-in models and the vendor's live catalogue")


def estimate_with_catalogue(
    request: GenerationRequest, catalogue: list[ModelSpec] | None, override: Mapping[str, Any] | None = None
) -> CreditEstimate:
    """Expected credits: the connection's override, else the catalogue entry's price, else the bundled table.

    :param request: the generation.
    :param catalogue: the live catalogue, or None when it could not be fetched.
    :param override: the connection's ``price_table`` pricing for the model, if any.
    """
    spec = next((s for s in catalogue or () if s.model_id == request.model), None)
    return request.estimate(spec, override=override)


class CatalogueMixin:
    """The hook's catalogue methods: list models (cached), validate a request, estimate its charge.

    The hook supplies ``_fetch_models``/``_afetch_models`` (one GET of the catalogue, retried) and the
    connection settings (for the ``price_table`` extra).
    """

    _catalogue: CatalogueCache

    def _init_catalogue(self, ttl: float) -> None:
        self._catalogue = CatalogueCache(ttl)

    @property
    def catalogue_ttl(self) -> float:
        """Seconds a fetched model catalogue is reused."""
        return self._catalogue.ttl

    @catalogue_ttl.setter
    def catalogue_ttl(self, seconds: float) -> None:
        self._catalogue.ttl = seconds

    def list_models(self: Any, *, refresh: bool = False) -> list[ModelSpec]:
        """The vendor's live model catalogue (``GET /api/open/v1/models``), cached for ``catalogue_ttl``.

        :param refresh: ignore the cache.
        """
        cached = self._catalogue.get(refresh=refresh)
        if cached is not None:
            return cached
        return self._catalogue.put(self._fetch_models(parse_catalogue))

    async def alist_models(self: Any, *, refresh: bool = False) -> list[ModelSpec]:
        """Async :meth:`list_models`.

        :param refresh: ignore the cache.
        """
        cached = self._catalogue.get(refresh=refresh)
        if cached is not None:
            return cached
        return self._catalogue.put(await self._afetch_models(parse_catalogue))

    def _catalogue_or_error(self: Any) -> list[ModelSpec] | SeedanceError:
        try:
            return self.list_models()
        except SeedanceError as exc:
            self.log.warning("Seedance model catalogue unavailable: %s", exc)
            return exc

    async def _acatalogue_or_error(self: Any) -> list[ModelSpec] | SeedanceError:
        try:
            return await self.alist_models()
        except SeedanceError as exc:
            self.log.warning("Seedance model catalogue unavailable: %s", exc)
            return exc

    def validate_request(self: Any, request: GenerationRequest) -> ModelSpec:
        """Check every rule: built-in models offline, other models against the live catalogue's entry.

        :param request: the generation.
        :return: the model spec the request was validated against.
        :raises SeedanceValidationError: a field breaks a rule.
        :raises SeedanceUnknownModelError: the model is neither built in nor listed (the message lists the
            available models, or says the catalogue was unreachable).
        """
        spec = validate_builtin(request)
        if spec is None:
            spec = spec_from_catalogue(request.model, self._catalogue_or_error())
            request.validate(spec)
        return spec

    async def avalidate_request(self: Any, request: GenerationRequest) -> ModelSpec:
        """Async :meth:`validate_request`.

        :param request: the generation.
        """
        spec = validate_builtin(request)
        if spec is None:
            spec = spec_from_catalogue(request.model, await self._acatalogue_or_error())
            request.validate(spec)
        return spec

    def estimate(self: Any, request: GenerationRequest) -> CreditEstimate:
        """Expected charge, and where its price came from.

        Precedence: the connection's ``price_table`` extra for the model (no request is made when it prices the
        request) > the live catalogue's pricing > the bundled (estimated) price table. See
        :func:`~airflow_provider_seedance.catalogue.estimate`, the one place this is decided.

        :param request: the generation.
        """
        override = self._get_settings().price_table.get(request.model)
        first = _priced_by_override(request, override)
        if first is not None:
            return first
        catalogue = self._catalogue_or_error()
        return estimate_with_catalogue(request, None if isinstance(catalogue, SeedanceError) else catalogue, override)

    def estimate_credits(self: Any, request: GenerationRequest) -> int | None:
        """Expected charge in credits (see :meth:`estimate` for where the price comes from).

        :param request: the generation.
        :return: credits, or None when no price is known for the model.
        """
        return self.estimate(request).credits  # type: ignore[no-any-return]


def _priced_by_override(request: GenerationRequest, override: Mapping[str, Any] | None) -> CreditEstimate | None:
    if override is None:
        return None
    first = request.estimate(override=override, bundled=False)
    return first if first.credits is not None else None
