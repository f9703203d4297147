"""Where a video may be written, and writing it: a file (never a directory) in any object store."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from typing import Any

from airflow_provider_seedance.persist._base import SeedancePersistError

log = logging.getLogger("airflow_provider_seedance.persist")

LOCAL_PROTOCOLS = ("", "file", "local")


def as_storage_path(destination: Any, conn_id: str | None) -> Any:
    """``destination`` as an ``ObjectStoragePath`` (a bare path is made an absolute ``file://`` URI)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        return ObjectStoragePath(str(destination), conn_id=conn_id) if conn_id else destination
    text = os.fspath(destination) if isinstance(destination, os.PathLike) else destination
    if not isinstance(text, str) or not text.strip():
        raise SeedancePersistError(f"Invalid destination: {destination!r}", reason="invalid")
    text = text.strip()
    if "://" not in text:
        # A bare path means the local file system; make it absolute so the URI returned is too.
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    return ObjectStoragePath(text, conn_id=conn_id)


def _example_file(text: str) -> str:
    return text.rstrip("/" + os.sep) + "/video.mp4"


def _local_path(destination: Any) -> str | None:
    """The local file system path ``destination`` names, or None for an object store."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        return str(destination.path) if (destination.protocol or "") in LOCAL_PROTOCOLS else None
    text = (os.fspath(destination) if isinstance(destination, os.PathLike) else str(destination)).strip()
    if "://" not in text:
        return os.path.abspath(os.path.expanduser(text))
    scheme, _, rest = text.partition("://")
    if scheme.lower() not in LOCAL_PROTOCOLS:
        return None
    return "/" + rest.partition("/")[2]  # file:///abs/path (or file://localhost/abs/path)


def destination_problem(destination: Any, *, check_writable: bool = False) -> tuple[str, str] | None:
    """Why ``destination`` cannot receive a video file, with a corrected example; None when it can.

    Refused everywhere: a destination ending with ``/`` (it names a directory). On the local file system
    (a plain path, ``file://``) also an existing directory, and with ``check_writable`` a nearest existing
    parent that is not a directory or cannot be written to (checked by creating and dropping an unnamed
    temp file there, which works for root too). Object stores (``s3://``...) are not checked further:
    that would need their credentials and a request, and a "directory" there is only a key prefix.

    :param destination: a URI, local path or ``ObjectStoragePath``.
    :param check_writable: also check that the file could be created (local destinations only).
    :return: ``(problem, example)``, e.g. ``("it is an existing directory", "/data/videos/video.mp4")``.
    """
    text = os.fspath(destination) if isinstance(destination, os.PathLike) else destination
    if isinstance(text, str) and text.strip().endswith(("/", os.sep)):
        return "it ends with '/', so it names a directory", _example_file(text.strip())
    path = _local_path(destination)
    if path is None:
        return None
    if os.path.isdir(path):
        return "it is an existing directory", _example_file(str(destination).strip())
    if not check_writable:
        return None
    parent = os.path.dirname(path)
    while parent and not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{parent} is a file, not a directory", "/data/videos/video.mp4"
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".seedance-write-check-"):
            pass
    except OSError as exc:
        return (f"the worker cannot create files in {parent}, the nearest existing directory "
                f"({type(exc).__name__}: {exc.strerror or exc})"), "/data/videos/video.mp4"
    return None


def write(fs: Any, path: str, chunks: Iterable[bytes], *, local: bool) -> int:
    """Write ``chunks`` to ``path`` on ``fs``; return the byte count (fsync'ed on a local disk)."""
    written = 0
    with fs.open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            written += len(chunk)
        if local:
            # Data on disk before the rename makes it visible: a crash never exposes an empty video.
            handle.flush()
            try:
                os.fsync(handle.fileno())
            except (AttributeError, OSError, ValueError):
                pass
    return written


def remove_quietly(fs: Any, path: str, shown: str) -> None:
    """Delete a temp file; a failure is logged, never raised (it must not mask the original one)."""
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:
        log.warning("Could not delete the temporary file %s; remove it by hand", shown, exc_info=True)
