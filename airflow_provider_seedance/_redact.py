"""Credentials inside URLs, hidden before a URL reaches a log line or an exception text.

Media, webhook and output URLs often carry credentials: ``https://user:pass@host/...`` or a signed
URL's query (``?X-Amz-Signature=...``, ``?token=...``, ``?sig=...``). A signed URL *is* a credential
for whoever reads it, so the provider never logs one as is: every log line and exception text that
shows a URL goes through :func:`redact_url` / :func:`redact_text` (the one URL redaction of the
provider: hook, operator, sensor, trigger and :mod:`~airflow_provider_seedance.persist` alike), and the
secret parts are registered with Airflow's secrets masker (:func:`url_secrets`), so rendered template
fields and any other log line mask them too. The URL itself is untouched where it is *data* (the
request body, XCom ``output_url``).

What is hidden:

- user info (``***:***@host``, or ``***@host`` when a token is sent as user name);
- the value of a query (or matrix) parameter whose *name* says credential (:func:`is_sensitive_param`);
- the value of any parameter, whatever its name, that *looks* like one: a run of
  24 or more letters, digits and ``+/=_.~-`` with at least one letter and one digit (an HMAC, a JWT, a
  base64 signature under a name this list does not know, such as a CDN's own);
- the whole fragment (never sent to a server; OAuth puts tokens there).

Other parameters stay readable (``X-Amz-Expires``, ``X-Amz-Date``: they tell why a download failed).

Pure Python: no Airflow, no HTTP client (``errors.py`` uses it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus

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


# A credential by its shape, whatever its name: long, unbroken, letters and digits mixed. Dates, ids such
# as "req_123", sizes and words stay visible.
_CREDENTIAL_RUN = re.compile(r"[A-Za-z0-9+/=_.~-]{24,}")


def _looks_like_credential(value: str) -> bool:
    decoded = unquote(value)
    return any(
        any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        for run in _CREDENTIAL_RUN.findall(decoded)
    )


def _is_secret_param(name: str, value: str) -> bool:
    return bool(value) and (is_sensitive_param(unquote_plus(name)) or _looks_like_credential(value))


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
        return f"{m.group(1)}{m.group(2)}={MASK}" if _is_secret_param(m.group(2), m.group(3)) else m.group(0)

    return _PARAM.sub(one, text)


def _mask_path_and_query(tail: str) -> str:
    # The fragment is never sent to a server and may hold a token (OAuth): hide it whole.
    before, sep, fragment = tail.partition("#")
    return _mask_params(before) + (f"#{MASK}" if sep and fragment else sep)


def _authority_end(rest: str) -> int:
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def redact_url(url: str) -> str:
    """The URL with its credentials replaced by ``***``: user info, secret query values, the fragment.

    Works on the raw text (nothing else of the URL is changed) and never raises; a string without
    ``://`` is returned as it is.

    :param url: any string.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    cut = _authority_end(rest)
    return f"{scheme}://{_redact_netloc(rest[:cut])}{_mask_path_and_query(rest[cut:])}"


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
    """The secret parts of one or more URLs (what :func:`redact_url` hides), for the secrets masker.

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
        tail = rest[cut:]
        raw.extend(m.group(3) for m in _PARAM.finditer(tail) if _is_secret_param(m.group(2), m.group(3)))
        fragment = tail.partition("#")[2]
        # Registered whole only when it is a credential itself: a media fragment ("t=10") masked in every
        # log line would help nobody.
        if _looks_like_credential(fragment):
            raw.append(fragment)
    variants = [form for v in raw if v for form in (v, unquote_plus(v), quote(unquote_plus(v), safe=""))]
    return list(dict.fromkeys(v for v in variants if v))
