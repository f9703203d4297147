"""An Airflow ``seedance`` connection -> the settings the hook needs (base URL, key, timeout, proxies, TLS).

Also the connection form of Airflow < 3.2 (newer versions read ``conn-fields`` from the provider info),
derived from the same :data:`~airflow_provider_seedance.CONN_FIELDS`, so the two cannot drift.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from requests.utils import select_proxy

from airflow_provider_seedance import CONN_FIELDS, get_provider_info
from airflow_provider_seedance._redact import redact_text
from airflow_provider_seedance.catalogue import pricing_problem
from airflow_provider_seedance.errors import SeedanceConnectionError
from airflow_provider_seedance.models import is_loopback_host

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ConnectionSettings",
    "SeedanceConnectionError",
    "connection_form_widgets",
    "form_field_specs",
    "resolve_base_url",
    "settings_from_connection",
    "ui_field_behaviour",
]

DEFAULT_BASE_URL = "https://www.seedance2.ink"
DEFAULT_TIMEOUT = 30.0
CONN_TYPE = "seedance"

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a request needs from the connection. The key is left out of ``repr``.

    :param conn_id: the Airflow connection id (for messages).
    :param base_url: scheme://host[:port][/prefix], no trailing slash.
    :param api_key: the bearer token.
    :param timeout: seconds allowed for one HTTP request.
    :param proxies: requests-style proxy mapping (``{"https": "http://proxy:3128"}``); left out of ``repr``
        (a proxy URL may carry a password).
    :param verify_ssl: verify TLS certificates.
    :param price_table: the ``price_table`` extra: model id -> pricing object (same shape as the catalogue's
        ``pricing``), which wins over the live catalogue and the bundled table in estimates.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    proxies: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    verify_ssl: bool = True
    price_table: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, hash=False)

    @property
    def proxy_mapping(self) -> dict[str, str]:
        """The proxies as the dict ``requests`` takes."""
        return dict(self.proxies)

    @property
    def proxy_url(self) -> str | None:
        """The one proxy aiohttp should use for the base URL, chosen the way ``requests`` chooses."""
        return select_proxy(self.base_url, self.proxy_mapping) if self.proxies else None

    def session_key(self) -> tuple[Any, ...]:
        """What distinguishes one shared async session from another (never the key itself)."""
        return (self.base_url, self.verify_ssl, self.proxy_url)


def _fail(conn_id: str, what: str) -> SeedanceConnectionError:
    # Messages quote the rejected value, which may be a proxy URL with a password in it.
    return SeedanceConnectionError(redact_text(f"Seedance connection {conn_id!r}: {what}"))


def resolve_base_url(host: str | None, port: int | None = None, *, conn_id: str = "seedance_default") -> str:
    """Base URL from the connection's host (and port) field.

    A host with a scheme is used as is (the port field is added only if the URL has none). A bare host gets
    ``https://``, except loopback hosts (the local emulator) which get ``http://``. Empty -> the vendor's URL.

    :param host: the connection's host field.
    :param port: the connection's port field.
    :param conn_id: for error messages.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        try:
            ipaddress.IPv6Address(text)
            text = f"[{text}]"  # a bare IPv6 literal must be bracketed inside a URL
        except ValueError:
            pass
        try:
            hostname = urlsplit("//" + text).hostname
        except ValueError:
            raise _fail(conn_id, f"host {host!r} is not a valid host name or URL") from None
        text = ("http://" if is_loopback_host(hostname) else "https://") + text
    try:
        parts = urlsplit(text)
        has_port = parts.port is not None
    except ValueError:
        raise _fail(conn_id, f"host {host!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(conn_id, f"host {host!r} must be an http(s) URL or a host name, e.g. {DEFAULT_BASE_URL}")
    netloc = parts.netloc
    if port and not has_port:
        netloc = f"{netloc}:{int(port)}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _timeout(conn_id: str, value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIMEOUT
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise _fail(conn_id, f"extra 'timeout' must be a positive number of seconds, got {value!r}")
    return seconds


def _proxies(conn_id: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            example = '{"https": "http://proxy:3128"}'
            raise _fail(conn_id, f"extra 'proxies' must be a JSON object, e.g. {example}") from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(conn_id, f"extra 'proxies' must map scheme to proxy URL (strings), got {value!r}")
    return tuple(sorted((k, v) for k, v in value.items() if v))


def _price_table(conn_id: str, value: Any) -> dict[str, dict[str, Any]]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    example = '{"seedance-2.0": {"perSecond": {"720p": 8}, "referenceMediaSurcharge": 24}}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _fail(conn_id, f"extra 'price_table' must be a JSON object, e.g. {example}") from None
    if not isinstance(value, Mapping):
        raise _fail(conn_id, f"extra 'price_table' must map model ids to pricing objects, e.g. {example}")
    table: dict[str, dict[str, Any]] = {}
    for model, pricing in value.items():
        problem = pricing_problem(pricing)
        if not isinstance(model, str) or not model.strip() or problem is not None:
            # Refused, not skipped: a typo must not silently fall back to a lower price.
            raise _fail(conn_id, f"extra 'price_table' entry {model!r} {problem or 'needs a model id'}, e.g. {example}")
        table[model.strip()] = json.loads(json.dumps(pricing))
    return table


def _verify(conn_id: str, value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _fail(conn_id, f"extra 'verify_ssl' must be true or false, got {value!r}")


def settings_from_connection(conn: Any, conn_id: str, *, timeout: float | None = None) -> ConnectionSettings:
    """Read and check a connection object (Airflow's ``Connection``, any version).

    :param conn: the connection.
    :param conn_id: its id (for messages).
    :param timeout: the hook's own timeout, which wins over the connection's extra.
    """
    api_key = (conn.password or "").strip()
    if not api_key:
        raise _fail(
            conn_id,
            "no API key. Put your Seedance API key (sd2_...) in the connection's password field "
            "(labelled 'API key' in the UI).",
        )
    if any(ord(c) < 32 or ord(c) == 127 or ord(c) > 255 for c in api_key):
        # It goes into an HTTP header: a line break would inject headers, and HTTP headers are latin-1.
        raise _fail(conn_id, "the API key (password field) contains a control or non-latin-1 character")
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    return ConnectionSettings(
        conn_id=conn_id,
        base_url=resolve_base_url(conn.host, conn.port, conn_id=conn_id),
        api_key=api_key,
        timeout=_timeout(conn_id, timeout if timeout is not None else extra.get("timeout")),
        proxies=_proxies(conn_id, extra.get("proxies")),
        verify_ssl=_verify(conn_id, extra.get("verify_ssl")),
        price_table=_price_table(conn_id, extra.get("price_table")),
    )


def ui_field_behaviour() -> dict[str, Any]:
    """The form's hidden/relabelled fields for Airflow < 3.2, from the provider info (one source)."""
    conn = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE)
    behaviour = conn["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def form_field_specs() -> list[dict[str, Any]]:
    """The extra fields of the connection form: name, kind (boolean/string), label, description, default."""
    specs = []
    for name, definition in CONN_FIELDS.items():
        schema = definition.get("schema", {})
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        specs.append(
            {
                "name": name,
                "kind": "boolean" if "boolean" in types else "string",
                "label": definition.get("label", name),
                "description": definition.get("description", ""),
                "default": schema.get("default"),
            }
        )
    return specs


def connection_form_widgets() -> dict[str, Any]:
    """WTForms fields for Airflow < 3.2 (needs wtforms, which those versions' UI brings)."""
    from wtforms import BooleanField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for spec in form_field_specs():
        if spec["kind"] == "boolean":
            widgets[spec["name"]] = BooleanField(
                spec["label"], description=spec["description"], default=bool(spec["default"])
            )
        else:
            # Numbers and JSON are typed as text: the hook parses and checks them with clear errors.
            widgets[spec["name"]] = StringField(spec["label"], description=spec["description"], validators=[Optional()])
    return widgets
