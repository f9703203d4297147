"""Credentials inside URLs, hidden before a URL reaches a log line or an exception text.

Media, webhook and output URLs often carry credentials: ``https://user:pass@host/...`` or a signed
URL's query (``?X-Amz-Signature=...``, ``?token=...``, ``?sig=...``). A signed URL *is* a credential
for whoever reads it, so the provider never logs one as is: every log line and exception text that
shows a URL goes through :func:`redact_url` / :func:`redact_text`, and the operator, sensor and trigger
register the secret parts with Airflow's secrets masker (:func:`url_secrets`), so rendered template
fields and any other log line mask them too. The URL itself is untouched where it is *data* (the
request body, XCom ``output_url``).

Pure Python: no Airflow, no HTTP client (``errors.py`` uses it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

__all__ = ["MASK", "is_sensitive_param", "redact_text", "redact_url", "url_secrets"]

MASK = "***"

# A query parameter is sensitive when one of the words of its name is one of these (names are split on
# "-", "_" and "."): X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, X-Goog-Signature, sig (Azure
# SAS), token, access_token, api_key, apikey, password, AWSAccessKeyId, ...
_SENSITIVE_WORDS = frozenset({
    "token", "signature", "sig", "secret", "password", "passwd", "pwd", "pass", "key", "apikey", "credential",
    "credentials", "auth", "authorization", "session", "sas", "awsaccesskeyid", "googleaccessid", "jwt",
    "accesstoken", "accesskey", "secretkey", "sessiontoken", "privatekey",
})
# Any http(s) URL in free text; stops at whitespace, quotes and angle brackets (reprs, log lines, HTML).
_URL_IN_TEXT = re.compile(r"""https?://[^\s'"<>\\`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def is_sensitive_param(name: str) -> bool:
    """Whether a query parameter's value is a credential (by its name).

    :param name: the parameter name, e.g. ``X-Amz-Signature``.
    """
    words = [w for w in re.split(r"[-_.\s]+", name.lower()) if w]
    return any(w in _SENSITIVE_WORDS for w in words) or name.lower().replace("-", "").replace("_", "") in (
        _SENSITIVE_WORDS
    )


def _redact_netloc(netloc: str) -> str:
    userinfo, sep, hostport = netloc.rpartition("@")
    if not sep:
        return netloc
    # The user name can be the secret itself (a token sent as user name): hide both parts.
    return f"{MASK}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"


# One "name=value" of a query, a fragment or matrix parameters. Matched on the raw text rather than on a
# parsed URL on purpose: it also finds "?sig=..." after a nested "?", in a URL urlsplit rejects, or in a
# URL a log line cut short.
# A value stops at "?" too, so "?a=x?token=..." still shows the token as a parameter of its own.
_PARAM = re.compile(r"""([?&#;])([^=&#?;\s'"<>]+)=([^&#;?\s'"<>]*)""")


def _mask_params(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)}={MASK}" if m.group(3) and is_sensitive_param(unquote_plus(m.group(2))) \
            else m.group(0)

    return _PARAM.sub(one, text)


def _authority_end(rest: str) -> int:
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def redact_url(url: str) -> str:
    """The URL with its credentials replaced by ``***``: user info, and sensitive query/fragment values.

    Works on the raw text (nothing else of the URL is changed) and never raises; a string without
    ``://`` is returned as it is.

    :param url: any string.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    cut = _authority_end(rest)
    return f"{scheme}://{_redact_netloc(rest[:cut])}{_mask_params(rest[cut:])}"


def redact_text(text: str) -> str:
    """Every URL inside ``text`` passed through :func:`redact_url`, and any stray ``?token=...`` masked too.

    For log lines, exception texts and reprs.

    :param text: any text.
    """
    if not isinstance(text, str):
        return text
    if "://" in text:

        def one(match: re.Match[str]) -> str:
            url = match.group(0)
            stripped = url.rstrip(_TRAILING)
            return redact_url(stripped) + url[len(stripped):]

        text = _URL_IN_TEXT.sub(one, text)
    return _mask_params(text) if "=" in text else text


def url_secrets(urls: Iterable[object] | object) -> list[str]:
    """The secret parts of one or more URLs (password, sensitive query values), for the secrets masker.

    Each value is given raw, percent-decoded and percent-encoded, since a log may show any form. A user
    name is a secret only when there is no password (a token sent as user name): masking every "admin"
    in every log would help nobody.

    :param urls: a URL or a text holding URLs, or an iterable of them; other values are ignored.
    """
    items = [urls] if isinstance(urls, str) else list(urls) if isinstance(urls, Iterable) else []
    raw: list[str] = []
    # A templated field may hold a JSON list as text: take every URL inside each string.
    texts = [item for item in items if isinstance(item, str)]
    for url in (m.group(0).rstrip(_TRAILING) for text in texts for m in _URL_IN_TEXT.finditer(text)):
        rest = url.partition("://")[2]
        cut = _authority_end(rest)
        userinfo, sep, _host = rest[:cut].rpartition("@")
        if sep:
            user, has_password, password = userinfo.partition(":")
            raw.append(password if has_password else user)
        raw.extend(m.group(3) for m in _PARAM.finditer(rest[cut:])
                   if m.group(3) and is_sensitive_param(unquote_plus(m.group(2))))
    variants = [form for v in raw if v for form in (v, unquote_plus(v), quote(unquote_plus(v), safe=""))]
    return list(dict.fromkeys(v for v in variants if v))
