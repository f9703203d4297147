"""Airflow's hook-level lineage: what a Seedance hook read and what ``persist_video`` wrote.

Reported to Airflow's hook lineage collector, so any lineage reader sees it, and the OpenLineage
provider uses it for tasks without ``get_openlineage_facets_*`` methods (a ``@task`` calling the hook
or ``persist_video`` itself). Media URLs become assets without their query string or user info; a
stored video becomes its object-storage URI without the connection id.

Import-cheap and never raising: the collector is looked up when a report is made, and an Airflow
without one (or any error inside it) means nothing is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from airflow_provider_seedance.lineage.naming import storage_asset_uri, url_asset_uri

__all__ = ["convert_url_asset_to_openlineage", "report_media_read", "report_persist", "report_submit"]

log = logging.getLogger(__name__)


def _collector() -> Any:
    try:
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector
    except ImportError:
        try:  # common.compat older than its lineage module: Airflow's own
            from airflow.lineage.hook import get_hook_lineage_collector  # type: ignore[no-redef]
        except ImportError:
            return None
    return get_hook_lineage_collector()


def report_media_read(context: Any, urls: Iterable[Any] | None) -> None:
    """Report media URLs as input assets read by ``context``.

    :param context: who read them (the hook), as Airflow's collector records it.
    :param urls: the URLs (possibly signed); anything else is skipped.
    """
    uris = [uri for uri in (url_asset_uri(u) for u in urls or () if isinstance(u, str)) if uri]
    if not uris:
        return
    try:
        collector = _collector()
        if collector is None:
            return
        for uri in dict.fromkeys(uris):
            collector.add_input_asset(context=context, uri=uri)
    except Exception:  # lineage must never fail a generation
        log.debug("Could not report hook lineage", exc_info=True)


def report_submit(hook: Any, request: Any) -> None:
    """Report the reference media of a submitted generation as inputs of ``hook``.

    :param hook: the :class:`~airflow_provider_seedance.hooks.seedance.SeedanceHook` that submitted.
    :param request: the :class:`~airflow_provider_seedance.models.GenerationRequest` (text-to-video: nothing).
    """
    report_media_read(hook, getattr(request, "media_urls", None))


def report_persist(context: Any, uri: str, source_url: str | None = None) -> None:
    """Report a stored video as an output asset (and, when given, the URL it was copied from as input).

    :param context: who wrote it (a hook, an operator, or any object standing for the writer).
    :param uri: the stored video's URI, as ``persist_video`` returns it.
    :param source_url: the output URL it was downloaded from (possibly signed).
    """
    target = storage_asset_uri(uri)
    if source_url is not None:
        report_media_read(context, [source_url])
    if target is None:
        return
    try:
        collector = _collector()
        if collector is not None:
            collector.add_output_asset(context=context, uri=target)
    except Exception:
        log.debug("Could not report hook lineage", exc_info=True)


def convert_url_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """OpenLineage dataset of an ``http(s)://`` asset (``to_openlineage_converter`` of the provider info).

    Lets the OpenLineage provider translate the media assets :func:`report_submit` collects; the name
    is the one :mod:`~airflow_provider_seedance.lineage.naming` gives (never the query string).

    :param asset: an Airflow asset with an http(s) URI.
    :param lineage_context: unused (the collector's context).
    """
    from openlineage.client.event_v2 import Dataset

    from airflow_provider_seedance.lineage.naming import url_dataset

    named = url_dataset(asset.uri)
    if named is None:
        raise ValueError("not an http(s) URL asset")
    return Dataset(namespace=named[0], name=named[1])
