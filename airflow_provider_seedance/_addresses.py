"""Which URLs and addresses the provider's HTTP clients may be pointed at, parsed as the clients parse them.

Two rules, shared by ``persist`` (output URLs and every redirect hop) and the connection's base URL:

- **One reading of a URL.** :func:`parse_http_url` reads a URL with urllib3's parser (the one requests
  connects with) and refuses what two parsers could read differently: ``\\`` (urlsplit takes
  ``http://a:1\\@b`` as host ``b``, urllib3 as host ``a``), user info, whitespace and control characters,
  an empty host, and an IPv4 address in a short or numeric form (``127.1``, ``2130706433``,
  ``0x7f.0.0.1``: the resolver reads them as ``127.0.0.1``, a reader as a name).
- **Public addresses only.** :func:`resolve_public` resolves a host and refuses it when any of its
  addresses is loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), link-local
  (169.254/16, fe80::/10: cloud metadata services live there), unspecified (``0.0.0.0``, ``::``),
  multicast, reserved or otherwise not globally routable, including IPv4-mapped/6to4/Teredo IPv6 forms
  of those. A host *named* loopback (``localhost``, ``127.0.0.1``, ``[::1]``) is the local emulator's
  case: it may resolve to loopback only. The connection is then made to the address checked
  (:mod:`~airflow_provider_seedance._sync_deadline`), so a second DNS answer cannot differ.

See docs/architecture.rst and docs/guides/persisting.rst.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from airflow_provider_seedance.models import is_loopback_host

__all__ = [
    "DisallowedAddressError",
    "UnsafeUrlError",
    "address_problem",
    "parse_http_url",
    "resolve_public",
    "url_problem",
]

# Whitespace, controls and the backslash: each is read differently by at least two URL parsers.
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")
_DOTTED_QUAD = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


class UnsafeUrlError(ValueError):
    """A URL that clients could read differently, or that names a forbidden address form."""


class DisallowedAddressError(ValueError):
    """A host that resolves to an address the provider never connects to (loopback, private, ...).

    Raised before any connection to that address is attempted. A ``ValueError``, not an ``OSError``, so
    urllib3 does not retry it and requests passes it through as it is.

    :param host: the host as written in the URL.
    :param address: the offending address.
    :param why: ``loopback``, ``private``, ``link-local``... (see :func:`address_problem`).
    """

    def __init__(self, host: str, address: str, why: str) -> None:
        self.host, self.address, self.why = host, address, why
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"{shown} is a {why} address, which is never fetched: only public addresses are")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not one unambiguous http(s) URL; None when it is. Never raises.

    :param url: any text.
    """
    try:
        parse_http_url(url)
    except UnsafeUrlError as exc:
        return str(exc)
    return None


def parse_http_url(url: str, *, allow_userinfo: bool = False) -> Url:
    """``url`` parsed by urllib3 (as requests will connect), or :class:`UnsafeUrlError`.

    :param url: an absolute http(s) URL.
    :param allow_userinfo: accept ``user:pass@`` (never for a download or a connection host).
    """
    if not isinstance(url, str) or _AMBIGUOUS.search(url):
        raise UnsafeUrlError("it contains a backslash, a space or a control character")
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise UnsafeUrlError("it is not a valid URL") from None
    if (parts.scheme or "").lower() not in ("http", "https") or not parts.host:
        raise UnsafeUrlError("it is not an absolute http(s):// URL with a host")
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if ("@" in authority or parts.auth) and not allow_userinfo:
        raise UnsafeUrlError("it carries user info (user:password@): not allowed in this URL")
    host = parts.host.strip("[]")
    if _numeric_ipv4_in_disguise(host):
        raise UnsafeUrlError(f"its host {parts.host!r} is an IPv4 address in a short or numeric form")
    return parts


def _numeric_ipv4_in_disguise(host: str) -> bool:
    # inet_aton (what getaddrinfo uses for a numeric host) reads 127.1, 2130706433 and 0x7f.1 as 127.0.0.1.
    if _DOTTED_QUAD.fullmatch(host):
        return False
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def address_problem(address: str) -> str | None:
    """What kind of non-public address ``address`` is (``loopback``, ``private``...), None if public.

    :param address: an IP address (no brackets; an IPv6 zone id is ignored).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unparseable"
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if embedded is not None and (why := address_problem(str(embedded))):
                return why  # the message shows the address: its IPv6 form is visible there
    for why, flag in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                      ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                      ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return why
    return None if ip.is_global else "non-public"


def resolve_public(host: str, port: int, *, resolver: Any = None) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` answers for ``host`` once every address is checked; raise if any is not allowed.

    Allowed: public addresses; for a host named loopback (``localhost``, ``127.0.0.1``, ``::1``: the
    local emulator) loopback addresses only.

    :param host: host name or IP literal (IPv6 without brackets).
    :param port: the port (passed to the resolver).
    :param resolver: ``socket.getaddrinfo`` by default.
    :raises DisallowedAddressError: naming the host and the address.
    :raises socket.gaierror: the name does not resolve.
    """
    answers = (resolver or socket.getaddrinfo)(host, port, 0, socket.SOCK_STREAM)
    local = is_loopback_host(host)
    for answer in answers:
        address = str(answer[4][0])
        why = address_problem(address)
        if local:
            if why != "loopback":
                raise DisallowedAddressError(host, address, why or "public (for a loopback name)")
        elif why is not None:
            raise DisallowedAddressError(host, address, why)
    return list(answers)
