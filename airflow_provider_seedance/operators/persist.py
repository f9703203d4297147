"""Saving a finished video: SeedancePersistVideoOperator (sensor / fire-and-forget path), and the same work for
``SeedanceGenerateOperator(persist_to=...)`` (:func:`check_persist_to` before anything is paid for,
:func:`persist_generated_video` once the job succeeded).

Use the operator after a :class:`SeedanceJobSensor`, or after any task whose XCom holds an output URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_seedance.errors import SeedanceValidationError
from airflow_provider_seedance.persist import (
    DEFAULT_ALLOWED_CONTENT_TYPES,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    VIDEO_URI_XCOM_KEY,
    SeedancePersistError,
    annotate_video_outlets,
    destination_problem,
    persist_video,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_seedance.models import JobResult

__all__ = ["VIDEO_URI_XCOM_KEY", "SeedancePersistVideoOperator", "check_persist_to", "persist_generated_video"]


def check_persist_to(persist_to: str) -> None:
    """Refuse a ``persist_to`` that cannot take the video, before anything is paid for.

    Not a directory (no trailing ``/``; locally, not an existing directory), and, on the local file system, a
    path whose nearest existing directory the worker can create files in. Object stores (``s3://``...) get only
    the trailing-slash check: more would need their credentials and a request.

    :param persist_to: the operator's ``persist_to``.
    """
    problem = destination_problem(persist_to, check_writable=True)
    if problem is not None:
        why, example = problem
        raise SeedanceValidationError(
            "persist_to", persist_to,
            f"a file path (URI such as s3://bucket/videos/clip.mp4, or a local path) the worker can "
            f"write, e.g. {example!r}; this one fails because {why}. Nothing was submitted",
        )


def persist_generated_video(context: Any, result: JobResult, persist_to: str, *, conn_id: str | None,
                            max_bytes: int | None, resumable: bool, outlets: Any, log: Any) -> str:
    """Save a succeeded generation's video to ``persist_to``; return the stored URI (also XCom ``video_uri``).

    :param context: the task's context.
    :param result: the succeeded job (``output_url`` set).
    :param persist_to: where to save it.
    :param conn_id: the store's connection, if not in the URI.
    :param max_bytes: refuse bodies larger than this (None: the default).
    :param resumable: whether a retry finds the job again (said in the error when saving fails).
    :param outlets: the task's outlets (each Asset's event gets the URI).
    :param log: the operator's logger.
    """
    try:
        uri = persist_video(result.output_url or "", persist_to, conn_id=conn_id or None, field="persist_to",
                            max_bytes=max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES)
    except SeedancePersistError as exc:
        # The job is not marked delivered yet (that happens after this returns): a retry finds it.
        retry = ("a retry of this task saves the same video again without paying for a new generation "
                 "(while the vendor's output URL is still valid)" if resumable else
                 "with resumable=False a retry submits (and pays for) a new generation")
        raise SeedancePersistError(
            f"Seedance generation {result.request_id} succeeded, but saving its video to persist_to="
            f"{persist_to!r} failed: {str(exc).rstrip('.')}. Fix persist_to (or the store it points at); {retry}",
            reason=exc.reason,
        ) from exc
    log.info("Saved the video of %s to %s", result.request_id, uri)
    context["ti"].xcom_push(key=VIDEO_URI_XCOM_KEY, value=uri)
    annotate_video_outlets(context, outlets, uri, result.request_id)
    return uri


class SeedancePersistVideoOperator(BaseOperator):
    """Stream the video at ``source_url`` into ``destination`` (any Airflow object storage location).

    The stored URI is the return value (and XCom ``video_uri``). Each Asset in ``outlets`` gets it in
    its event's ``extra`` (``{"video_uri": ..., "request_id": ...}``), so a DAG scheduled on the
    Asset knows which file is new. See :func:`~airflow_provider_seedance.persist.persist_video` for
    the streaming, limits and the atomic write.

    :param source_url: the output URL (templated), e.g. ``generate.output`` or
        ``"{{ ti.xcom_pull(task_ids='wait', key='output_url') }}"``.
    :param destination: target file URI or local path (templated), e.g.
        ``"s3://aws_default@videos/{{ ds }}/{{ run_id }}.mp4"``.
    :param storage_conn_id: Airflow connection of the destination store, if not in the URI.
    :param request_id: the generation's request id (templated), recorded in Asset event extras.
    :param max_bytes: refuse bodies larger than this.
    :param allowed_content_types: accepted media types (None: anything but text/HTML/JSON).
    :param chunk_size: bytes per read/write.
    :param download_timeout: seconds to connect and to wait for each chunk.
    """

    template_fields: Sequence[str] = ("source_url", "destination", "request_id", "storage_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        source_url: Any,
        destination: Any,
        storage_conn_id: str | None = None,
        request_id: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allowed_content_types: Sequence[str] | None = DEFAULT_ALLOWED_CONTENT_TYPES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        download_timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_url = source_url
        self.destination = destination
        self.storage_conn_id = storage_conn_id
        self.request_id = request_id
        self.max_bytes = max_bytes
        self.allowed_content_types = tuple(allowed_content_types) if allowed_content_types is not None else None
        self.chunk_size = chunk_size
        self.download_timeout = download_timeout

    def execute(self, context: Any) -> str:
        """Download and store the video; return its URI.

        :param context: the task context.
        """
        uri = persist_video(
            self.source_url,
            self.destination,
            max_bytes=self.max_bytes,
            allowed_content_types=self.allowed_content_types,
            chunk_size=self.chunk_size,
            timeout=self.download_timeout,
            conn_id=self.storage_conn_id or None,
        )
        context["ti"].xcom_push(key=VIDEO_URI_XCOM_KEY, value=uri)
        annotate_video_outlets(context, self.outlets, uri, self.request_id)
        return uri

    # -- OpenLineage (called by the OpenLineage provider's listener; imported lazily) ---------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The source URL (without its query) as input, the destination as output."""
        from airflow_provider_seedance.lineage.openlineage import persist_lineage

        return persist_lineage(self, None, "start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """As on start: the video written at ``destination``.

        :param task_instance: the finished task instance (unused).
        """
        from airflow_provider_seedance.lineage.openlineage import persist_lineage

        return persist_lineage(self, task_instance, "complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """As on start (the intended destination).

        :param task_instance: the failed task instance.
        """
        from airflow_provider_seedance.lineage.openlineage import persist_lineage

        return persist_lineage(self, task_instance, "failure")
