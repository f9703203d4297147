"""Fetching the video: the source URL and every redirect hop checked, public addresses, bounded in bytes and time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import urljoin

import requests

from airflow_provider_seedance._addresses import DisallowedAddressError, UnsafeUrlError, parse_http_url
from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance._sync_deadline import CallDeadline, CallDeadlineExceeded, DeadlineAdapter
from airflow_provider_seedance.models import is_loopback_host
from airflow_provider_seedance.persist._base import (
    MAX_REDIRECTS,
    PROGRESS_BYTES,
    SeedancePersistError,
    mask_url_secrets,
)

# Never a video, even if a caller allows it by mistake: these are error/login pages.
_NEVER_VIDEO = ("text/", "application/json", "application/xml", "application/xhtml", "application/problem")
# Credentials of the source URL's host: never sent on to another host a redirect names.
_CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
_ACCEPT = {"Accept": "video/*, application/octet-stream;q=0.5", "Accept-Encoding": "identity"}


def check_source(source_url: object) -> str:
    """The source URL, stripped, if it is one unambiguous https URL (http for loopback); raise otherwise."""
    if not isinstance(source_url, str) or not source_url.strip():
        raise SeedancePersistError(f"Invalid source_url: {source_url!r}. Allowed: an https:// URL", reason="url")
    url = source_url.strip()
    allowed = "Allowed: an https:// URL (http:// only for localhost) without user info"
    try:
        parts = parse_http_url(url)
    except UnsafeUrlError as exc:
        raise SeedancePersistError(f"Invalid source_url {redact_url(url)}: {exc}. {allowed}", reason="url") from None
    if parts.scheme == "http" and not is_loopback_host(parts.host):
        raise SeedancePersistError(f"Invalid source_url {redact_url(url)}. {allowed}", reason="url")
    return url


def check_redirect(location: str, current_url: str, source_url: str, hop: int) -> str:
    """The absolute URL of redirect hop ``hop`` when the source URL's rules allow it; raise otherwise.

    The rules of the source URL (one unambiguous https URL, or http on loopback), plus two that stop a
    redirect from reaching what the source URL could not: no step down from https to http anywhere on the
    way, and a loopback host only when the source URL and the redirecting URL are on loopback too (a remote
    server must not send this worker to its own local services). The address a hop's host resolves to is
    checked when it is connected to (public only, see ``_addresses.py``).

    :param location: the ``Location`` header (may be relative).
    :param current_url: the URL that answered with the redirect.
    :param source_url: the URL the download started from (already checked).
    :param hop: 1 for the first redirect.
    :raises SeedancePersistError: ``reason="redirect"``, naming the hop and the redacted target.
    """
    target = urljoin(current_url, location)
    shown = f"Redirect hop {hop} from {redact_url(current_url)} to {redact_url(target)}"
    try:
        parts = parse_http_url(target)
        earlier = [parse_http_url(source_url), parse_http_url(current_url)]
    except UnsafeUrlError as exc:
        why = "only https:// is followed" if "absolute http" in str(exc) else str(exc)
        raise SeedancePersistError(f"{shown} refused: {why}", reason="redirect") from None
    if parts.scheme == "http" and not is_loopback_host(parts.host):
        raise SeedancePersistError(f"{shown} refused: plain http:// is followed only to localhost", reason="redirect")
    if parts.scheme == "http" and any(p.scheme == "https" for p in earlier):
        raise SeedancePersistError(f"{shown} refused: a step down from https to http", reason="redirect")
    if is_loopback_host(parts.host) and not all(is_loopback_host(p.host) for p in earlier):
        raise SeedancePersistError(f"{shown} refused: a remote URL may not redirect to this machine", reason="redirect")
    return target


def _origin(url: str) -> tuple[str | None, str | None, int | None]:
    parts = parse_http_url(url)
    return parts.scheme, (parts.host or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def open_download(
    http: requests.Session, adapter: DeadlineAdapter, url: str, timeout: float, deadline: CallDeadline
) -> tuple[requests.Response, str]:
    """GET ``url`` through ``adapter`` (a public-only :class:`DeadlineAdapter`), following at most :data:`MAX_REDIRECTS`
    redirects, each checked before it is requested.

    The session gives headers, auth, cookies, proxies and TLS settings; its adapters are not used. Once a
    hop leaves the source URL's host, ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` are dropped.

    :return: the final (streaming) response and its redacted URL.
    """
    current, hop, crossed = url, 0, False
    while True:
        shown = redact_url(current)
        response = _get(http, adapter, current, timeout, shown, hop, crossed, deadline)
        try:
            location = http.get_redirect_target(response)
        except UnicodeDecodeError:
            # requests decodes Location as UTF-8; its error held the header whole (a signed URL) in its args.
            response.close()
            raise SeedancePersistError(f"Redirect hop {hop + 1} from {shown} refused: its Location is not UTF-8",
                                       reason="redirect") from None
        if location is None:
            return response, shown
        response.close()  # a redirect's body is never read
        if hop == MAX_REDIRECTS:
            raise SeedancePersistError(
                f"Redirect hop {hop + 1} from {shown}: more than {MAX_REDIRECTS} redirects, not followed",
                reason="redirect",
            )
        hop += 1
        current = check_redirect(location, current, url, hop)
        mask_url_secrets(current)
        crossed = crossed or _origin(current) != _origin(url)


def _get(http: requests.Session, adapter: DeadlineAdapter, url: str, timeout: float, shown: str, hop: int,
         crossed: bool, deadline: CallDeadline) -> requests.Response:
    # By hand: requests would follow any Location, to any scheme and host, up to 30 times.
    prepared = http.prepare_request(requests.Request("GET", url, headers=_ACCEPT))
    if crossed:
        for name in _CREDENTIAL_HEADERS:
            prepared.headers.pop(name, None)
    settings = http.merge_environment_settings(url, {}, True, None, None)
    try:
        return adapter.send(prepared, timeout=(timeout, timeout), **settings)
    except DisallowedAddressError as exc:
        what = f"Redirect hop {hop} to {shown} refused" if hop else f"Invalid source_url {shown}"
        raise SeedancePersistError(f"{what}: {exc}", reason="redirect" if hop else "url") from None
    except CallDeadlineExceeded:
        raise SeedancePersistError(
            f"{shown} did not answer within timeout={deadline.seconds:g} s (connect, redirects and headers "
            "together)", reason="timeout") from None
    except requests.RequestException as exc:
        # `from None`: the original message contains the full (signed) URL.
        raise SeedancePersistError(f"Could not download {shown}: {type(exc).__name__}", reason="transport") from None


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def check_content_type(header: str | None, allowed: Sequence[str] | None, shown_url: str) -> None:
    """Refuse error/web pages always, and any type not in ``allowed`` (None: anything else)."""
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


def bounded_chunks(chunks: Iterable[bytes], max_bytes: int, expected: int | None, shown_url: str) -> Iterator[bytes]:
    """``chunks``, refused once over ``max_bytes``, if HTML/JSON-looking, or shorter than ``expected``."""
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


def content_length(response: requests.Response) -> int | None:
    """The announced body length in decoded bytes, when the answer gives one that can be trusted."""
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


def iter_body(response: requests.Response, chunk_size: int, shown_url: str, deadline: CallDeadline,
              timeout: float, limit: float | None) -> Iterator[bytes]:
    """The body in pieces of at most ``chunk_size``; each :data:`PROGRESS_BYTES` must come within ``timeout``,
    all of it within ``limit`` (the deadline is moved on at each piece)."""
    try:
        for piece in response.iter_content(chunk_size=min(chunk_size, PROGRESS_BYTES)):
            deadline.postpone()
            yield piece
        if deadline.expired:  # a body read to the connection's close ends "cleanly" when it is shut down
            raise requests.exceptions.ReadTimeout
    except requests.RequestException as exc:
        if deadline.expired:
            whole = f" (deadline={limit:g} s for the whole download)" if limit is not None else ""
            raise SeedancePersistError(
                f"Download of {shown_url} stalled: less than {PROGRESS_BYTES // 1024} KiB in timeout={timeout:g} s, "
                f"or too slow overall{whole}", reason="timeout") from None
        raise SeedancePersistError(
            f"Download of {shown_url} broke off: {type(exc).__name__}", reason="truncated"
        ) from None
