"""Stream a finished video into Airflow object storage (the vendor's output URL expires).

:func:`persist_video` copies the file at the output URL to any :class:`ObjectStoragePath`
(``file://``, ``s3://``, ``gs://``, ``memory://``...), through Airflow's object storage layer:

- **Streaming.** The body is read in ``chunk_size`` pieces with ``requests``' ``iter_content`` and
  written as it arrives; memory use is a few chunks, whatever the video's size.
- **Limits.** ``Content-Length`` is checked before reading, and the running byte count while
  streaming (a server may omit or understate the header). A body shorter than its announced length
  is a failed download, not a video.
- **Content type.** The ``Content-Type`` must be one of ``allowed_content_types``; HTML/JSON/text
  (a login page, a CDN error page) is always refused, and so is a body whose first bytes are
  ``<`` or ``{`` whatever its header says (an MP4 never starts with a box that large).
- **No half files.** Data goes to a hidden temp name beside the target
  (``.<name>.<random>.part``), which is then moved onto the final name. On a local file system the
  move is ``rename(2)``: atomic, a reader sees the old file or the new one. Object stores have no
  rename: fsspec's ``mv`` copies the temp object to the final key and deletes it; the final object
  still appears whole at once (S3/GCS make an object visible only when its write completes), so a
  partial video is never under the final name. On any failure the temp is deleted; if even that
  fails (e.g. credentials lost), a ``*.part`` object may remain: a lifecycle rule on ``*.part``
  removes such leftovers.
- **Redirects checked hop by hop.** Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and
  every hop must pass the rules of the first URL: https (http only for localhost/loopback, as for the
  source URL), never from https down to http, and never to this machine's loopback unless the source URL
  was on loopback itself. A signed CDN URL that answers ``302 Location: http://169.254.169.254/...`` (a
  cloud metadata address) is refused before anything is fetched from there.
- **No secrets in logs.** Signed URLs carry tokens in their query string: logs and error messages
  show every URL through the provider's one redaction (``_redact.redact_url``: user info, secret query
  values and the fragment hidden), and those values are registered with
  Airflow's secrets masker, for the source URL and every redirect hop.

The same destination always gets the same content, so a retried task simply overwrites it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from airflow_provider_seedance._redact import redact_url, url_secrets
from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.models import is_loopback_host

__all__ = [
    "DEFAULT_ALLOWED_CONTENT_TYPES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_REDIRECTS",
    "VIDEO_URI_XCOM_KEY",
    "SeedancePersistError",
    "annotate_video_outlets",
    "destination_problem",
    "persist_video",
]

log = logging.getLogger(__name__)

#: XCom key of a saved video's URI (persist operator, and the generate operator's ``persist_to``).
VIDEO_URI_XCOM_KEY = "video_uri"
#: 2 GiB: far above a 15 s 1080p clip, low enough to stop a runaway body filling a disk.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Video containers the vendor serves, plus the generic binary types many object stores default to.
DEFAULT_ALLOWED_CONTENT_TYPES: tuple[str, ...] = (
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "application/mp4",
    "application/octet-stream",
    "binary/octet-stream",
)
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Seconds to connect, and to wait for each chunk (not for the whole file).
DEFAULT_TIMEOUT = 60.0
#: Redirects followed from the source URL to the video (a signed URL to its CDN edge needs one or two).
MAX_REDIRECTS = 5

# Never a video, even if a caller allows it by mistake: these are error/login pages.
_NEVER_VIDEO = ("text/", "application/json", "application/xml", "application/xhtml", "application/problem")
_LOCAL_PROTOCOLS = ("", "file", "local")


class SeedancePersistError(SeedanceError):
    """The video could not be stored; nothing was left under the destination name.

    :param message: what went wrong (URLs in it are already redacted).
    :param reason: short machine-readable cause: ``invalid`` (an argument), ``url`` (the source URL),
        ``redirect`` (a redirect hop refused, or too many), ``http``, ``transport``, ``content_type``,
        ``too_large``, ``truncated`` or ``storage``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


def _mask_url_secrets(url: str) -> None:
    # The masker then hides the tokens wherever they show up (e.g. an XCom rendered in a log line).
    secrets = url_secrets(url)
    if not secrets:
        return
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - Airflow is always there in a task
        return
    for value in secrets:
        mask_secret(value)


def _as_storage_path(destination: Any, conn_id: str | None) -> Any:
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
        return str(destination.path) if (destination.protocol or "") in _LOCAL_PROTOCOLS else None
    text = (os.fspath(destination) if isinstance(destination, os.PathLike) else str(destination)).strip()
    if "://" not in text:
        return os.path.abspath(os.path.expanduser(text))
    scheme, _, rest = text.partition("://")
    if scheme.lower() not in _LOCAL_PROTOCOLS:
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


def _check_source(source_url: Any) -> str:
    if not isinstance(source_url, str) or not source_url.strip():
        raise SeedancePersistError(f"Invalid source_url: {source_url!r}. Allowed: an https:// URL", reason="url")
    url = source_url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise SeedancePersistError("Invalid source_url: not a URL", reason="url") from None
    if not host or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not is_loopback_host(host)):
        raise SeedancePersistError(
            f"Invalid source_url {redact_url(url)}. Allowed: an https:// URL (http:// only for localhost)",
            reason="url",
        )
    return url


def check_redirect(location: str, current_url: str, source_url: str, hop: int) -> str:
    """The absolute URL of redirect hop ``hop`` when the source URL's rules allow it; raise otherwise.

    The rules of the source URL (https, or http on loopback), plus two that stop a redirect from reaching
    what the source URL could not: no step down from https to http anywhere on the way, and a loopback
    host only when the source URL and the redirecting URL are on loopback too (a remote server must not
    send this worker to its own local services).

    :param location: the ``Location`` header (may be relative).
    :param current_url: the URL that answered with the redirect.
    :param source_url: the URL the download started from (already checked).
    :param hop: 1 for the first redirect.
    :raises SeedancePersistError: ``reason="redirect"``, naming the hop and the redacted target.
    """
    target = urljoin(current_url, location)
    shown = f"Redirect hop {hop} from {redact_url(current_url)} to {redact_url(target)}"
    try:
        parts = urlsplit(target)
        host = parts.hostname
        earlier = [urlsplit(source_url), urlsplit(current_url)]
    except ValueError:
        raise SeedancePersistError(f"{shown} refused: not a URL", reason="redirect") from None
    if not host or parts.scheme not in ("https", "http"):
        raise SeedancePersistError(f"{shown} refused: only https:// is followed", reason="redirect")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise SeedancePersistError(f"{shown} refused: plain http:// is followed only to localhost", reason="redirect")
    if parts.scheme == "http" and any(p.scheme == "https" for p in earlier):
        raise SeedancePersistError(f"{shown} refused: a step down from https to http", reason="redirect")
    if is_loopback_host(host) and not all(is_loopback_host(p.hostname) for p in earlier):
        raise SeedancePersistError(f"{shown} refused: a remote URL may not redirect to this machine", reason="redirect")
    return target


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _check_content_type(header: str | None, allowed: Sequence[str] | None, shown_url: str) -> None:
    media_type = _media_type(header)
    if media_type.startswith(_NEVER_VIDEO) or media_type.endswith(("+json", "+xml")):
        raise SeedancePersistError(
            f"{shown_url} returned {media_type!r}, an error or web page, not a video", reason="content_type"
        )
    if allowed is None:
        return
    if media_type not in {_media_type(a) for a in allowed}:
        raise SeedancePersistError(
            f"{shown_url} returned Content-Type {media_type or '(none)'!r}. Allowed: {', '.join(allowed)}",
            reason="content_type",
        )


def _bounded_chunks(chunks: Iterable[bytes], max_bytes: int, expected: int | None, shown_url: str) -> Iterator[bytes]:
    received = 0
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        if first:
            first = False
            if chunk.lstrip()[:1] in (b"<", b"{"):
                raise SeedancePersistError(
                    f"{shown_url} sent a text/HTML body, not a video (the Content-Type header was wrong)",
                    reason="content_type",
                )
        received += len(chunk)
        if received > max_bytes:
            raise SeedancePersistError(
                f"{shown_url} sent more than max_bytes={max_bytes}; download stopped", reason="too_large"
            )
        yield chunk
    if expected is not None and received != expected:
        raise SeedancePersistError(
            f"{shown_url} ended after {received} of {expected} bytes (connection dropped)", reason="truncated"
        )
    if received == 0:
        raise SeedancePersistError(f"{shown_url} returned an empty body", reason="truncated")


def _write(fs: Any, path: str, chunks: Iterable[bytes], *, local: bool) -> int:
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


def _remove_quietly(fs: Any, path: str, shown: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # cleanup must not mask the original failure
        log.warning("Could not delete the temporary file %s; remove it by hand", shown, exc_info=True)


def persist_video(
    source_url: str,
    destination: Any,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_content_types: Sequence[str] | None = DEFAULT_ALLOWED_CONTENT_TYPES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
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
    :param chunk_size: bytes read and written at a time (bounds memory use).
    :param timeout: seconds to connect and to wait for each chunk.
    :param conn_id: Airflow connection for the *destination* store (e.g. ``aws_default``);
        overrides one given in the URI. The source needs none: output URLs are public or signed.
    :param session: a ``requests.Session`` to reuse; a private one is used and closed otherwise.
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
    url = _check_source(source_url)
    shown_url = redact_url(url)
    _mask_url_secrets(url)
    target = _as_storage_path(destination, conn_id)
    problem = destination_problem(destination)
    if problem is not None:
        why, example = problem
        raise SeedancePersistError(
            f"Invalid {field} {str(destination).strip()!r}: {why}. Allowed: a file path (not a directory), "
            f"e.g. {example!r}",
            reason="invalid",
        )
    fs = target.fs
    local = (target.protocol or "") in _LOCAL_PROTOCOLS
    final_path: str = target.path
    parent, _, name = final_path.rpartition("/")
    temp_name = f".{name}.{uuid.uuid4().hex[:12]}.part"
    temp_path = f"{parent}/{temp_name}" if parent else temp_name
    log.info("Persisting video %s to %s", shown_url, target)

    own_session = session is None
    http = session or requests.Session()
    temp_created = False
    try:
        response, shown_url = _get_following_redirects(http, url, timeout)
        with response:
            if not 200 <= response.status_code < 300:
                raise SeedancePersistError(
                    f"Downloading {shown_url} failed with HTTP {response.status_code}", reason="http"
                )
            _check_content_type(response.headers.get("Content-Type"), allowed_content_types, shown_url)
            expected = _content_length(response)
            if expected is not None and expected > max_bytes:
                raise SeedancePersistError(
                    f"{shown_url} is {expected} bytes, more than max_bytes={max_bytes}", reason="too_large"
                )
            chunks = _bounded_chunks(_iter_body(response, chunk_size, shown_url), max_bytes, expected, shown_url)
            temp_created = True
            try:
                if local:
                    fs.makedirs(parent or "/", exist_ok=True)
                size = _write(fs, temp_path, chunks, local=local)
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
            _remove_quietly(fs, temp_path, f"{target.protocol or 'file'}://{temp_path}")
        if own_session:
            http.close()
    uri = str(target)
    log.info("Stored %d bytes at %s", size, uri)
    from airflow_provider_seedance.lineage.hook_lineage import report_persist

    report_persist(target, uri, source_url=url)  # Airflow's hook lineage: what was read and written
    return uri


def _get_following_redirects(http: requests.Session, url: str, timeout: float) -> tuple[requests.Response, str]:
    """GET ``url``, following at most :data:`MAX_REDIRECTS` redirects, each checked before it is requested.

    :return: the final (streaming) response and its redacted URL.
    """
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        shown = redact_url(current)
        try:
            # By hand: requests would follow any Location, to any scheme and host, up to 30 times.
            response = http.get(
                current,
                stream=True,
                timeout=(timeout, timeout),
                allow_redirects=False,
                headers={"Accept": "video/*, application/octet-stream;q=0.5", "Accept-Encoding": "identity"},
            )
        except requests.RequestException as exc:
            # `from None`: the original message contains the full (signed) URL.
            raise SeedancePersistError(
                f"Could not download {shown}: {type(exc).__name__}", reason="transport"
            ) from None
        location = http.get_redirect_target(response)
        if location is None:
            return response, shown
        response.close()  # a redirect's body is never read
        if hop == MAX_REDIRECTS:
            raise SeedancePersistError(
                f"Redirect hop {hop + 1} from {shown}: more than {MAX_REDIRECTS} redirects, not followed",
                reason="redirect",
            )
        target = check_redirect(location, current, url, hop + 1)
        _mask_url_secrets(target)
        current = target
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _content_length(response: requests.Response) -> int | None:
    if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        return None  # the header counts encoded bytes; we count decoded ones
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def _iter_body(response: requests.Response, chunk_size: int, shown_url: str) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=chunk_size)
    except requests.RequestException as exc:
        raise SeedancePersistError(
            f"Download of {shown_url} broke off: {type(exc).__name__}", reason="truncated"
        ) from None


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
