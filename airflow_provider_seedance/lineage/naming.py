"""Dataset names (OpenLineage ``namespace`` + ``name``) of the media a generation reads and the video it writes.

- A media or output URL: namespace ``scheme://host[:port]``, name the path. The query string (where a
  signed URL keeps its signature), the fragment and any user info are never part of either; matrix
  parameters that look like credentials are masked (``_redact.redact_url``, the provider's one URL redaction).
- A stored video: the naming the OpenLineage provider gives an ``ObjectStoragePath``
  (``FileTransferOperator``): namespace ``path.namespace`` (``s3://bucket``, ``file``), name
  ``path.key``; the connection id of ``s3://conn_id@bucket/...`` is not part of it.

Pure Python apart from the lazy ``ObjectStoragePath`` import: used by the hook lineage too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow_provider_seedance._redact import redact_url

__all__ = ["storage_asset_uri", "storage_dataset", "url_asset_uri", "url_dataset"]


def url_dataset(url: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of an http(s) URL, without its query, fragment or user info; None if not one.

    :param url: a media URL or the vendor's output URL (possibly signed).
    """
    if not isinstance(url, str) or "://" not in url:
        return None
    try:
        # Redact first: a credential in a matrix parameter of the path (";sig=...") is masked too.
        parts = urlsplit(redact_url(url.strip()))
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host or parts.scheme.lower() not in ("http", "https"):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme.lower()}://{netloc}", parts.path or "/"


def url_asset_uri(url: str) -> str | None:
    """The URL as an Airflow asset URI: ``scheme://host[:port]/path``, no query, fragment or user info.

    :param url: a media URL (possibly signed).
    """
    named = url_dataset(url)
    return None if named is None else named[0] + named[1]


def _storage_path(uri: str) -> object | None:
    try:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        # conn_id given (as None), like FileTransferOperator and persist_video do: on Airflow 3.0 only then is
        # the "conn_id@" of the URI kept out of the bucket, and so out of the namespace.
        return ObjectStoragePath(uri, conn_id=None)
    except Exception:  # an unknown protocol, a malformed URI: fall back to plain URL parsing
        return None


def storage_dataset(uri: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a stored video, as the OpenLineage provider names an ``ObjectStoragePath``.

    :param uri: what :func:`~airflow_provider_seedance.persist.persist_video` returned
        (``file:///data/v.mp4``, ``s3://aws_default@bucket/key.mp4``).
    """
    if not isinstance(uri, str) or not uri.strip():
        return None
    uri = uri.strip()
    if "://" not in uri:
        uri = "file://" + uri
    path = _storage_path(uri)
    namespace = getattr(path, "namespace", None)
    key = getattr(path, "key", None)
    if isinstance(namespace, str) and namespace and isinstance(key, str) and key:
        return namespace, key
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    bucket = parts.hostname or ""
    name = parts.path.lstrip("/")
    if not parts.scheme or not name:
        return None
    return (f"{parts.scheme}://{bucket}" if bucket else parts.scheme), name


def storage_asset_uri(uri: str) -> str | None:
    """The stored video as an Airflow asset URI, without the connection id (``s3://bucket/key.mp4``).

    :param uri: the stored video's URI.
    """
    named = storage_dataset(uri)
    if named is None:
        return None
    namespace, name = named
    if "://" not in namespace:  # "file": a local path
        return f"{namespace}:///{name.lstrip('/')}"
    return f"{namespace}/{name.lstrip('/')}"
