"""One way to keep URL credentials out of logs: register them with Airflow's secrets masker.

Operators, the sensor and the persist code call :func:`mask_url_secrets` on every URL they may log or store
(media and webhook URLs, a signed output URL); the trigger, which uses the pure core only, masks
:func:`~airflow_provider_seedance._redact.url_secrets` itself. What counts as a URL's secret is decided in
:func:`~airflow_provider_seedance._redact.url_secrets`.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_seedance._redact import url_secrets

__all__ = ["mask_url_secrets"]


def mask_url_secrets(*values: Any) -> None:
    """Mask the secret parts of every URL in ``values`` (URLs, lists of URLs, texts holding URLs; None ignored).

    :param values: what may hold URLs.
    """
    urls: list[Any] = []
    for value in values:
        urls.extend(value if isinstance(value, (list, tuple)) else [value])
    for secret in url_secrets(urls):
        mask_secret(secret)
