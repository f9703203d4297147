"""What the emulated service refuses on the wire beyond the request model: padded strings, URL shapes the
published OpenAPI patterns do not allow."""

from __future__ import annotations

from typing import Any

from airflow_provider_seedance.emulator.openapi import MEDIA_URL_RE, WEBHOOK_URL_RE
from airflow_provider_seedance.errors import SeedanceValidationError
from airflow_provider_seedance.models import GenerationRequest

__all__ = ["check_url_shapes", "check_wire_strings"]

_ATTR_OF = {"aspectRatio": "aspect_ratio", "resolution": "resolution", "webhookUrl": "webhook_url"}


def check_wire_strings(body: Any) -> None:
    """Stricter than the request model on the wire: a blank or padded string is an error, not "unset".

    The model forgives these because Airflow templates produce them; a client that *sends* them has a bug.
    """
    if not isinstance(body, dict):
        return
    for key, attr in _ATTR_OF.items():
        value = body.get(key)
        if isinstance(value, str) and (not value.strip() or value != value.strip()):
            raise SeedanceValidationError(attr, value, "a non-blank value without surrounding spaces", api_field=key)
    urls = body.get("mediaUrls")
    if isinstance(urls, list):
        for url in urls:
            if isinstance(url, str) and url != url.strip():
                raise SeedanceValidationError("media_urls", url, "URLs without surrounding spaces",
                                              api_field="mediaUrls")


def check_url_shapes(gen: GenerationRequest) -> None:
    """URLs must also match the OpenAPI document's patterns (a plain host name, no spaces).

    The request model checks scheme, host presence and media type; the service would also refuse a
    host such as ``bad*host``. Applying the published patterns keeps document and server in agreement.
    """
    allowed = "a URL with a plain host name (letters, digits, dots, hyphens) and no spaces"
    for url in gen.media_urls or ():
        if not MEDIA_URL_RE.fullmatch(url):
            raise SeedanceValidationError("media_urls", url, allowed, api_field="mediaUrls")
    if gen.webhook_url is not None and not WEBHOOK_URL_RE.fullmatch(gen.webhook_url):
        raise SeedanceValidationError("webhook_url", gen.webhook_url, allowed, api_field="webhookUrl")
