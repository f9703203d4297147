"""OpenLineage metadata (``OperatorLineage``) of the Seedance operators and sensor.

Called only by their ``get_openlineage_facets_on_start/complete/failure`` methods, i.e. by the
OpenLineage provider's listener; importing this module needs that provider.

What a run reports:

- **inputs**: each reference media URL (``https://host`` + path; see :mod:`.naming`), or for the
  persist operator the URL it copies from;
- **outputs**: the stored video (``persist_to`` / the persist operator's destination), named the way
  the OpenLineage provider names an ``ObjectStoragePath``; otherwise the vendor's output URL, without
  its query string;
- **run facets**: ``seedanceGeneration`` (:class:`~.facets.SeedanceGenerationRunFacet`) and
  ``externalQuery`` (the request id at the API's base URL: the way back to the vendor's job).

Everything comes from the task's own process, never from XCom, a connection or the API: the listener
may call these methods in a forked child where talking to the supervisor can hang. The operator keeps
what it pushes to XCom (request id, credits, output URL) and the vendor's status it saw; a task resumed
after a deferral, in another process, learns its job from the trigger's event and the job record
(:mod:`.facts`); a retry that resumes an earlier try's job records it when it takes it over. The
stored video's name comes from the rendered ``persist_to`` / ``destination``, the same location
``persist_video`` writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import external_query_run

from airflow_provider_seedance.lineage.facets import FACET_KEY, SeedanceGenerationRunFacet
from airflow_provider_seedance.lineage.naming import storage_dataset, url_dataset

if TYPE_CHECKING:
    from airflow_provider_seedance.models import JobResult
    from airflow_provider_seedance.operators.persist import SeedancePersistVideoOperator
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
    from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

__all__ = ["generate_lineage", "persist_lineage", "sensor_lineage"]

log = logging.getLogger(__name__)

START, COMPLETE, FAILURE = "start", "complete", "failure"
#: ``source`` of the ``externalQuery`` facet: the Seedance API (the connection is in ``seedanceGeneration``).
EXTERNAL_SOURCE = "seedance"


# -- small readers ----------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _media_urls(value: Any) -> tuple[str, ...]:
    from airflow_provider_seedance.models import GenerationRequest

    try:
        # The request model's own coercion: a JSON list string, one URL, a list, None.
        return tuple(GenerationRequest(prompt="", media_urls=value).media_urls or ())
    except Exception:
        return ()


def _duration(value: Any) -> int | None:
    from airflow_provider_seedance.models import GenerationRequest

    try:
        return GenerationRequest(prompt="", duration=value).duration
    except Exception:
        return None


def _url_datasets(urls: Sequence[Any]) -> list[Dataset]:
    datasets: dict[tuple[str, str], Dataset] = {}
    for url in urls:
        named = url_dataset(url) if isinstance(url, str) else None
        if named is not None:
            datasets.setdefault(named, Dataset(namespace=named[0], name=named[1]))
    return list(datasets.values())


def _storage_datasets(uri: Any) -> list[Dataset]:
    if not isinstance(uri, str) or not uri.strip():
        return []
    text = uri.strip()
    if "://" not in text:  # a bare path means the local file system, as persist_video reads it
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    named = storage_dataset(text)
    return [] if named is None else [Dataset(namespace=named[0], name=named[1])]


def _run_facets(facet: SeedanceGenerationRunFacet) -> dict[str, Any]:
    facets: dict[str, Any] = {FACET_KEY: facet}
    if facet.requestId:
        # The way back to the vendor's job: GET /generations/{requestId} on the facet's connection.
        facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=facet.requestId, source=EXTERNAL_SOURCE
        )
    return facets


# -- the operators ---------------------------------------------------------------------------------


def generate_lineage(operator: SeedanceGenerateOperator, task_instance: Any, phase: str) -> OperatorLineage:
    """Lineage of a :class:`~airflow_provider_seedance.operators.seedance.SeedanceGenerateOperator` run.

    :param operator: the task (its template fields are rendered when the listener calls).
    :param task_instance: the running task instance (unused: everything comes from this process).
    :param phase: ``start``, ``complete`` or ``failure``.
    """
    media = _media_urls(operator.media_urls)
    facts: dict[str, Any] = getattr(operator, "_lineage_facts", None) or {}
    status = _str(facts.get("vendor_status"))
    if status is None and phase == COMPLETE and operator.wait_for_completion:
        status = "succeeded"  # the task succeeds only with a succeeded job's result
    outputs: list[Dataset] = []
    if operator.persist_to:
        outputs = _storage_datasets(operator.persist_to)
    elif phase == COMPLETE:
        outputs = _url_datasets([facts.get("output_url")])
    facet = SeedanceGenerationRunFacet(
        requestId=_str(facts.get("request_id")),
        model=_str(operator.model),
        generationType="image-to-video" if media else "text-to-video",
        duration=_duration(operator.duration),
        resolution=_str(operator.resolution),
        aspectRatio=_str(operator.aspect_ratio),
        mediaCount=len(media),
        creditsEstimated=_int(facts.get("credits_estimated")),
        creditsCharged=_int(facts.get("credits_charged")),
        vendorStatus=status,
        persisted=bool(operator.persist_to),
        connectionId=_str(operator.seedance_conn_id),
    )
    return OperatorLineage(inputs=_url_datasets(media), outputs=outputs, run_facets=_run_facets(facet))


def sensor_lineage(sensor: SeedanceJobSensor, task_instance: Any, phase: str) -> OperatorLineage:
    """Lineage of a :class:`~airflow_provider_seedance.sensors.seedance.SeedanceJobSensor` run.

    The sensor submits nothing: its run reports the job it waited for (model, duration and charge as
    the API echoed them in the last status the sensor read) and, on success, the vendor's output URL.

    :param sensor: the task.
    :param task_instance: the running task instance (unused).
    :param phase: ``start``, ``complete`` or ``failure``.
    """
    job: JobResult | None = getattr(sensor, "_lineage_job", None) if phase != START else None
    request_id = _str(sensor.request_id.strip() if isinstance(sensor.request_id, str) else None)
    outputs = _url_datasets([job.output_url]) if phase == COMPLETE and job is not None else []
    facet = SeedanceGenerationRunFacet(
        requestId=request_id or (job.request_id if job is not None else None),
        model=job.model if job is not None else None,
        duration=job.duration if job is not None else None,
        aspectRatio=job.aspect_ratio if job is not None else None,
        creditsCharged=job.credits_charged if job is not None else None,
        vendorStatus=(job.raw_status or job.status.value) if job is not None else None,
        persisted=False,
        connectionId=_str(sensor.seedance_conn_id),
    )
    return OperatorLineage(outputs=outputs, run_facets=_run_facets(facet))


def persist_lineage(operator: SeedancePersistVideoOperator, task_instance: Any, phase: str) -> OperatorLineage:
    """Lineage of a :class:`~airflow_provider_seedance.operators.persist.SeedancePersistVideoOperator` run.

    :param operator: the task.
    :param task_instance: the running task instance.
    :param phase: ``start``, ``complete`` or ``failure``.
    """
    source = operator.source_url if isinstance(operator.source_url, str) else None
    request_id = _str(operator.request_id.strip() if isinstance(operator.request_id, str) else None)
    # No externalQuery facet: this task talks to the video's host, not to the Seedance API.
    facets: dict[str, Any] = {}
    if request_id:
        facets[FACET_KEY] = SeedanceGenerationRunFacet(requestId=request_id, persisted=True)
    return OperatorLineage(
        inputs=_url_datasets([source] if source else []),
        outputs=_storage_datasets(operator.destination),
        run_facets=facets,
    )
