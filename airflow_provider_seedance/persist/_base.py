"""What the parts of :mod:`airflow_provider_seedance.persist` share: defaults, the error, masking URL secrets."""

from __future__ import annotations

from airflow_provider_seedance.errors import SeedanceError

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
#: Seconds to connect and get the answer's headers (all redirects together), and that the body may go
#: without delivering :data:`PROGRESS_BYTES`.
DEFAULT_TIMEOUT = 60.0
#: Seconds for the whole download, however steadily it progresses (2 GiB at 600 KB/s).
DEFAULT_DEADLINE = 3600.0
#: The body must deliver this much (or its end) within every ``timeout``: a drip is a stall.
PROGRESS_BYTES = 64 * 1024
#: Redirects followed from the source URL to the video (a signed URL to its CDN edge needs one or two).
MAX_REDIRECTS = 5


class SeedancePersistError(SeedanceError):
    """The video could not be stored; nothing was left under the destination name.

    :param message: what went wrong (URLs in it are already redacted).
    :param reason: short machine-readable cause: ``invalid`` (an argument), ``url`` (the source URL, or
        the address it resolves to), ``redirect`` (a redirect hop or its address refused, or too many),
        ``http``, ``transport``, ``timeout`` (the answer or the body too slow), ``content_type``,
        ``too_large``, ``truncated`` or ``storage``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


def mask_url_secrets(url: str) -> None:
    """Register ``url``'s tokens with Airflow's secrets masker (e.g. an XCom rendered in a log line).

    :func:`airflow_provider_seedance._masking.mask_url_secrets`, imported when called: persist loads no Airflow
    module at import time.
    """
    from airflow_provider_seedance._masking import mask_url_secrets as mask

    mask(url)
