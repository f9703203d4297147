"""The hook's use of the live model catalogue: a TTL cache and the lookup of a model the code does not know.

Built-in models are validated offline; only an unknown model name sends the hook to the catalogue, and a
model the catalogue does not list is refused with the list of models that are available.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, CreditEstimate, ModelSpec
from airflow_provider_seedance.errors import SeedanceError, SeedanceUnknownModelError
from airflow_provider_seedance.models import GenerationRequest

__all__ = ["CatalogueCache", "estimate_with_catalogue", "spec_from_catalogue", "validate_builtin"]


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
