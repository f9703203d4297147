"""The connection test: one GET of a made-up request id, read for what it says about the host and the key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance.errors import (
    SeedanceAuthError,
    SeedanceError,
    SeedanceNotFoundError,
    SeedanceTransportError,
)

__all__ = ["probe_connection"]


def probe_connection(hook: Any, get_status: Callable[[str], Any]) -> tuple[bool, str]:
    """Ask for the status of a made-up request id (one GET, no retries) and say what the answer means.

    The API checks the key before it looks the id up, so **404** means the key was accepted (success),
    **401/403** that it was rejected, a connection failure that the host cannot be reached, and anything else
    (including a 2xx for an id that cannot exist, typical of a wrong host) is reported with its details.

    :param hook: the Seedance hook (its connection settings).
    :param get_status: sends the status GET for an id, without retries.
    """
    try:
        settings = hook._get_settings()
    except Exception as exc:
        return False, str(exc)
    base = redact_url(settings.base_url)
    try:
        get_status(f"airflow-connection-test-{uuid.uuid4().hex}")
    except SeedanceNotFoundError:
        return True, (f"Connected to {base}: API key accepted (a made-up request id returned 404; "
                      "no job was created, no credits were spent).")
    except SeedanceAuthError as exc:
        return False, f"API key rejected by {base} (HTTP {exc.status_code}): {exc.message}"
    except SeedanceTransportError as exc:
        return False, f"cannot reach {base}: {exc}"
    except SeedanceError as exc:
        return False, f"Unexpected answer from {base}: {exc}"
    return False, (f"Unexpected answer from {base}: a made-up request id was found (HTTP 2xx). "
                   "Is the host the Seedance API?")
