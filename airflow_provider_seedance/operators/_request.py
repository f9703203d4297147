"""The operator's request: literal fields checked when the DAG is parsed, the whole request built when it runs.

A field written as a literal (no Jinja ``{{``/``{%``, no XCom reference) is checked in the operator's
``__init__``, so a typo such as ``resolution="720"`` is a DAG import error naming the field and its allowed
values, found without a worker or a network call. Only rules that need no catalogue lookup run then: a model
that is not built in gets its ranges checked when the task runs. Templated fields are checked when the task
runs, after rendering (``docs/architecture.rst``, "The road of one generation").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_seedance.budget import credit_setting
from airflow_provider_seedance.catalogue import BUILTIN_MODELS, ModelSpec
from airflow_provider_seedance.models import API_FIELDS, GenerationRequest
from airflow_provider_seedance.operators._lineage import lineage_of, with_lineage

__all__ = ["build_request", "check_literal_fields", "is_literal"]

_TEMPLATE_MARKERS = ("{{", "{%")
#: Stands in for a templated model or prompt in the parse-time check (only model-free rules then apply).
_PLACEHOLDER = "templated"


def is_literal(value: Any) -> bool:
    """True for a value Airflow will not render: plain JSON-like data holding no Jinja markup.

    :param value: an operator argument.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return not any(marker in value for marker in _TEMPLATE_MARKERS)
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_literal(item) for key, item in value.items())
    return False  # an XComArg, a mapped argument, an object Airflow resolves later


def check_literal_fields(fields: Mapping[str, Any]) -> None:
    """Apply every rule that needs no catalogue to the fields given as literals; raise on the first bad one.

    :param fields: the operator's request fields (``API_FIELDS`` names) and credit settings.
    :raises SeedanceValidationError: naming the field and what it may be.
    """
    literal = {name: value for name, value in fields.items() if is_literal(value)}
    for name in ("max_credits", "run_budget_credits"):
        credit_setting(name, literal.get(name))
    kwargs = {name: literal[name] for name in API_FIELDS if name in literal}
    model = kwargs.get("model", _PLACEHOLDER)
    spec = BUILTIN_MODELS.get(model) if isinstance(model, str) else None
    if spec is None and isinstance(model, str) and model.strip():
        # Not built in (or templated): its ranges are in the vendor's catalogue, checked when the task runs.
        spec = ModelSpec(model_id=model)
    kwargs["model"] = model
    kwargs.setdefault("prompt", _PLACEHOLDER)
    GenerationRequest(**kwargs).validate(spec)


def build_request(fields: Mapping[str, Any], context: Mapping[str, Any], log: Any) -> GenerationRequest:
    """The request from the rendered fields, with Airflow lineage in its metadata (not validated yet).

    :param fields: the rendered request fields (``API_FIELDS`` names).
    :param context: the task's context.
    :param log: the operator's logger.
    """
    # The model's own coercion (JSON string -> dict, errors naming ``metadata``) runs first, so the lineage is
    # merged into a real dict.
    user_metadata = GenerationRequest(prompt="", metadata=fields.get("metadata")).metadata
    request = GenerationRequest(**{**fields, "metadata": with_lineage(user_metadata, lineage_of(context))})
    if request.media_urls is None:
        log.info("media_urls not given: text-to-video")
    elif not request.media_urls:
        # Often a template that rendered empty by mistake: make it visible.
        log.info("no media URLs: text-to-video (media_urls rendered empty)")
    return request
