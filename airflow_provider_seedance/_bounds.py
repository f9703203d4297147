"""Bounds on what a vendor answer may carry: whole numbers in a range, text capped, output URLs http(s).

A broken or hostile server can send anything valid JSON allows: a 400-digit integer (``float()`` of it
raises ``OverflowError``), a 4 MiB error message full of URLs (redacting it blocked an event loop for
seconds), ``file:///etc/passwd`` as the video's URL. What the pure core keeps from an answer passes
through these first; see "Hostile answers" in ``docs/guides/reliability.rst``.

Pure Python, standard library only: ``errors``, ``catalogue`` and ``models`` all use it.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MAX_CREDITS",
    "MAX_DURATION_SECONDS",
    "MAX_URL_LENGTH",
    "MAX_VENDOR_TEXT",
    "bounded_int",
    "cap_text",
    "http_url_problem",
    "is_number",
    "shown_value",
]

#: No generation costs a billion credits: a larger (or negative) charge is a broken answer, never a price.
MAX_CREDITS = 10**9
#: A day: no video lasts longer (the vendor's longest is 15 s).
MAX_DURATION_SECONDS = 24 * 3600
#: Characters of one vendor message kept (cut BEFORE redaction, so the redaction's cost is bounded too).
MAX_VENDOR_TEXT = 1024
#: A signed CDN URL is a few hundred characters; 16 KiB leaves room for any real one.
MAX_URL_LENGTH = 16 * 1024

_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\\ud800-\udfff]")
# What no UTF-8 encoder takes (a lone surrogate: JSON allows "\ud83d", a JS server cutting an emoji in two sends
# it) and what a JSON column refuses (NUL): either in a kept string made Airflow's triggerer drop the event.
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")
# The last word of a cut text, when it is a URL: cut inside "user:pass@" or a signature, the redaction
# would no longer recognise what to hide, so a cut URL is dropped rather than shown in part.
_CUT_URL = re.compile(r"\S*://\S*\Z")


def is_number(value: Any) -> bool:
    """True for a JSON number (int or float, not bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def bounded_int(value: Any, low: int, high: int) -> int | None:
    """``value`` as an int when it is a whole number from ``low`` to ``high``; None for anything else.

    Never converts an int to float (``float(10**400)`` raises), so any JSON value is answered.

    :param value: a decoded JSON value.
    :param low: smallest accepted.
    :param high: largest accepted.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if low <= value <= high else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and low <= value <= high:
        return int(value)
    return None


def cap_text(text: str, limit: int = MAX_VENDOR_TEXT) -> str:
    """``text`` cut to at most ``limit`` characters (ending ``...`` when cut); a URL cut in two is dropped.

    Lone surrogates and NUL become U+FFFD: the text must survive UTF-8 (Airflow's msgpack channel, log files)
    and a JSON column.

    :param text: a vendor string.
    :param limit: most characters kept (>= 3).
    """
    if len(text) > limit:
        head = text[: limit - 3]
        if not text[limit - 3].isspace():
            cut = _CUT_URL.search(head)
            if cut is not None:
                head = head[: cut.start()]
        text = head + "..."
    # After the cut, so a 4 MiB message costs no more than a 1 KB one.
    return _UNENCODABLE.sub("\ufffd", text) if not text.isascii() or "\x00" in text else text


def shown_value(value: Any, limit: int = 60) -> str:
    """A short repr of a vendor value for an error message (a huge int is described, not printed).

    :param value: any decoded JSON value.
    :param limit: most characters.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        # repr() of it may raise (Python caps int-to-text conversion at 4300 digits) and says nothing useful.
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if isinstance(value, str):
        return repr(cap_text(value, limit))
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    try:
        return cap_text(repr(value), limit)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is no usable http(s) URL (``file:``, ``javascript:``, ``s3:``, no host...); None when it is.

    Parsed as the HTTP clients parse it: one with a backslash, a space or a control character is refused
    rather than guessed at.

    :param url: a URL from an answer.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    if _BAD_URL_CHARS.search(url):
        return "it contains a backslash, a space or a control character"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "it is not a URL"
    if parts.scheme not in ("http", "https"):
        return f"its scheme is {cap_text(parts.scheme, 20)!r}, not http(s)" if parts.scheme else "it has no scheme"
    if not host:
        return "it has no host"
    return None
