"""Stream a finished video into Airflow object storage (the vendor's output URL expires).

:func:`persist_video` copies the file at an output URL to any :class:`ObjectStoragePath` (``file://``, ``s3://``,
``gs://``...), in chunks, through a hidden temporary name moved onto the final one, so no half file is ever
under the final name. The download is bounded in bytes and time, follows at most ``MAX_REDIRECTS`` (5)
redirects, each checked as the source URL is, connects to public addresses only (a host *named* loopback, the
local emulator, excepted) and never logs a URL's secrets. The guarantees, one by one:
``docs/guides/persisting.rst`` ("Guarantees"); its layer's rules: ``docs/architecture.rst``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import requests

from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance._sync_deadline import DeadlineAdapter, call_deadline
from airflow_provider_seedance.persist._base import (
    DEFAULT_ALLOWED_CONTENT_TYPES,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    MAX_REDIRECTS,
    PROGRESS_BYTES,
    VIDEO_URI_XCOM_KEY,
    SeedancePersistError,
    mask_url_secrets,
)
from airflow_provider_seedance.persist._destination import (
    LOCAL_PROTOCOLS,
    as_storage_path,
    destination_problem,
    remove_quietly,
    write,
)
from airflow_provider_seedance.persist._download import (
    bounded_chunks,
    check_content_type,
    check_redirect,
    check_source,
    content_length,
    iter_body,
    open_download,
)

__all__ = [
    "DEFAULT_ALLOWED_CONTENT_TYPES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_REDIRECTS",
    "PROGRESS_BYTES",
    "VIDEO_URI_XCOM_KEY",
    "SeedancePersistError",
    "annotate_video_outlets",
    "check_redirect",
    "destination_problem",
    "persist_video",
]

log = logging.getLogger(__name__)


def _seconds(name: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise SeedancePersistError(f"Invalid {name}: {value!r}. Allowed: a positive number of seconds",
                                   reason="invalid")
    return float(value)


def persist_video(
    source_url: str,
    destination: Any,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_content_types: Sequence[str] | None = DEFAULT_ALLOWED_CONTENT_TYPES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = DEFAULT_DEADLINE,
    conn_id: str | None = None,
    session: requests.Session | None = None,
    field: str = "destination",
) -> str:
    """Stream the video at ``source_url`` to ``destination`` and return the stored URI.

    :param source_url: the output URL of a finished generation (https; http only for localhost).
    :param destination: target file: an ``ObjectStoragePath``, a URI (``s3://bucket/key.mp4``,
        ``s3://conn_id@bucket/key.mp4``, ``file:///abs/path.mp4``) or a local path.
    :param max_bytes: refuse bodies larger than this (checked up front and while streaming).
    :param allowed_content_types: accepted media types; None accepts anything but text/HTML/JSON.
    :param chunk_size: at most this many bytes are read and written at a time (bounds memory use).
    :param timeout: seconds to connect and get the answer's headers, all redirects together; then the
        longest the body may take to deliver each ``PROGRESS_BYTES`` (64 KiB).
    :param deadline: seconds for the whole download (None: no bound but ``timeout``'s).
    :param conn_id: Airflow connection for the *destination* store (e.g. ``aws_default``);
        overrides one given in the URI. The source needs none: output URLs are public or signed.
    :param session: a ``requests.Session`` whose headers, auth, cookies, proxies and TLS settings are used
        (not its adapters: every connection is checked); a fresh one otherwise.
    :param field: what the caller calls the destination in its messages (``persist_to`` for the
        generate operator).
    :raises SeedancePersistError: on any failure; the destination is then untouched and no temp file
        is left. A destination ending with ``/`` or naming an existing local directory is refused
        (``reason="invalid"``) before anything is downloaded.
    :return: the stored file's URI, e.g. ``file:///data/videos/req_1.mp4``.
    """
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        raise SeedancePersistError(f"Invalid max_bytes: {max_bytes!r}. Allowed: a positive integer", reason="invalid")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise SeedancePersistError(f"Invalid chunk_size: {chunk_size!r}. Allowed: a positive integer", reason="invalid")
    seconds = _seconds("timeout", timeout) or DEFAULT_TIMEOUT
    limit = _seconds("deadline", deadline, optional=True)
    url = check_source(source_url)
    shown_url = redact_url(url)
    mask_url_secrets(url)
    target = as_storage_path(destination, conn_id)
    problem = destination_problem(destination)
    if problem is not None:
        why, example = problem
        raise SeedancePersistError(
            f"Invalid {field} {str(destination).strip()!r}: {why}. Allowed: a file path (not a directory), "
            f"e.g. {example!r}",
            reason="invalid",
        )
    fs = target.fs
    local = (target.protocol or "") in LOCAL_PROTOCOLS
    final_path: str = target.path
    parent, _, name = final_path.rpartition("/")
    temp_name = f".{name}.{uuid.uuid4().hex[:12]}.part"
    temp_path = f"{parent}/{temp_name}" if parent else temp_name
    log.info("Persisting video %s to %s", shown_url, target)

    own_session = session is None
    http = session or requests.Session()
    adapter = DeadlineAdapter(public_only=True)
    temp_created = False
    try:
        # One deadline for connect + every hop's headers; then moved on by each piece of the body.
        with call_deadline(seconds, limit=limit) as watch:
            response, shown_url = open_download(http, adapter, url, seconds, watch)
            with response:
                if not 200 <= response.status_code < 300:
                    raise SeedancePersistError(
                        f"Downloading {shown_url} failed with HTTP {response.status_code}", reason="http"
                    )
                check_content_type(response.headers.get("Content-Type"), allowed_content_types, shown_url)
                expected = content_length(response)
                if expected is not None and expected > max_bytes:
                    raise SeedancePersistError(
                        f"{shown_url} is {expected} bytes, more than max_bytes={max_bytes}", reason="too_large"
                    )
                body = iter_body(response, chunk_size, shown_url, watch, seconds, limit)
                chunks = bounded_chunks(body, max_bytes, expected, shown_url)
                temp_created = True
                try:
                    if local:
                        fs.makedirs(parent or "/", exist_ok=True)
                    size = write(fs, temp_path, chunks, local=local)
                except SeedancePersistError:
                    raise
                except Exception as exc:  # any store's own error type (OSError, botocore, google.api_core...)
                    raise SeedancePersistError(
                        f"Writing {field} {target} failed: {type(exc).__name__}: {exc}", reason="storage"
                    ) from exc
        try:
            if local:
                # rename(2): atomic, and it fails on a directory (fs.mv would move the temp *into* it).
                os.replace(temp_path, final_path)
            else:
                fs.mv(temp_path, final_path)
        except Exception as exc:
            raise SeedancePersistError(
                f"Moving the download onto {field} {target} failed: {type(exc).__name__}: {exc}", reason="storage"
            ) from exc
        temp_created = False
    finally:
        if temp_created:
            remove_quietly(fs, temp_path, f"{target.protocol or 'file'}://{temp_path}")
        adapter.close()
        if own_session:
            http.close()
    uri = str(target)
    log.info("Stored %d bytes at %s", size, uri)
    from airflow_provider_seedance.lineage.hook_lineage import report_persist

    report_persist(target, uri, source_url=url)  # Airflow's hook lineage: what was read and written
    return uri


def annotate_video_outlets(context: Any, outlets: Iterable[Any] | None, uri: str, request_id: str | None) -> None:
    """Put the stored video's URI (and request id) in the event extra of every Asset outlet.

    A DAG scheduled on the Asset then knows which file is new without listing the store.

    :param context: the task context (its ``outlet_events`` accessor is used when present).
    :param outlets: the task's outlets.
    :param uri: the stored file's URI.
    :param request_id: the generation's request id, when known.
    """
    outlet_events = context.get("outlet_events")
    if outlet_events is None or not outlets:
        return
    from airflow.providers.common.compat.sdk import Asset

    extra: dict[str, Any] = {"video_uri": uri}
    if request_id:
        extra["request_id"] = str(request_id)
    for outlet in outlets:
        if isinstance(outlet, Asset):
            outlet_events[outlet].extra.update(extra)
